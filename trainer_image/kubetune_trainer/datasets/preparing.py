"""From dataset files to train and validation examples plus the JSON report about them.

This is what both ``kubetune-train validate`` and training run: read every file of the
dataset (one file or the shards under a prefix), validate and tokenize it, split off a
seeded validation set (or use the separate eval data), and summarise everything in one
report. The split depends only on the seed and the data, so a resumed run trains on the
same examples in the same order.
"""

from __future__ import annotations

import random
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from kubetune_trainer.datasets.formats import resolve_format
from kubetune_trainer.datasets.issues import Issue, Problem, Severity, error
from kubetune_trainer.datasets.loading import dataset_digest, file_digest, read_records
from kubetune_trainer.datasets.tokenization import TokenizedExample
from kubetune_trainer.datasets.validation import ValidationOptions, validate_records

MAX_REPORTED_ISSUES = 200


@dataclass(frozen=True)
class DatasetFile:
    """A dataset file already on local disk, and the URI it was fetched from."""

    uri: str
    path: Path


@dataclass(frozen=True)
class DatasetSource:
    """The dataset as the spec names it (``uri``) and its local files, in name order."""

    uri: str
    files: tuple[DatasetFile, ...]

    @classmethod
    def single(cls, uri: str, path: Path) -> DatasetSource:
        """A dataset of one file."""
        return cls(uri, (DatasetFile(uri, path),))


@dataclass
class PreparedDataset:
    """Tokenized examples ready to batch, and the report that describes them."""

    train: list[TokenizedExample]
    validation: list[TokenizedExample]
    report: dict[str, Any]

    @property
    def valid(self) -> bool:
        """Whether training may proceed."""
        return bool(self.report["valid"])

    @property
    def digest(self) -> str:
        """The dataset identity recorded in the manifest (hex sha256 of the training data)."""
        return str(self.report["sha256"])


@dataclass
class _Validated:
    examples: list[TokenizedExample]
    issues: list[Issue]
    summary: dict[str, Any]


def prepare_dataset(
    train: DatasetSource,
    tokenizer: Any,
    options: ValidationOptions,
    *,
    validation_split: float,
    seed: int,
    eval_data: DatasetSource | None = None,
) -> PreparedDataset:
    """Validate, tokenize and split; the report says ``valid: false`` instead of raising."""
    trained = _validate_source(train, tokenizer, options)
    issues = list(trained.issues)
    if eval_data is not None:
        evaluated = _validate_source(eval_data, tokenizer, options, always_name_source=True)
        issues += evaluated.issues
        train_part, validation_part = trained.examples, evaluated.examples
    else:
        train_part, validation_part = split(trained.examples, validation_split, seed)
        # Only once the records are fixed is it known whether there are too few of them.
        fixable = any(i.severity == Severity.ERROR for i in issues)
        if validation_split > 0 and not validation_part and not fixable:
            issues.append(
                error(
                    0,
                    Problem.SPLIT_TOO_SMALL,
                    f"{len(trained.examples)} valid records are too few to split off "
                    f"a validation set of {validation_split:.0%}",
                )
            )
    report = {
        **trained.summary,
        "trainExamples": len(train_part),
        "validationExamples": len(validation_part),
        "tokens": _token_stats(train_part + validation_part),
        **_issue_summary(issues),
    }
    if eval_data is not None:
        report["eval"] = evaluated.summary
    return PreparedDataset(train_part, validation_part, report)


def split(
    examples: list[TokenizedExample], fraction: float, seed: int
) -> tuple[list[TokenizedExample], list[TokenizedExample]]:
    """A seeded split; the validation part has at least one example when ``fraction`` > 0."""
    if fraction <= 0 or len(examples) < 2:
        return list(examples), []
    count = min(len(examples) - 1, max(1, round(len(examples) * fraction)))
    order = list(range(len(examples)))
    random.Random(seed).shuffle(order)
    chosen = set(order[:count])
    train = [e for i, e in enumerate(examples) if i not in chosen]
    validation = [e for i, e in enumerate(examples) if i in chosen]
    return train, validation


def _validate_source(
    source: DatasetSource,
    tokenizer: Any,
    options: ValidationOptions,
    *,
    always_name_source: bool = False,
) -> _Validated:
    """One format for all files (detected over all of them); issues name their file when
    there are several, or when asked (the eval data)."""
    name_source = always_name_source or len(source.files) > 1
    loaded = [(file, *read_records(file.path)) for file in source.files]
    fmt = options.fmt or resolve_format(
        [r.value for _, records, _ in loaded for r in records if r.issue is None]
    )
    file_options = ValidationOptions(
        options.max_seq_length, fmt, options.over_length, options.drop_duplicates
    )
    examples: list[TokenizedExample] = []
    issues: list[Issue] = []
    digests: dict[str, str] = {}
    records_total = 0
    for file, records, file_issues in loaded:
        result = validate_records(records, tokenizer, file_options)
        examples += result.examples
        records_total += len(records)
        found = file_issues + result.issues
        if not records and not file_issues:
            found.append(error(0, Problem.EMPTY_DATASET, f"{file.path.name} has no records"))
        issues += [_with_source(i, file.uri) if name_source else i for i in found]
        if file.path.is_file():
            digests[file.uri.removeprefix(source.uri.rstrip("/") + "/")] = file_digest(file.path)
    if not source.files:
        issues.append(error(0, Problem.EMPTY_DATASET, f"no dataset files at {source.uri}"))
    summary: dict[str, Any] = {
        "uri": source.uri,
        "sha256": dataset_digest(digests) if digests else None,
        "format": str(fmt) if fmt else None,
        "records": records_total,
    }
    if len(source.files) > 1:
        summary["files"] = [{"name": name, "sha256": digest} for name, digest in digests.items()]
    return _Validated(examples, issues, summary)


def _with_source(issue: Issue, source: str) -> Issue:
    return Issue(issue.line, issue.problem, issue.message, issue.severity, source)


def _issue_summary(issues: list[Issue]) -> dict[str, Any]:
    errors = sum(1 for i in issues if i.severity == "error")
    return {
        "valid": errors == 0,
        "errorCount": errors,
        "warningCount": len(issues) - errors,
        "problems": dict(Counter(str(i.problem) for i in issues)),
        "issues": [i.to_json() for i in issues[:MAX_REPORTED_ISSUES]],
        "issuesTruncated": len(issues) > MAX_REPORTED_ISSUES,
    }


def _token_stats(examples: list[TokenizedExample]) -> dict[str, int]:
    lengths = [len(e) for e in examples]
    return {
        "total": sum(lengths),
        "trainable": sum(e.trainable_tokens for e in examples),
        "max": max(lengths, default=0),
        "mean": round(sum(lengths) / len(lengths)) if lengths else 0,
    }
