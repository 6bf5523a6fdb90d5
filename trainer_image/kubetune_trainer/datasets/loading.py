"""Read a dataset file into records that remember where they came from.

JSON Lines, JSON arrays and Parquet are read into :class:`RawRecord` values that keep their
1-based line (or row) number, so that every later problem can be reported where a person
would look for it. A line that does not parse becomes a record with an issue rather than an
exception: validation reports all problems at once instead of the first.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from kubetune_trainer.datasets.issues import Issue, Problem, error

SUPPORTED_SUFFIXES = (".jsonl", ".json", ".parquet")
_CHUNK = 1 << 20


@dataclass(frozen=True)
class RawRecord:
    """A parsed record, or the reason it could not be parsed (then ``value`` is None)."""

    line: int
    value: Any
    issue: Issue | None = None


def file_digest(path: Path) -> str:
    """Hex sha256 of the file's bytes."""
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while chunk := handle.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def dataset_digest(digests: dict[str, str]) -> str:
    """The identity of a dataset of one or more files (hex sha256, as the API records it).

    One file: that file's sha256, so ``sha256sum train.jsonl`` gives the same value. Several
    (shards under a prefix): the sha256 of ``sha256sum``-style lines sorted by name.
    """
    if len(digests) == 1:
        return next(iter(digests.values()))
    lines = "".join(f"{digests[name]}  {name}\n" for name in sorted(digests))
    return hashlib.sha256(lines.encode()).hexdigest()


def read_records(path: Path) -> tuple[list[RawRecord], list[Issue]]:
    """Records of the file, and file-level issues (line 0) when it cannot be read as a whole."""
    suffix = path.suffix.lower()
    if suffix not in SUPPORTED_SUFFIXES:
        supported = ", ".join(SUPPORTED_SUFFIXES)
        return [], [
            error(
                0,
                Problem.UNSUPPORTED_FILE_TYPE,
                f"{path.name}: unsupported file type {suffix!r}; use one of {supported}",
            )
        ]
    try:
        data = path.read_bytes()
    except OSError as exc:
        return [], [error(0, Problem.UNREADABLE, f"{path.name}: {exc.strerror or exc}")]
    if suffix == ".parquet":
        return _read_parquet(path)
    if suffix == ".json":
        return _read_json(data)
    return _read_jsonl(data), []


def _read_jsonl(data: bytes) -> list[RawRecord]:
    records = []
    for number, raw in enumerate(data.split(b"\n"), start=1):
        if not raw.strip():
            continue
        records.append(_parse_line(number, raw))
    return records


def _parse_line(number: int, raw: bytes) -> RawRecord:
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        return RawRecord(
            number,
            None,
            error(number, Problem.INVALID_UTF8, f"not valid UTF-8 at byte {exc.start + 1}"),
        )
    try:
        return RawRecord(number, json.loads(text))
    except json.JSONDecodeError as exc:
        return RawRecord(
            number,
            None,
            error(number, Problem.INVALID_JSON, f"invalid JSON at column {exc.colno}: {exc.msg}"),
        )


def _read_json(data: bytes) -> tuple[list[RawRecord], list[Issue]]:
    """A JSON array of records; a ``.json`` file that holds JSON Lines is read as such."""
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        return [], [error(line, Problem.INVALID_UTF8, f"not valid UTF-8 at byte {exc.start + 1}")]
    stripped = text.lstrip()
    if stripped.startswith("["):
        return _read_json_array(text)
    if stripped.startswith("{"):
        try:
            json.loads(text)
        except json.JSONDecodeError:
            return _read_jsonl(data), []
    return [], [
        error(0, Problem.NOT_A_LIST, "a .json dataset must be an array of records (or JSON Lines)")
    ]


def _read_json_array(text: str) -> tuple[list[RawRecord], list[Issue]]:
    """Decode element by element so each record keeps the line it starts on."""
    decoder = json.JSONDecoder()
    records: list[RawRecord] = []
    position = text.index("[") + 1
    while True:
        position = _skip_separators(text, position)
        if position >= len(text):
            return records, [
                error(
                    _line_of(text, position),
                    Problem.INVALID_JSON,
                    "the array is not closed with ']'",
                )
            ]
        if text[position] == "]":
            return records, []
        line = _line_of(text, position)
        try:
            value, position = decoder.raw_decode(text, position)
        except json.JSONDecodeError as exc:
            return records, [
                error(
                    exc.lineno,
                    Problem.INVALID_JSON,
                    f"invalid JSON at column {exc.colno}: {exc.msg}",
                )
            ]
        records.append(RawRecord(line, value))


def _skip_separators(text: str, position: int) -> int:
    while position < len(text) and (text[position].isspace() or text[position] == ","):
        position += 1
    return position


def _line_of(text: str, position: int) -> int:
    return text.count("\n", 0, position) + 1


def _read_parquet(path: Path) -> tuple[list[RawRecord], list[Issue]]:
    import pyarrow.parquet as pq  # only Parquet datasets need pyarrow

    try:
        rows = pq.read_table(path).to_pylist()
    except Exception as exc:  # pyarrow raises many types for a bad file
        return [], [
            error(0, Problem.UNREADABLE, f"{path.name}: not a readable Parquet file: {exc}")
        ]
    return [RawRecord(number, row) for number, row in enumerate(rows, start=1)], []
