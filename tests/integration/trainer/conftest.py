"""Real training against the real S3 server: a tiny model, a learnable task, the CLI.

The synthetic task is learnable by a LoRA adapter on a random tiny model: every answer has a
fixed format ("Answer: <colour>.") and the colour depends on the fruit in the question.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

from kubetune.artifacts import Manifest, digest
from support.fruits import fruit_records, jsonl
from support.tinymodel import build_tiny_model


@pytest.fixture
def fruit() -> Any:
    """The task's records: ``fruit(count)``."""
    return fruit_records


@pytest.fixture
def as_jsonl() -> Any:
    """Records as JSON Lines bytes."""
    return jsonl


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The tiny Llama model and tokenizer, built once."""
    return build_tiny_model(tmp_path_factory.mktemp("tiny") / "model")


@dataclass
class Trainer:
    """Runs kubetune-train against one bucket and reads what it wrote."""

    s3: Any
    bucket: str
    tmp: Path
    credentials: dict[str, str]

    @property
    def env(self) -> dict[str, str]:
        return {**os.environ, **self.credentials}

    @property
    def client(self) -> Any:
        return self.s3.client()

    def put(self, key: str, data: bytes) -> str:
        self.client.put_object(Bucket=self.bucket, Key=key, Body=data)
        return f"s3://{self.bucket}/{key}"

    def put_model(self, directory: Path, prefix: str = "models/tiny") -> str:
        for path in directory.iterdir():
            self.client.upload_file(str(path), self.bucket, f"{prefix}/{path.name}")
        return f"s3://{self.bucket}/{prefix}"

    def get(self, key: str) -> bytes:
        return self.client.get_object(Bucket=self.bucket, Key=key)["Body"].read()

    def keys(self, prefix: str) -> dict[str, Any]:
        pages = self.client.get_paginator("list_objects_v2").paginate(
            Bucket=self.bucket, Prefix=prefix
        )
        return {o["Key"]: o for page in pages for o in page.get("Contents", [])}

    def verified_manifest(self, summary: dict[str, Any]) -> Manifest:
        """The manifest, after checking its digest and every file it lists against S3."""
        uri = summary["artifactUri"]
        prefix = uri.removeprefix(f"s3://{self.bucket}/")
        data = self.get(prefix + "manifest.json")
        assert digest(data) == summary["manifestDigest"]
        manifest = Manifest.model_validate_json(data)
        stored = self.keys(prefix)
        for entry in manifest.files:
            body = self.get(prefix + entry.path)
            assert (hashlib.sha256(body).hexdigest(), len(body)) == (entry.sha256, entry.size)
        listed = {prefix + f.path for f in manifest.files} | {prefix + "manifest.json"}
        assert set(stored) == listed
        newest_file = max(
            stored[k]["LastModified"] for k in listed if not k.endswith("manifest.json")
        )
        assert stored[prefix + "manifest.json"]["LastModified"] >= newest_file
        return manifest

    def job(self, name: str = "job", **spec: Any) -> Path:
        """A FineTuneJob manifest; ``spec`` entries replace the defaults' top-level fields
        (None removes one)."""
        endpoint = self.s3.endpoint
        base: dict[str, Any] = {
            "baseModel": {
                "name": "tests/tiny-llama",
                "uri": f"s3://{self.bucket}/models/tiny",
                "endpoint": endpoint,
            },
            "dataset": {
                "uri": f"s3://{self.bucket}/data/train.jsonl",
                "validationSplit": 0.2,
                "endpoint": endpoint,
            },
            "method": "qlora",
            "quantization": {
                "bits": 4,
                "type": "nf4",
                "doubleQuant": True,
                "computeDtype": "float32",
            },
            "lora": {"r": 16, "alpha": 32, "dropout": 0.0, "targetModules": ["all-linear"]},
            "training": {
                "maxSteps": 50,
                "learningRate": 5e-3,
                "scheduler": "cosine",
                "warmupRatio": 0.1,
                "batchSize": 8,
                "gradientAccumulationSteps": 1,
                "maxSeqLength": 64,
                "packing": True,
                "gradientCheckpointing": True,
                "evalSteps": 25,
                "saveSteps": 25,
                "loggingSteps": 5,
                "seed": 42,
            },
            "output": {"uri": f"s3://{self.bucket}/adapters/{name}/", "endpoint": endpoint},
            "adapter": {"name": name, "version": "v1"},
        }
        base.update(spec)
        base = {key: value for key, value in base.items() if value is not None}
        manifest = {
            "apiVersion": "kubetune.io/v1alpha1",
            "kind": "FineTuneJob",
            "metadata": {"name": name},
            "spec": base,
        }
        path = self.tmp / f"{name}.yaml"
        path.write_text(yaml.safe_dump(manifest))
        return path

    def args(self, config: Path, *extra: str, command: str = "train") -> list[str]:
        """Arguments of ``kubetune-train <command>`` for this workspace."""
        common = [
            command,
            "--config",
            str(config),
            "--workdir",
            str(self.tmp / "work"),
            "--termination-path",
            str(self.tmp / "termination.json"),
        ]
        pacing = ["--progress-interval", "0.5"] if command == "train" else []
        return [*common, *pacing, *extra]

    def run(
        self,
        config: Path,
        *extra: str,
        command: str = "train",
        timeout: float = 240,
    ) -> tuple[int, dict[str, Any]]:
        """Run the CLI in a fresh process; (exit code, termination summary)."""
        summary = self.tmp / "termination.json"
        summary.unlink(missing_ok=True)
        argv = [
            sys.executable,
            "-m",
            "kubetune_trainer.cli",
            *self.args(config, *extra, command=command),
        ]
        done = subprocess.run(
            argv, env=self.env, capture_output=True, text=True, timeout=timeout, check=False
        )
        (self.tmp / "trainer.log").write_text(done.stdout + done.stderr)
        written = json.loads(summary.read_text()) if summary.is_file() else {}
        return done.returncode, written

    def popen(self, config: Path, *extra: str) -> subprocess.Popen[str]:
        command = [sys.executable, "-m", "kubetune_trainer.cli", *self.args(config, *extra)]
        return subprocess.Popen(
            command, env=self.env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, text=True
        )


@pytest.fixture
def trainer(s3, bucket, tmp_path, tiny_model) -> Trainer:
    """A bucket holding the tiny model and the task's data, and a way to train on them."""
    role_env = {
        f"KUBETUNE_S3_{role}_{name}": value
        for role in ("BASE_MODEL", "DATASET", "OUTPUT")
        for name, value in (
            ("AWS_ACCESS_KEY_ID", s3.access_key),
            ("AWS_SECRET_ACCESS_KEY", s3.secret_key),
        )
    }
    env = {
        **os.environ,
        **role_env,
        "AWS_REGION": s3.region,
        "HF_HUB_OFFLINE": "1",
        "TOKENIZERS_PARALLELISM": "false",
    }
    helper = Trainer(s3, bucket, tmp_path, env)
    helper.put_model(tiny_model)
    helper.put("data/train.jsonl", jsonl(fruit_records()))
    return helper
