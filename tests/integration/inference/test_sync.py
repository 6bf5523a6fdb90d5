"""The vLLM pods' init container, ``python -m kubetune_server.sync``, as a real process
against real S3: adapters land verified under their digest, and a bad one stops the pod
with a reason."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from localcluster import S3Info
from support.loras import manifest_digest, upload, write_manifest

BASE = "kubetune/tiny-llama"


def _adapter(directory: Path, rank: int, payload: bytes) -> Path:
    directory.mkdir(parents=True)
    (directory / "adapter_config.json").write_text(json.dumps({"r": rank, "lora_alpha": 2 * rank}))
    (directory / "adapter_model.safetensors").write_bytes(payload)
    write_manifest(directory, base={"name": BASE, "revision": "main"}, lora={"r": rank})
    return directory


def _sync(
    tmp_path: Path, s3: S3Info, adapters: list[dict[str, Any]], *extra: str
) -> tuple[subprocess.CompletedProcess[str], Path]:
    secret = tmp_path / "secrets" / "s3-creds"
    secret.mkdir(parents=True, exist_ok=True)
    (secret / "AWS_ACCESS_KEY_ID").write_text(s3.access_key)
    (secret / "AWS_SECRET_ACCESS_KEY").write_text(s3.secret_key)
    termination = tmp_path / "termination-log"
    config = {"adapters": adapters}
    argv = [sys.executable, "-m", "kubetune_server.sync", "--dest", str(tmp_path / "adapters")]
    argv += ["--model-name", BASE, "--s3-credentials-dir", str(tmp_path / "secrets")]
    argv += ["--termination-path", str(termination), *extra]
    done = subprocess.run(
        argv,
        env={**_env(), "KUBETUNE_SERVING_CONFIG": json.dumps(config)},
        capture_output=True,
        text=True,
        timeout=120,
    )
    return done, termination


def _env() -> dict[str, str]:
    """This process's environment without AWS variables: credentials come from the mount."""
    return {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}


def _source(s3: S3Info, uri: str, version: str, digest: str) -> dict[str, Any]:
    return {
        "version": version,
        "uri": uri,
        "digest": digest,
        "s3": {"endpoint": s3.endpoint, "credentialsSecret": "s3-creds"},
    }


def test_every_adapter_lands_verified_under_its_digest(
    tmp_path: Path, s3: S3Info, bucket: str
) -> None:
    sources = []
    for version, rank in (("support-bot-v1", 8), ("sql-helper-v7", 16)):
        directory = _adapter(tmp_path / "src" / version, rank, version.encode() * 100)
        uri = upload(s3.client(), directory, bucket, version)
        sources.append(_source(s3, uri, version, manifest_digest(directory)))

    done, _ = _sync(tmp_path, s3, sources, "--max-lora-rank", "16")

    assert done.returncode == 0, done.stderr
    for source in sources:
        target = tmp_path / "adapters" / source["digest"].removeprefix("sha256:")
        assert (target / "adapter_model.safetensors").read_bytes() == (
            source["version"].encode() * 100
        )


@pytest.mark.parametrize(
    ("change", "reason"),
    [("digest", "DigestMismatch"), ("rank", "RankTooLarge")],
)
def test_a_bad_adapter_fails_the_pod_with_a_reason(
    tmp_path: Path, s3: S3Info, bucket: str, change: str, reason: str
) -> None:
    directory = _adapter(tmp_path / "src" / "v1", 32, b"weights")
    uri = upload(s3.client(), directory, bucket, "v1")
    digest = "sha256:" + "0" * 64 if change == "digest" else manifest_digest(directory)

    done, termination = _sync(
        tmp_path, s3, [_source(s3, uri, "v1", digest)], "--max-lora-rank", "16"
    )

    assert done.returncode == 3, done.stderr
    assert json.loads(termination.read_text())["reason"] == reason
    assert not any((tmp_path / "adapters").glob("[0-9a-f]*"))
