"""Several files travel at once (as an adapter directory does), hashed on the way, and arrive
intact; a missing object or bucket is reported as the one-file path reports it; bytes that
are not what the manifest says never pass, whichever way they travel."""

from __future__ import annotations

import hashlib
import json
import os

import pytest

from kubetune.api import FineTuneJobSpec, S3Access
from kubetune_server.config import AdapterSource, S3Location
from kubetune_server.errors import AdapterRefusedError
from kubetune_server.fetching import AdapterFetcher
from kubetune_server.settings import AdapterSettings, ModelSettings, Settings
from kubetune_trainer.artifacts import adapter_files, describe_files, publish_adapter
from kubetune_trainer.errors import TrainerError
from kubetune_trainer.hashing import FileDigest
from kubetune_trainer.layout import RunLayout
from kubetune_trainer.storage import MIB, ObjectStore, Role, S3Uri, make_store

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

    sent = store.upload_files([(files / name, prefix.join(name)) for name in SIZES])
    downloaded = store.download_files(
        [(prefix.join(name), tmp_path / "copy" / name) for name in [*SIZES, "gone.bin"]]
    )

    assert store.list(prefix) == SIZES
    head = s3.client().head_object(Bucket=bucket, Key=prefix.join("adapter_model.safetensors").key)
    assert head["ETag"].strip('"').endswith("-3"), "the large file went up in parts"
    assert downloaded.missing == [prefix.join("gone.bin")]
    assert not (tmp_path / "copy/gone.bin").exists()
    expected = {name: sha256_of((files / name).read_bytes()) for name in SIZES}
    assert dict(zip(SIZES, sent, strict=True)) == expected
    assert downloaded.digests == {tmp_path / "copy" / name: expected[name] for name in SIZES}
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


def sha256_of(data: bytes) -> FileDigest:
    return FileDigest(hashlib.sha256(data).hexdigest(), len(data))


SPEC = FineTuneJobSpec.model_validate(
    {
        "baseModel": {"name": "org/base"},
        "dataset": {"uri": "s3://datasets/train.jsonl"},
        "output": {"uri": "s3://unused/out/"},
        "adapter": {"name": "bot", "version": "v1"},
        "lora": {"r": 4, "alpha": 8},
    }
)


@pytest.fixture
def adapter(files):
    (files / "adapter_config.json").write_text(json.dumps({"peft_type": "LORA", "r": 4}))
    return files


def test_a_published_adapter_pulls_verified_and_a_tampered_part_is_refused(
    s3, bucket, adapter, tmp_path, monkeypatch
):
    """The trainer's manifest describes the bytes it sent (file bodies unsigned, the manifest
    signed); the server hashes the bytes it writes; one flipped byte in the second part of
    the large file refuses the adapter."""
    for name, value in {"ACCESS_KEY_ID": s3.access_key, "SECRET_ACCESS_KEY": s3.secret_key}.items():
        monkeypatch.setenv(f"AWS_{name}", value)
        monkeypatch.setenv(f"KUBETUNE_S3_OUTPUT_AWS_{name}", value)
    store = make_store(S3Access(endpoint=s3.endpoint), Role.OUTPUT)
    store.transfer.multipart_threshold = store.transfer.multipart_chunksize = 5 * MIB
    signed: dict[str, bool] = {}
    for client in (store.client, store.hashed_client):
        client.meta.events.register("before-send.s3", record_signing(signed))
    layout = RunLayout.of(f"s3://{bucket}/out/", "run1")
    artifact = publish_adapter(
        store, layout, adapter, SPEC, run_id="run1", metrics={}, dataset_sha256="0" * 64
    )
    assert artifact.manifest.files == describe_files(adapter, adapter_files(adapter))
    assert signed.pop(layout.manifest.key) is True
    assert set(signed.values()) == {False}
    assert len(signed) == len(SIZES) + 1
    fetcher = AdapterFetcher(
        Settings(
            model=ModelSettings(name="org/base"),
            adapters=AdapterSettings(cache_dir=tmp_path / "cache"),
        )
    )
    source = AdapterSource(
        version="bot-v1",
        uri=artifact.uri,
        digest=artifact.digest,
        s3=S3Location(endpoint=s3.endpoint),
    )

    verified = fetcher.fetch(source)
    for name in SIZES:
        assert (verified.directory / name).read_bytes() == (adapter / name).read_bytes()

    weights = bytearray((adapter / "adapter_model.safetensors").read_bytes())
    weights[9 * MIB] ^= 0xFF
    key = layout.adapter.join("adapter_model.safetensors").key
    s3.client().put_object(Bucket=bucket, Key=key, Body=bytes(weights))
    with pytest.raises(AdapterRefusedError) as caught:
        AdapterFetcher(
            Settings(
                model=ModelSettings(name="org/base"),
                adapters=AdapterSettings(cache_dir=tmp_path / "other-cache"),
            )
        ).fetch(source)
    assert caught.value.reason == "DigestMismatch"
    assert "adapter_model.safetensors" in caught.value.message
    assert [p.name for p in (tmp_path / "other-cache").iterdir()] == [], "nothing staged stays"


def record_signing(signed: dict[str, bool]):
    """A botocore hook noting, per key written, whether the request signed its body."""

    def hook(request, **_) -> None:
        if request.method == "PUT":
            key = request.url.split("?")[0].split("/", 4)[-1]
            body_hash = request.headers["X-Amz-Content-SHA256"]
            signed[key] = signed.get(key, False) or body_hash != b"UNSIGNED-PAYLOAD"

    return hook
