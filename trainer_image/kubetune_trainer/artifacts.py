"""Publish the trained adapter as an immutable artifact: files first, manifest last.

The artifact is the PEFT adapter (weights and adapter_config.json) and the tokenizer it was
trained with (including the chat template), so serving renders prompts exactly as training
did. The manifest (:class:`kubetune.artifacts.Manifest`) lists every file with its sha256
and size; it is uploaded only after every file is, so its presence means the artifact is
complete, and its digest is what an ``Adapter`` records and verifies. The trainer hashes
each file as it uploads it (:func:`publish_adapter`), so the manifest describes exactly the
bytes sent and hashing costs no time of its own.
"""

from __future__ import annotations

import logging
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from kubetune.artifacts import MANIFEST_NAME, Manifest, ManifestFile, digest
from kubetune_trainer import __version__
from kubetune_trainer.hashing import hash_file
from kubetune_trainer.layout import RunLayout
from kubetune_trainer.storage import ObjectNotFoundError, ObjectStore

if TYPE_CHECKING:  # a serving pod verifies files with describe_files, without these models
    from kubetune.api import FineTuneJobSpec

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
    with (directory / name).open("rb") as handle:
        found = hash_file(handle)
    return ManifestFile(path=name, sha256=found.sha256, size=found.size)


def describe_files(directory: Path, names: list[str]) -> list[ManifestFile]:
    """Manifest entries of several files, hashed in parallel (hashlib releases the GIL)."""
    with ThreadPoolExecutor(max_workers=min(4, len(names)) or 1) as pool:
        return list(pool.map(lambda name: describe_file(directory, name), names))


def adapter_files(directory: Path) -> list[str]:
    """The names of the files an artifact of ``directory`` holds, sorted."""
    return sorted(
        p.relative_to(directory).as_posix()
        for p in directory.rglob("*")
        if p.is_file() and p.name != MANIFEST_NAME
    )


def manifest_of(
    spec: FineTuneJobSpec,
    files: list[ManifestFile],
    *,
    run_id: str,
    metrics: dict[str, float | int],
    dataset_sha256: str,
) -> Manifest:
    """The manifest of a run's artifact made of ``files``."""
    return Manifest(
        run_id=run_id,
        base_model={"name": spec.base_model.name, "revision": spec.base_model.revision},
        lora=spec.lora.model_dump(mode="json"),
        files=files,
        metrics=metrics,
        dataset={"uri": spec.dataset.uri, "sha256": dataset_sha256},
        trainer_version=__version__,
        created_at=datetime.now(UTC),
    )


def publish_adapter(
    store: ObjectStore,
    layout: RunLayout,
    directory: Path,
    spec: FineTuneJobSpec,
    *,
    run_id: str,
    metrics: dict[str, float | int],
    dataset_sha256: str,
) -> Artifact:
    """Upload every file under ``directory``, hashing each byte as it is sent, then the
    manifest of exactly those bytes: no hashing pass before the upload, and a file that
    changes meanwhile is described as it was sent."""
    names = adapter_files(directory)
    sent = store.upload_files([(directory / name, layout.adapter.join(name)) for name in names])
    files = [
        ManifestFile(path=n, sha256=d.sha256, size=d.size) for n, d in zip(names, sent, strict=True)
    ]
    manifest = manifest_of(
        spec, files, run_id=run_id, metrics=metrics, dataset_sha256=dataset_sha256
    )
    return _write_manifest(store, layout, manifest)


def _write_manifest(store: ObjectStore, layout: RunLayout, manifest: Manifest) -> Artifact:
    """The manifest goes last: its presence means every file it lists is there."""
    data = manifest.to_bytes()
    store.put_bytes(data, layout.manifest)
    log.info("adapter published to %s (%s)", layout.adapter, digest(data))
    return Artifact(str(layout.adapter), manifest, digest(data))
