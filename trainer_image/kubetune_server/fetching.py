"""Bring an adapter version onto local disk, proven to be the artifact asked for, before use.

The order matters:

1. Read ``manifest.json`` alone and compare its sha256 with the digest the config pins (the
   ``Adapter.spec.digest`` the operator verified). The manifest in turn pins every file, so
   one digest covers the whole artifact. The manifest model and digest are
   :mod:`kubetune.artifacts`, the contract the trainer writes and the operator verifies; S3
   access is the operator's (:mod:`kubetune.storage.s3`) for the manifest and the trainer's
   (:mod:`kubetune_trainer.storage`, multipart and retried) for the files, and a file's
   digest is the trainer's :func:`~kubetune_trainer.artifacts.describe_files`.
2. Check, before downloading any weights, that the adapter fits this server: trained on the
   same base model (name and revision) and of a rank within ``--max-lora-rank``.
3. Download exactly the files the manifest lists into a staging directory, hashing each as
   it is written (a file that could not be hashed on the way is hashed after); anything
   missing, of another size or another sha256 refuses the adapter.
4. Check that ``adapter_config.json`` agrees with the manifest (rank) and is servable (no
   DoRA, which PEFT's per-request adapter selection does not support), then rename the
   staging directory to ``<cache>/<digest>``. A cached copy is re-hashed before each use.

Problems that retrying cannot fix raise :class:`~kubetune_server.errors.AdapterRefusedError`; S3
being unreachable or refusing the credentials raises
:class:`~kubetune_server.errors.AdapterUnavailableError`.
"""

from __future__ import annotations

import json
import shutil
import tempfile
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from kubetune.api import Reason
from kubetune.artifacts import MANIFEST_NAME, Manifest, ManifestFile, digest, join
from kubetune.storage.s3 import ArtifactStore, StorageError, make_client
from kubetune_server.config import AdapterSource, S3Location
from kubetune_server.errors import AdapterRefusedError, AdapterUnavailableError
from kubetune_server.settings import Settings
from kubetune_trainer.artifacts import describe_files
from kubetune_trainer.errors import TrainerError
from kubetune_trainer.hashing import FileDigest
from kubetune_trainer.storage import ObjectStore, S3Uri

ADAPTER_CONFIG = "adapter_config.json"
_CREDENTIALS = ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN")


@dataclass(frozen=True)
class VerifiedAdapter:
    """An adapter on local disk whose every file matched its manifest."""

    version: str
    directory: Path
    digest: str  # sha256:<hex> of manifest.json
    rank: int
    size_bytes: int


