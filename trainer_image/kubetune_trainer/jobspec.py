"""Read the FineTuneJob the trainer runs, with the same models the operator uses.

``--config`` may hold a whole FineTuneJob manifest (possibly among other YAML documents) or
just its spec.
"""

from __future__ import annotations

from pathlib import Path

import yaml
from pydantic import ValidationError

from kubetune.api import FineTuneJob, FineTuneJobSpec, OverLength, Reason
from kubetune_trainer.datasets.formats import RecordFormat
from kubetune_trainer.datasets.validation import ValidationOptions
from kubetune_trainer.errors import TrainerError


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


def validation_options(
    spec: FineTuneJobSpec, over_length: OverLength | None = None
) -> ValidationOptions:
    """What the dataset is validated against, from the spec and the over-length policy."""
    fmt = spec.dataset.format.value
    return ValidationOptions(
        max_seq_length=spec.training.max_seq_length,
        fmt=None if fmt == "auto" else RecordFormat(fmt),
        over_length=over_length or spec.dataset.over_length,
    )
