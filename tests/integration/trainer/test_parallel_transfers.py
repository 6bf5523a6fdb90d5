"""Several files travel at once (as an adapter directory does) and arrive intact; a missing
object or bucket is reported as the one-file path reports it."""

from __future__ import annotations

import os

import pytest

from kubetune_trainer.errors import TrainerError
from kubetune_trainer.storage import MIB, ObjectStore, S3Uri

SIZES = {"adapter_model.safetensors": 11 * MIB + 7, "tokenizer.json": 3 * MIB, "a/b.json": 10}


@pytest.fixture
def files(tmp_path):
    directory = tmp_path / "adapter"
    for name, size in SIZES.items():
        (directory / name).parent.mkdir(parents=True, exist_ok=True)
        (directory / name).write_bytes(os.urandom(size))
    return directory


def test_files_go_up_and_come_back_together_intact(s3, bucket, files, tmp_path):
    store = ObjectStore(s3.client(), part_size=5 * MIB)
    prefix = S3Uri(bucket, "run/adapter/")

    store.upload_files([(files / name, prefix.join(name)) for name in SIZES])
    missing = store.download_files(
        [(prefix.join(name), tmp_path / "copy" / name) for name in [*SIZES, "gone.bin"]]
    )

    assert store.list(prefix) == SIZES
    head = s3.client().head_object(Bucket=bucket, Key=prefix.join("adapter_model.safetensors").key)
    assert head["ETag"].strip('"').endswith("-3"), "the large file went up in parts"
    assert missing == [prefix.join("gone.bin")]
    for name in SIZES:
        assert (tmp_path / "copy" / name).read_bytes() == (files / name).read_bytes()


def test_an_upload_to_a_missing_bucket_fails_as_one_file_would(s3, files):
    store = ObjectStore(s3.client())
    target = S3Uri("no-such-bucket", "x/t.json")
    with pytest.raises(TrainerError) as alone:
        store.upload_file(files / "tokenizer.json", target)

    with pytest.raises(TrainerError) as together:
        store.upload_files([(files / "a/b.json", target), (files / "tokenizer.json", target)])

    assert together.value.reason == alone.value.reason
    assert str(target) in together.value.message
