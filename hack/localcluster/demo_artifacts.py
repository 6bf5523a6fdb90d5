"""What the demo puts in S3 before it trains: a tiny base model, a dataset, a baseline adapter.

The base model and the dataset are the tests' own (:mod:`localcluster.tinymodel`,
:mod:`localcluster.fruits`): built here, nothing is downloaded. The baseline adapter is the
version "already serving" when the demo's fine-tune arrives, so that the new one rolls out
as a canary over it. It is an untrained LoRA of the tiny model (PEFT's initialisation leaves
the base model's outputs unchanged) with a manifest of the trainer's own shape, imported as
an Adapter the way examples/adapter.yaml imports one trained elsewhere.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from kubetune.artifacts import MANIFEST_NAME, Manifest, digest
from kubetune_trainer.artifacts import describe_file
from localcluster.fruits import fruit_records, jsonl

DATASET_RECORDS = 64


def upload_directory(s3_client: Any, directory: Path, bucket: str, prefix: str) -> int:
    """Upload every file of ``directory`` under ``prefix``; the number of bytes."""
    total = 0
    for path in sorted(p for p in directory.rglob("*") if p.is_file()):
        key = f"{prefix.rstrip('/')}/{path.relative_to(directory).as_posix()}"
        s3_client.upload_file(str(path), bucket, key)
        total += path.stat().st_size
    return total


def dataset() -> bytes:
    """The fruit task as chat JSONL."""
    return jsonl(fruit_records(DATASET_RECORDS))


def build_baseline_adapter(
    model: Path, out: Path, *, base: dict[str, str], lora: dict[str, Any]
) -> str:
    """An untrained LoRA of ``model`` with its manifest.json in ``out``; the manifest digest."""
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    config = LoraConfig(
        r=lora["r"], lora_alpha=lora["alpha"], target_modules=list(lora["targetModules"])
    )
    get_peft_model(AutoModelForCausalLM.from_pretrained(model), config).save_pretrained(out)
    names = sorted(
        p.relative_to(out).as_posix()
        for p in out.rglob("*")
        if p.is_file() and p.name != MANIFEST_NAME
    )
    manifest = Manifest(
        run_id="baseline",
        base_model=base,
        lora=lora,
        files=[describe_file(out, name) for name in names],
        trainer_version="kubetune-demo",
        created_at=datetime.now(UTC),
    )
    data = manifest.to_bytes()
    (out / MANIFEST_NAME).write_bytes(data)
    return digest(data)
