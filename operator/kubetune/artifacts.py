"""The artifact contract between the trainer, the operator and the runtimes.

A run writes everything under ``<output.uri>/<run id>/``; the run id is derived from the
fields of the spec that define the result, so re-applying a FineTuneJob (after a crash or a
cluster rebuild) finds its checkpoints and its finished artifact instead of training anew::

    <run>/progress.json                   latest progress, rewritten while training
    <run>/checkpoints/step-000120/...     resumable checkpoints; COMPLETE marks a whole one
    <run>/adapter/<files>                 the final adapter and tokenizer files
    <run>/adapter/manifest.json           written last: every file with sha256 and size

The manifest is the unit of integrity: an Adapter names it by digest, and an artifact
without a manifest is not an artifact. File paths in a manifest are relative, normalized and
inside the adapter prefix; anything else is rejected before any byte is trusted.
"""

from __future__ import annotations

import hashlib
import json
import posixpath
import re
from datetime import datetime
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, ConfigDict, Field, field_validator

if TYPE_CHECKING:  # readers of manifests (a serving pod) need not build the FineTuneJob models
    from kubetune.api import FineTuneJobSpec

MANIFEST_NAME = "manifest.json"
PROGRESS_NAME = "progress.json"
ADAPTER_DIR = "adapter"
CHECKPOINTS_DIR = "checkpoints"
MANIFEST_VERSION = 1

# Spec fields that do not change what is trained: where and how it is scheduled, and how
# storage is reached.
_NOT_IDENTITY = {
    "resources",
    "image",
    "backoff_limit",
    "active_deadline_seconds",
    "suspend",
    "queue_name",
    "priority_class_name",
}
_ACCESS = {"endpoint", "region", "credentials_secret_ref", "token_secret_ref"}
_SHA256 = re.compile(r"^[0-9a-f]{64}$")


def run_id(spec: FineTuneJobSpec) -> str:
    """16 hex digits of the sha256 of the spec's identity fields, in canonical JSON."""
    identity = spec.model_dump(mode="json", by_alias=False, exclude=_NOT_IDENTITY)
    quantization = spec.effective_quantization
    identity["quantization"] = quantization.model_dump(mode="json") if quantization else None
    canonical = json.dumps(_without_access(identity), sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()[:16]


def _without_access(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _without_access(v) for k, v in value.items() if k not in _ACCESS}
    return value


def join(prefix: str, *parts: str) -> str:
    """``prefix`` (an s3:// URI, with or without a trailing slash) joined with ``parts``."""
    return "/".join([prefix.rstrip("/"), *(p.strip("/") for p in parts)])


def adapter_uri(output_uri: str, run: str) -> str:
    """The prefix of a run's final adapter, with a trailing slash."""
    return join(output_uri, run, ADAPTER_DIR) + "/"


def progress_uri(output_uri: str, run: str) -> str:
    return join(output_uri, run, PROGRESS_NAME)


def safe_relative_path(path: str) -> str:
    """``path`` if it is a plain relative path inside its prefix; ValueError otherwise."""
    if not path or path.startswith("/") or "\\" in path or "\x00" in path:
        raise ValueError(f"file path {path!r} must be relative, without backslashes or NUL")
    normalized = posixpath.normpath(path)
    if normalized != path or normalized == "." or normalized.split("/")[0] == "..":
        raise ValueError(f"file path {path!r} must be normalized and stay inside the prefix")
    return path


class ManifestFile(BaseModel):
    """One file of an artifact."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    path: str = Field(description="Path relative to the adapter prefix.")
    sha256: str = Field(description="Hex SHA-256 of the file's bytes.")
    size: int = Field(ge=0, description="Size in bytes.")

    @field_validator("path")
    @classmethod
    def _path_is_safe(cls, value: str) -> str:
        return safe_relative_path(value)

    @field_validator("sha256")
    @classmethod
    def _hex_digest(cls, value: str) -> str:
        if not _SHA256.match(value):
            raise ValueError("sha256 must be 64 lowercase hex digits")
        return value


class Manifest(BaseModel):
    """manifest.json: what an artifact holds and where it came from."""

    model_config = ConfigDict(extra="forbid")

    version: int = Field(MANIFEST_VERSION, description="Manifest format version.")
    run_id: str = Field(description="The run that produced the artifact.")
    base_model: dict[str, Any] = Field(description="Base model name and revision.")
    lora: dict[str, Any] = Field(description="The LoRA configuration, as the API names it.")
    files: list[ManifestFile] = Field(min_length=1, description="Every file of the artifact.")
    metrics: dict[str, float | int | None] = Field(default_factory=dict)
    dataset: dict[str, Any] = Field(default_factory=dict, description="Dataset uri and sha256.")
    trainer_version: str = Field(description="Version of the trainer that wrote it.")
    created_at: datetime = Field(description="When the manifest was written.")

    @field_validator("files")
    @classmethod
    def _unique_paths(cls, files: list[ManifestFile]) -> list[ManifestFile]:
        paths = [f.path for f in files]
        if len(set(paths)) != len(paths) or MANIFEST_NAME in paths:
            raise ValueError("file paths must be unique and must not include the manifest")
        return files

    @property
    def size_bytes(self) -> int:
        return sum(f.size for f in self.files)

    def to_bytes(self) -> bytes:
        """Canonical JSON: the bytes whose sha256 is the artifact's digest."""
        return json.dumps(
            self.model_dump(mode="json"), sort_keys=True, separators=(",", ":")
        ).encode()


def digest(data: bytes) -> str:
    """``sha256:<hex>`` of ``data``, the form Adapter.spec.digest uses."""
    return "sha256:" + hashlib.sha256(data).hexdigest()
