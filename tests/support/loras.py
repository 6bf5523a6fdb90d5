"""LoRA adapters for tests, made with PEFT directly (no training) and given real manifests.

Weights are drawn from a seeded generator and scaled large enough that two adapters steer
a tiny random model to visibly different greedy outputs. The manifest is a
:class:`kubetune.artifacts.Manifest` with files described by the trainer's own
``describe_file``, so what the server verifies has the shape the trainer produces.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from kubetune.artifacts import MANIFEST_NAME, Manifest, digest
from kubetune_trainer.artifacts import describe_file

TINY_BASE = "kubetune-test/tiny-llama"
"""The base model identity tests serve and record in adapter manifests."""


def make_lora(
    base: Path,
    out: Path,
    *,
    seed: int,
    r: int = 4,
    scale: float = 0.1,
    target_modules: Sequence[str] = ("q_proj", "v_proj", "down_proj"),
    base_name: str = TINY_BASE,
    base_revision: str = "main",
) -> Path:
    """Save a LoRA adapter of the model in ``base`` to ``out``, with manifest.json; returns
    ``out``. ``base_name``/``base_revision`` are what the manifest claims it was trained on."""
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(base)
    config = LoraConfig(r=r, lora_alpha=2 * r, target_modules=list(target_modules))
    peft_model = get_peft_model(model, config)
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, parameter in peft_model.named_parameters():
            if "lora_" in name:
                parameter.copy_(torch.randn(parameter.shape, generator=generator) * scale)
    peft_model.save_pretrained(out)
    lora = {"r": r, "alpha": 2 * r, "targetModules": list(target_modules)}
    write_manifest(out, base={"name": base_name, "revision": base_revision}, lora=lora)
    return out


def write_manifest(directory: Path, *, base: dict[str, Any], lora: dict[str, Any]) -> str:
    """Write manifest.json for the files in ``directory``; returns its ``sha256:`` digest."""
    names = sorted(
        p.relative_to(directory).as_posix()
        for p in directory.rglob("*")
        if p.is_file() and p.name != MANIFEST_NAME
    )
    manifest = Manifest(
        run_id="0123456789abcdef",
        base_model=base,
        lora=lora,
        files=[describe_file(directory, name) for name in names],
        trainer_version="tests",
        created_at=datetime(2026, 1, 1, tzinfo=UTC),
    )
    data = manifest.to_bytes()
    (directory / MANIFEST_NAME).write_bytes(data)
    return digest(data)


def manifest_digest(directory: Path) -> str:
    """The ``sha256:`` digest of ``directory``'s manifest.json."""
    return digest((directory / MANIFEST_NAME).read_bytes())


def upload(s3_client: Any, directory: Path, bucket: str, prefix: str) -> str:
    """Upload every file of ``directory`` under ``prefix``; returns the s3:// URI."""
    for path in sorted(directory.rglob("*")):
        if path.is_file():
            key = f"{prefix.strip('/')}/{path.relative_to(directory).as_posix()}"
            s3_client.upload_file(str(path), bucket, key)
    return f"s3://{bucket}/{prefix.strip('/')}/"
