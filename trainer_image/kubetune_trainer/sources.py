"""Bring the base model and the dataset named by the spec onto local disk.

URIs are ``s3://`` (downloaded into the work directory; files already there with the right
size are kept, so a restarted pod and the second process of a node do not download twice),
``pvc://claim/path`` (a PersistentVolumeClaim the pod mounts under the PVC root,
``/mnt/kubetune/pvc/<claim>`` unless ``KUBETUNE_PVC_ROOT`` says otherwise) and, for models,
``hf://org/name`` (loaded by transformers, with ``HF_TOKEN`` from the token Secret).
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from pathlib import Path

from kubetune.api import DatasetSpec, ModelSource, Reason
from kubetune.artifacts import safe_relative_path
from kubetune_trainer.datasets.loading import SUPPORTED_SUFFIXES
from kubetune_trainer.datasets.preparing import DatasetFile, DatasetSource
from kubetune_trainer.errors import TrainerError
from kubetune_trainer.storage import ObjectStore, Role, S3Uri, make_store

PVC_ROOT_ENV = "KUBETUNE_PVC_ROOT"
DEFAULT_PVC_ROOT = "/mnt/kubetune/pvc"
_WEIGHT_SUFFIXES = (".safetensors", ".bin", ".pt", ".pth", ".gguf", ".h5", ".msgpack")


@dataclass(frozen=True)
class ModelRef:
    """What ``from_pretrained`` is given: a local directory or a Hub id with its revision."""

    location: str
    revision: str | None = None
    token: str | None = None


def pvc_path(uri: str) -> Path:
    """The local path of ``pvc://claim/path`` under the PVC mount root; a path that climbs
    out of its claim (``..``) is refused, as the API's URI pattern refuses it."""
    claim, _, rest = uri.removeprefix("pvc://").partition("/")
    _inside(uri, rest.rstrip("/") or ".", Reason.INVALID_SPEC)
    return Path(os.environ.get(PVC_ROOT_ENV, DEFAULT_PVC_ROOT)) / claim / rest


def _inside(where: str, name: str, reason: Reason) -> None:
    """Refuse a relative name (from a URI or an S3 listing) that would leave its directory."""
    if name == ".":
        return
    try:
        safe_relative_path(name)
    except ValueError as exc:
        raise TrainerError(reason, f"{where}: {exc}") from exc


def _cache_dir(workdir: Path, kind: str, uri: str) -> Path:
    return workdir / kind / hashlib.sha256(uri.encode()).hexdigest()[:16]


def _sync(
    store: ObjectStore, prefix: S3Uri, directory: Path, sizes: dict[str, int], reason: Reason
) -> None:
    """Download what is missing or of the wrong size; a key whose name would land outside
    ``directory`` (S3 allows ``a/../../b``) fails with ``reason``."""
    for name, size in sorted(sizes.items()):
        if name.endswith("/"):
            continue
        _inside(str(prefix), name, reason)
        target = directory / name
        if target.is_file() and target.stat().st_size == size:
            continue
        store.download_file(prefix.join(name), target)


def fetch_base_model(source: ModelSource, workdir: Path, *, weights: bool = True) -> ModelRef:
    """The base model's location for ``from_pretrained``; BaseModelNotFound when absent.

    ``weights=False`` skips weight files of an S3 model: enough for its tokenizer.
    """
    uri = source.uri or f"hf://{source.name}"
    if uri.startswith("hf://"):
        return ModelRef(uri.removeprefix("hf://"), source.revision, os.environ.get("HF_TOKEN"))
    if uri.startswith("pvc://"):
        directory = pvc_path(uri)
    else:
        prefix = S3Uri.parse(uri)
        store = make_store(source, Role.BASE_MODEL)
        directory = _cache_dir(workdir, "base-model", uri)
        sizes = store.list(prefix)
        if not weights:
            sizes = {n: size for n, size in sizes.items() if not n.endswith(_WEIGHT_SUFFIXES)}
        _sync(store, prefix, directory, sizes, Reason.BASE_MODEL_NOT_FOUND)
    if not (directory / "config.json").is_file():
        raise TrainerError(
            Reason.BASE_MODEL_NOT_FOUND, f"no model (config.json) at {uri} for {source.name}"
        )
    return ModelRef(str(directory))


def fetch_dataset(spec: DatasetSpec, workdir: Path, uri: str) -> DatasetSource:
    """``uri`` (the dataset or its eval data): one file, or the dataset files under a prefix
    or directory. A missing location is a source with no files, reported as invalid data."""
    if uri.startswith("pvc://"):
        return _local_dataset(uri, pvc_path(uri))
    location = S3Uri.parse(uri)
    store = make_store(spec, Role.DATASET)
    size = store.size(location) if location.key and not location.key.endswith("/") else None
    if size is not None:
        base, name = location.key.rpartition("/")[0], location.key.rpartition("/")[2]
        prefix, sizes = S3Uri(location.bucket, base), {name: size}
    else:
        prefix = location
        sizes = {
            n: s
            for n, s in store.list(location).items()
            if Path(n).suffix.lower() in SUPPORTED_SUFFIXES
        }
    directory = _cache_dir(workdir, "dataset", uri)
    _sync(store, prefix, directory, sizes, Reason.DATASET_INVALID)
    return DatasetSource(
        uri, tuple(DatasetFile(str(prefix.join(n)), directory / n) for n in sorted(sizes))
    )


def _local_dataset(uri: str, path: Path) -> DatasetSource:
    if path.is_dir():
        names = sorted(
            p.relative_to(path).as_posix()
            for p in path.rglob("*")
            if p.is_file() and p.suffix.lower() in SUPPORTED_SUFFIXES
        )
        base = uri.rstrip("/")
        return DatasetSource(uri, tuple(DatasetFile(f"{base}/{n}", path / n) for n in names))
    if path.exists():
        return DatasetSource.single(uri, path)
    return DatasetSource(uri, ())
