"""Read the FineTuneJob the trainer runs, with the same models the operator uses.

``--config`` may hold a whole FineTuneJob manifest (possibly among other YAML documents) or
just its spec. The run id that addresses every object the run writes is derived from the
fields that define the result, so applying the same job again, after a crash or a cluster
rebuild, finds its checkpoints and its finished artifact instead of training anew.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import yaml
from kubetune.api import FineTuneJob, FineTuneJobSpec, Reason
from pydantic import ValidationError

from kubetune_trainer.datasets.formats import RecordFormat
from kubetune_trainer.datasets.validation import OverLength, ValidationOptions
from kubetune_trainer.errors import TrainerError

# Fields of the spec that do not change what is trained: where and how it is scheduled, and
# how storage is reached.
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


def load_spec(path: Path) -> FineTuneJobSpec:
    """The spec in ``path``; InvalidSpec when it is missing or does not validate."""
    try:
        documents = [d for d in yaml.safe_load_all(path.read_text()) if d]
    except (OSError, yaml.YAMLError) as exc:
        raise TrainerError(Reason.INVALID_SPEC, f"cannot read {path}: {exc}") from exc
    jobs = [d for d in documents if isinstance(d, dict) and d.get("kind") == "FineTuneJob"]
    try:
        if jobs:
            return FineTuneJob.model_validate(jobs[0]).spec
        if len(documents) == 1 and isinstance(documents[0], dict):
            return FineTuneJobSpec.model_validate(documents[0])
    except ValidationError as exc:
        raise TrainerError(Reason.INVALID_SPEC, f"{path}: {exc}") from exc
    raise TrainerError(Reason.INVALID_SPEC, f"{path} holds neither a FineTuneJob nor its spec")


def run_id_for(spec: FineTuneJobSpec) -> str:
    """16 hex digits of the sha256 of the spec's identity fields, in canonical JSON."""
    identity = spec.model_dump(mode="json", by_alias=False, exclude=_NOT_IDENTITY)
    identity["quantization"] = (
        spec.effective_quantization.model_dump(mode="json") if spec.effective_quantization else None
    )
    canonical = json.dumps(_without_access(identity), sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()[:16]


def _without_access(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _without_access(v) for k, v in value.items() if k not in _ACCESS}
    return value


def validation_options(spec: FineTuneJobSpec, over_length: OverLength) -> ValidationOptions:
    """What the dataset is validated against, from the spec and the over-length policy."""
    fmt = spec.dataset.format.value
    return ValidationOptions(
        max_seq_length=spec.training.max_seq_length,
        fmt=None if fmt == "auto" else RecordFormat(fmt),
        over_length=over_length,
    )
