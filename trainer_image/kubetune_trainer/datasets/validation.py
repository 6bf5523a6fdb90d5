"""Check every record of a dataset file and tokenize the valid ones, collecting all problems.

Validation runs the same parsing and tokenization as training, so a dataset that validates
trains, and the token-length check uses the real tokenizer and chat template. Exact
duplicates and over-long records are fixed up (dropped, truncated) with a warning unless the
options say to reject them; everything else that is wrong is an error tied to its line.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from kubetune.api import OverLength
from kubetune_trainer.datasets.formats import (
    Completion,
    Conversation,
    Example,
    RecordFormat,
    parse_record,
    resolve_format,
)
from kubetune_trainer.datasets.issues import Issue, Problem, error, warning
from kubetune_trainer.datasets.loading import RawRecord
from kubetune_trainer.datasets.tokenization import TemplateError, TokenizedExample, tokenize

MAX_CHARS_PER_TOKEN = 256
"""A record longer than maxSeqLength times this many characters is refused untokenized: no
tokenizer averages tokens that long, and tokenizing a 10 MB line costs about a gigabyte of
memory and many seconds, a cheap way for one line to stall or kill validation."""


@dataclass(frozen=True)
class ValidationOptions:
    """What the dataset is checked against; ``fmt`` None means detect it."""

    max_seq_length: int
    fmt: RecordFormat | None = None
    over_length: OverLength = OverLength.TRUNCATE
    drop_duplicates: bool = True


@dataclass
class ValidatedFile:
    """The outcome for one file: its examples in file order, and every issue found."""

    fmt: RecordFormat | None
    records: int
    examples: list[TokenizedExample] = field(default_factory=list)
    issues: list[Issue] = field(default_factory=list)


def validate_records(
    records: Sequence[RawRecord], tokenizer: Any, options: ValidationOptions
) -> ValidatedFile:
    """Parse, de-duplicate and tokenize ``records``; never raises for bad data.

    Issues come in line order; an empty ``records`` yields no issue (the caller knows why).
    """
    fmt = options.fmt or resolve_format([r.value for r in records if r.issue is None])
    result = ValidatedFile(fmt, len(records))
    result.issues.extend(r.issue for r in records if r.issue is not None)
    if fmt is None:
        # No record has a known shape: any format reports each one as unrecognised.
        for record in records:
            if record.issue is None:
                result.issues.extend(parse_record(record.line, record.value, RecordFormat.TEXT)[1])
        return result
    seen: dict[str, int] = {}
    for record in records:
        if record.issue is not None:
            continue
        if options.drop_duplicates and _is_duplicate(record, seen, result.issues):
            continue
        example, issues = parse_record(record.line, record.value, fmt)
        result.issues.extend(issues)
        if example is None:
            continue
        size, limit = _characters(example), options.max_seq_length * MAX_CHARS_PER_TOKEN
        if size > limit:
            message = f"{size} characters, far over maxSeqLength {options.max_seq_length} tokens"
            result.issues.append(error(record.line, Problem.TOO_LONG, message))
            continue
        try:
            tokenized = tokenize(example, tokenizer)
        except TemplateError as exc:
            result.issues.append(error(record.line, Problem.TEMPLATE_ERROR, str(exc)))
            continue
        checked = _check_length(record.line, tokenized, options, result.issues)
        if checked is not None:
            result.examples.append(checked)
    result.issues.sort(key=lambda issue: issue.line)
    return result


def _characters(example: Example) -> int:
    if isinstance(example, Conversation):
        return sum(len(m.content) for m in example.messages)
    if isinstance(example, Completion):
        return len(example.prompt) + len(example.completion)
    return len(example.text)


def _is_duplicate(record: RawRecord, seen: dict[str, int], issues: list[Issue]) -> bool:
    key = json.dumps(record.value, sort_keys=True, ensure_ascii=False)
    first = seen.setdefault(key, record.line)
    if first == record.line:
        return False
    issues.append(
        warning(record.line, Problem.DUPLICATE, f"exact duplicate of line {first}; dropped")
    )
    return True


def _check_length(
    line: int, example: TokenizedExample, options: ValidationOptions, issues: list[Issue]
) -> TokenizedExample | None:
    limit = options.max_seq_length
    length = len(example)
    if length > limit and options.over_length == OverLength.REJECT:
        issues.append(error(line, Problem.TOO_LONG, f"{length} tokens, over maxSeqLength {limit}"))
        return None
    example = example.truncated(limit)
    if example.trainable_tokens == 0:
        issues.append(
            error(
                line,
                Problem.NO_TRAINABLE_TOKENS,
                f"no completion or assistant tokens within the first {limit} tokens",
            )
        )
        return None
    if length > limit:
        issues.append(
            warning(line, Problem.TRUNCATED, f"{length} tokens, truncated to maxSeqLength {limit}")
        )
    return example