class AdapterFetcher:
    """Fetches and verifies adapters for one server (its base model, rank limit, cache)."""

    def __init__(self, settings: Settings) -> None:
        self.base_name = settings.model.name
        self.base_revision = settings.model.revision
        self.max_rank = settings.adapters.max_lora_rank
        self.cache_dir = settings.adapters.cache_dir
        self.credentials_dir = settings.adapters.credentials_dir

    def fetch(self, source: AdapterSource) -> VerifiedAdapter:
        """The verified adapter of ``source``; raises AdapterRefusedError (permanent) or
        AdapterUnavailableError (transient)."""
        if source.uri.startswith("s3://"):
            return self._from_s3(source)
        return self._from_directory(source, Path(source.uri))

    def _from_directory(self, source: AdapterSource, directory: Path) -> VerifiedAdapter:
        path = directory / MANIFEST_NAME
        if not path.is_file():
            raise _no_manifest(source)
        data = path.read_bytes()
        manifest = self._parse(source, data)
        _check_files(manifest, directory)
        return self._finish(source, manifest, digest(data), directory)

    def _from_s3(self, source: AdapterSource) -> VerifiedAdapter:
        client = self._client(source.s3)
        try:
            data = ArtifactStore(client).read(join(source.uri, MANIFEST_NAME))
        except StorageError as exc:
            if exc.reason == Reason.NOT_FOUND:
                raise _no_manifest(source) from exc
            raise AdapterUnavailableError(exc.reason, exc.message) from exc
        manifest = self._parse(source, data)
        target = self.cache_dir / digest(data).removeprefix("sha256:")
        if target.is_dir() and not _problems(manifest, target):
            return self._finish(source, manifest, digest(data), target)
        self.cache_dir.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=".staging-", dir=self.cache_dir))
        try:
            store, prefix = ObjectStore(client), S3Uri.parse(source.uri)
            with _transient():  # a missing file is reported by the check below
                targets = {staging / e.path: e.path for e in manifest.files}
                downloaded = store.download_files(
                    [(prefix.join(name), path) for path, name in targets.items()]
                )
            hashed = {targets[path]: found for path, found in downloaded.digests.items()}
            _check_files(manifest, staging, hashed)
            verified = self._finish(source, manifest, digest(data), staging)
            shutil.rmtree(target, ignore_errors=True)
            staging.rename(target)
        finally:
            shutil.rmtree(staging, ignore_errors=True)
        return replace(verified, directory=target)

    def _parse(self, source: AdapterSource, data: bytes) -> Manifest:
        """The manifest in ``data``, if it is the pinned one and its adapter fits this server."""
        if source.digest is not None and digest(data) != source.digest:
            raise AdapterRefusedError(
                Reason.DIGEST_MISMATCH,
                f"{MANIFEST_NAME} of {source.uri} has digest {digest(data)}, "
                f"expected {source.digest}",
            )
        try:
            manifest = Manifest.model_validate_json(data)
        except ValueError as exc:
            raise AdapterRefusedError(
                Reason.MANIFEST_INVALID, f"{MANIFEST_NAME} of {source.uri} is invalid: {exc}"
            ) from exc
        self._check_fit(source, manifest)
        return manifest

    def _check_fit(self, source: AdapterSource, manifest: Manifest) -> None:
        """Refuse, before any download, an adapter of another base model or too high a rank."""
        trained_on = (manifest.base_model.get("name"), manifest.base_model.get("revision", "main"))
        if trained_on != (self.base_name, self.base_revision):
            raise AdapterRefusedError(
                Reason.BASE_MODEL_MISMATCH,
                f"{source.version} was trained on {trained_on[0]}@{trained_on[1]}, this server "
                f"serves {self.base_name}@{self.base_revision}",
            )
        rank = manifest.lora.get("r")
        if not isinstance(rank, int) or rank < 1:
            raise AdapterRefusedError(Reason.MANIFEST_INVALID, "the manifest has no lora.r")
        self._check_rank(source, rank)

    def _check_rank(self, source: AdapterSource, rank: int) -> None:
        if self.max_rank is not None and rank > self.max_rank:
            raise AdapterRefusedError(
                Reason.RANK_TOO_LARGE,
                f"{source.version} has rank {rank}, above this server's --max-lora-rank "
                f"{self.max_rank}",
            )

    def _finish(
        self, source: AdapterSource, manifest: Manifest, found: str, directory: Path
    ) -> VerifiedAdapter:
        """Check the PEFT config against the manifest and describe the adapter."""
        path = directory / ADAPTER_CONFIG
        if ADAPTER_CONFIG not in {f.path for f in manifest.files} or not path.is_file():
            raise AdapterRefusedError(
                Reason.MANIFEST_INVALID, f"the manifest lists no {ADAPTER_CONFIG}"
            )
        try:
            config = json.loads(path.read_text(encoding="utf-8"))
        except (ValueError, OSError) as exc:
            raise AdapterRefusedError(Reason.MANIFEST_INVALID, f"{ADAPTER_CONFIG}: {exc}") from exc
        declared, actual = manifest.lora["r"], config.get("r")
        if actual != declared:
            raise AdapterRefusedError(
                Reason.MANIFEST_INVALID,
                f"the manifest says rank {declared}, {ADAPTER_CONFIG} says rank {actual}",
            )
        rank = max([actual, *(config.get("rank_pattern") or {}).values()])
        self._check_rank(source, rank)
        if config.get("use_dora"):
            raise AdapterRefusedError(
                "UnsupportedAdapter", "DoRA adapters cannot be served with per-request adapters"
            )
        return VerifiedAdapter(source.version, directory, found, rank, manifest.size_bytes)

    def _client(self, location: S3Location | None) -> Any:
        """A client for ``location``, with credentials from its mounted Secret, if it names one."""
        credentials: dict[str, str] | None = None
        if location is not None and location.credentials_secret:
            secret = self.credentials_dir / location.credentials_secret
            credentials = {
                name: (secret / name).read_text().strip()
                for name in _CREDENTIALS
                if (secret / name).is_file()
            }
            if "AWS_ACCESS_KEY_ID" not in credentials:
                raise AdapterUnavailableError(
                    Reason.SECRET_NOT_FOUND, f"no S3 credentials mounted at {secret}"
                )
        return make_client(
            endpoint=location.endpoint if location else None,
            region=location.region if location else None,
            credentials=credentials,
        )


@contextmanager
def _transient() -> Iterator[None]:
    """Turn the trainer's S3 errors (access denied, unreachable) into AdapterUnavailableError."""
    try:
        yield
    except TrainerError as exc:
        raise AdapterUnavailableError(exc.reason, exc.message) from exc


def _no_manifest(source: AdapterSource) -> AdapterRefusedError:
    return AdapterRefusedError(
        Reason.MANIFEST_INVALID,
        f"no {MANIFEST_NAME} under {source.uri} (it is written last: was the upload completed?)",
    )


def _problems(
    manifest: Manifest, directory: Path, hashed: Mapping[str, FileDigest] | None = None
) -> list[str]:
    """How the files under ``directory`` differ from the manifest; empty when they match.
    ``hashed`` holds digests already taken of some files as they were written (see
    :meth:`~kubetune_trainer.storage.ObjectStore.download_files`); the rest are hashed now."""
    hashed = hashed or {}
    present = [
        e.path for e in manifest.files if e.path not in hashed and (directory / e.path).is_file()
    ]
    found_files = {f.path: f for f in describe_files(directory, present)}
    for name, found in hashed.items():
        found_files[name] = ManifestFile(path=name, sha256=found.sha256, size=found.size)
    problems = []
    for entry in manifest.files:
        found = found_files.get(entry.path)
        if found is None:
            problems.append(f"{entry.path}: missing")
            continue
        if found != entry:
            problems.append(
                f"{entry.path}: sha256 {found.sha256} ({found.size} bytes), manifest says "
                f"{entry.sha256} ({entry.size} bytes)"
            )
    return problems


def _check_files(
    manifest: Manifest, directory: Path, hashed: Mapping[str, FileDigest] | None = None
) -> None:
    problems = _problems(manifest, directory, hashed)
    if problems:
        raise AdapterRefusedError(
            Reason.DIGEST_MISMATCH, f"files do not match the manifest: {'; '.join(problems[:3])}"
        )
