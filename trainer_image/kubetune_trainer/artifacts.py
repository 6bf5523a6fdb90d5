"""Publish the trained adapter as an immutable artifact: files first, manifest last.

The artifact is the PEFT adapter (weights and adapter_config.json) and the tokenizer it was
trained with (including the chat template), so serving renders prompts exactly as training
did. The manifest (:class:`kubetune.artifacts.Manifest`) lists every file with its sha256
and size; it is uploaded only after every file is, so its presence means the artifact is
complete, and its digest is what an ``Adapter`` records and verifies.
"""

from __future__ import annotations

import hashlib
import logging
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from kubetune.api import FineTuneJobSpec
from kubetune.artifacts import MANIFEST_NAME, Manifest, ManifestFile, digest
from kubetune_trainer import __version__
from kubetune_trainer.layout import RunLayout
from kubetune_trainer.storage import ObjectNotFoundError, ObjectStore

_CHUNK = 1 << 20
log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Artifact:
    """A published artifact: where it is, its manifest and the manifest's digest."""

    uri: str
    manifest: Manifest
    digest: str


def find_artifact(store: ObjectStore, layout: RunLayout) -> Artifact | None:
    """The run's finished artifact, if its manifest is already there."""
    try:
        data = store.get_bytes(layout.manifest)
    except ObjectNotFoundError:
        return None
    return Artifact(str(layout.adapter), Manifest.model_validate_json(data), digest(data))


def save_adapter(model: Any, tokenizer: Any, directory: Path) -> None:
    """Write the adapter weights and config and the tokenizer files."""
    directory.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(directory)
    tokenizer.save_pretrained(directory)


def describe_file(directory: Path, name: str) -> ManifestFile:
    """A file's manifest entry: its path, sha256 and size."""
    sha = hashlib.sha256()
    size = 0
    with (directory / name).open("rb") as handle:
        while chunk := handle.read(_CHUNK):
            sha.update(chunk)
            size += len(chunk)
    return ManifestFile(path=name, sha256=sha.hexdigest(), size=size)


def describe_files(directory: Path, names: list[str]) -> list[ManifestFile]:
    """Manifest entries of several files, hashed in parallel (hashlib releases the GIL)."""
    with ThreadPoolExecutor(max_workers=min(4, len(names)) or 1) as pool:
        return list(pool.map(lambda name: describe_file(directory, name), names))


def build_manifest(
    spec: FineTuneJobSpec,
    directory: Path,
    *,
    run_id: str,
    metrics: dict[str, float | int],
    dataset_sha256: str,
) -> Manifest:
    """The manifest of the files under ``directory``."""
    names = sorted(
        p.relative_to(directory).as_posix()
        for p in directory.rglob("*")
        if p.is_file() and p.name != MANIFEST_NAME
    )
    return Manifest(
        run_id=run_id,
        base_model={"name": spec.base_model.name, "revision": spec.base_model.revision},
        lora=spec.lora.model_dump(mode="json"),
        files=describe_files(directory, names),
        metrics=metrics,
        dataset={"uri": spec.dataset.uri, "sha256": dataset_sha256},
        trainer_version=__version__,
        created_at=datetime.now(UTC),
    )


def publish_artifact(
    store: ObjectStore, layout: RunLayout, directory: Path, manifest: Manifest
) -> Artifact:
    """Upload every file the manifest lists, then the manifest."""
    store.upload_files([(directory / e.path, layout.adapter.join(e.path)) for e in manifest.files])
    data = manifest.to_bytes()
    store.put_bytes(data, layout.manifest)
    log.info("adapter published to %s (%s)", layout.adapter, digest(data))
    return Artifact(str(layout.adapter), manifest, digest(data))
