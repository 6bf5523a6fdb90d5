"""Problems found in a dataset, each tied to the line (or row) where it was found.

Codes are a closed set so that a report can be counted, filtered and documented; the
message says what is wrong in words a person can fix the file with.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Any


class Severity(StrEnum):
    """Errors make the dataset invalid; warnings are fixed up (dropped, truncated) and reported."""

    ERROR = "error"
    WARNING = "warning"


class Problem(StrEnum):
    """What is wrong with one record (or, at line 0, with the file as a whole)."""

    UNREADABLE = "unreadable"  # the file cannot be read at all
    UNSUPPORTED_FILE_TYPE = "unsupported_file_type"
    INVALID_UTF8 = "invalid_utf8"
    INVALID_JSON = "invalid_json"
    NOT_A_LIST = "not_a_list"  # a .json file whose top level is not an array of records
    NOT_AN_OBJECT = "not_an_object"
    UNKNOWN_FORMAT = "unknown_format"  # no field set of any supported format
    MIXED_FORMAT = "mixed_format"  # a record of another format than the dataset's
    MISSING_FIELD = "missing_field"
    WRONG_TYPE = "wrong_type"
    EMPTY_FIELD = "empty_field"
    EMPTY_CONVERSATION = "empty_conversation"
    MESSAGE_NOT_AN_OBJECT = "message_not_an_object"
    UNKNOWN_ROLE = "unknown_role"
    UNSUPPORTED_CONTENT = "unsupported_content"  # e.g. an image part in a text-only dataset
    SYSTEM_NOT_FIRST = "system_not_first"
    ROLE_ORDER = "role_order"  # turns do not alternate user/assistant
    NO_ASSISTANT_TURN = "no_assistant_turn"
    ENDS_WITHOUT_ASSISTANT = "ends_without_assistant"
    TEMPLATE_ERROR = "template_error"  # the tokenizer's chat template rejects the record
    TOO_LONG = "too_long"
    TRUNCATED = "truncated"
    NO_TRAINABLE_TOKENS = "no_trainable_tokens"
    DUPLICATE = "duplicate"
    EMPTY_DATASET = "empty_dataset"
    SPLIT_TOO_SMALL = "split_too_small"


@dataclass(frozen=True)
class Issue:
    """One problem; ``line`` is 1-based (a row number for parquet), 0 for the whole file."""

    line: int
    problem: Problem
    message: str
    severity: Severity = Severity.ERROR
    source: str = ""

    def to_json(self) -> dict[str, Any]:
        """The report's representation: camelCase keys like the rest of the API."""
        out: dict[str, Any] = {
            "line": self.line,
            "severity": str(self.severity),
            "problem": str(self.problem),
            "message": self.message,
        }
        if self.source:
            out["source"] = self.source
        return out


def error(line: int, problem: Problem, message: str) -> Issue:
    """An error at ``line``."""
    return Issue(line, problem, message, Severity.ERROR)


def warning(line: int, problem: Problem, message: str) -> Issue:
    """A warning at ``line``."""
    return Issue(line, problem, message, Severity.WARNING)
