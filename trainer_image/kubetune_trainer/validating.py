"""Fetch the tokenizer and the data of a job and validate them: the step before any GPU work.

``kubetune-train validate`` runs only this (the operator can run it on a CPU pod before it
asks for GPUs); ``kubetune-train`` runs it first and stops with DatasetInvalid when the data
is bad, before a single weight is loaded.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from kubetune.api import FineTuneJobSpec, Reason
from kubetune_trainer.datasets.preparing import PreparedDataset, prepare_dataset
from kubetune_trainer.errors import TrainerError
from kubetune_trainer.jobspec import validation_options
from kubetune_trainer.modeling import load_tokenizer
from kubetune_trainer.settings import RunSettings
from kubetune_trainer.sources import ModelRef, fetch_base_model, fetch_dataset

_ISSUES_IN_MESSAGE = 3


@dataclass
class ValidatedInputs:
    """The base model's location, its tokenizer, and the prepared dataset."""

    model: ModelRef
    tokenizer: Any
    dataset: PreparedDataset


def prepare_inputs(
    spec: FineTuneJobSpec, settings: RunSettings, *, weights: bool = True
) -> ValidatedInputs:
    """Fetch the tokenizer and the data and validate the data (without raising for it).

    With ``weights=False`` only the tokenizer files of an S3 base model are downloaded.
    """
    model = fetch_base_model(spec.base_model, settings.workdir, weights=weights)
    tokenizer = load_tokenizer(model)
    train = fetch_dataset(spec.dataset, settings.workdir, spec.dataset.uri)
    eval_data = (
        fetch_dataset(spec.dataset, settings.workdir, spec.dataset.eval_uri)
        if spec.dataset.eval_uri
        else None
    )
    dataset = prepare_dataset(
        train,
        tokenizer,
        validation_options(spec, settings.over_length),
        validation_split=spec.dataset.validation_split,
        seed=spec.training.seed,
        eval_data=eval_data,
    )
    return ValidatedInputs(model, tokenizer, dataset)


def ensure_valid(inputs: ValidatedInputs, spec: FineTuneJobSpec) -> None:
    """Raise DatasetInvalid (with the report's summary) or DigestMismatch."""
    dataset = inputs.dataset
    if not dataset.valid:
        raise TrainerError(
            Reason.DATASET_INVALID,
            describe_problems(dataset.report),
            details={"dataset": dataset_summary(dataset.report)},
        )
    expected = spec.dataset.sha256
    if expected and dataset.digest != expected:
        raise TrainerError(
            Reason.DIGEST_MISMATCH,
            f"{spec.dataset.uri} has sha256 {dataset.digest}, not {expected}",
        )


def describe_problems(report: dict[str, Any]) -> str:
    """A one-line account of the first errors, for a condition message."""
    errors = [i for i in report["issues"] if i["severity"] == "error"]
    shown = "; ".join(f"{_where(i)}: {i['message']}" for i in errors[:_ISSUES_IN_MESSAGE])
    more = report["errorCount"] - min(len(errors), _ISSUES_IN_MESSAGE)
    suffix = f" (and {more} more)" if more > 0 else ""
    return f"{report['errorCount']} problems in {report['uri']}: {shown}{suffix}"


def _where(issue: dict[str, Any]) -> str:
    place = f"line {issue['line']}" if issue["line"] else "file"
    return f"{issue['source']} {place}" if "source" in issue else place


def dataset_summary(report: dict[str, Any]) -> dict[str, Any]:
    """The report's fields the operator records in status.dataset, plus the problem counts."""
    return {
        "sha256": report["sha256"],
        "format": report["format"],
        "records": report["records"],
        "evalRecords": report["validationExamples"],
        "errorCount": report["errorCount"],
        "warningCount": report["warningCount"],
        "problems": report["problems"],
    }
