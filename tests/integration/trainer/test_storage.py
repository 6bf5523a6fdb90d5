"""Large files go up in parts and come back intact; missing objects are told apart."""

from __future__ import annotations

import hashlib
import os

import pytest

from kubetune_trainer.storage import MIB, ObjectNotFoundError, ObjectStore, S3Uri


def test_a_large_file_is_uploaded_in_parts_and_downloaded_intact(s3, bucket, tmp_path):
    store = ObjectStore(s3.client(), part_size=5 * MIB)
    source = tmp_path / "weights.bin"
    source.write_bytes(os.urandom(12 * MIB + 123))
    target = S3Uri(bucket, "run/adapter/weights.bin")

    store.upload_file(source, target)
    head = s3.client().head_object(Bucket=bucket, Key=target.key)
    copy = store.download_file(target, tmp_path / "copy" / "weights.bin")

    assert head["ETag"].strip('"').endswith("-3")  # three parts
    assert (
        hashlib.sha256(copy.read_bytes()).digest() == hashlib.sha256(source.read_bytes()).digest()
    )
    assert store.size(target) == 12 * MIB + 123
    assert store.list(S3Uri(bucket, "run/")) == {"adapter/weights.bin": 12 * MIB + 123}


def test_missing_objects(s3, bucket):
    store = ObjectStore(s3.client())

    assert store.size(S3Uri(bucket, "nothing")) is None
    with pytest.raises(ObjectNotFoundError):
        store.get_bytes(S3Uri(bucket, "nothing"))
    assert store.list(S3Uri(bucket, "none/")) == {}
