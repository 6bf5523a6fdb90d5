"""Every kind of malformed data is reported with its line and its problem, and nothing else is."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from kubetune_trainer.datasets.formats import RecordFormat
from kubetune_trainer.datasets.issues import Problem
from kubetune_trainer.datasets.preparing import DatasetSource, prepare_dataset
from kubetune_trainer.datasets.validation import OverLength, ValidationOptions

GOOD = {
    "messages": [{"role": "user", "content": "Hi?"}, {"role": "assistant", "content": "Hello."}]
}
LONG_PROMPT = {
    "messages": [
        {"role": "user", "content": "word " * 200},
        {"role": "assistant", "content": "ok"},
    ]
}


def chat(*turns: tuple[str, Any]) -> dict[str, Any]:
    return {"messages": [{"role": role, "content": content} for role, content in turns]}


# (id, the record at line 2 between two good ones, options, expected problem, words in message)
LINE_CASES: list[tuple[str, Any, dict[str, Any], Problem, str]] = [
    ("invalid-json", b'{"messages": [', {}, Problem.INVALID_JSON, "invalid JSON"),
    ("invalid-utf8", b'{"text": "caf\xe9"}', {}, Problem.INVALID_UTF8, "UTF-8"),
    ("not-an-object", [GOOD], {}, Problem.NOT_AN_OBJECT, "an array"),
    ("unknown-format", {"question": "q", "answer": "a"}, {}, Problem.UNKNOWN_FORMAT, "'messages'"),
    ("mixed-format", {"text": "plain"}, {}, Problem.MIXED_FORMAT, "text format"),
    (
        "missing-content",
        {"messages": [{"role": "user"}]},
        {},
        Problem.MISSING_FIELD,
        "messages[0].content",
    ),
    ("messages-not-a-list", {"messages": "hello"}, {}, Problem.WRONG_TYPE, "must be a list"),
    (
        "content-not-a-string",
        chat(("user", 42), ("assistant", "x")),
        {},
        Problem.WRONG_TYPE,
        "a number",
    ),
    (
        "blank-content",
        chat(("user", "  "), ("assistant", "x")),
        {},
        Problem.EMPTY_FIELD,
        "messages[0].content",
    ),
    ("empty-conversation", {"messages": []}, {}, Problem.EMPTY_CONVERSATION, "empty"),
    (
        "message-not-an-object",
        {"messages": ["hi"]},
        {},
        Problem.MESSAGE_NOT_AN_OBJECT,
        "messages[0]",
    ),
    ("unknown-role", chat(("user", "q"), ("bot", "a")), {}, Problem.UNKNOWN_ROLE, "'bot'"),
    (
        "image-part",
        {
            "messages": [
                {"role": "user", "content": [{"type": "image_url", "image_url": {"url": "x"}}]},
                {"role": "assistant", "content": "a"},
            ]
        },
        {},
        Problem.UNSUPPORTED_CONTENT,
        "image_url",
    ),
    (
        "system-not-first",
        chat(("user", "q"), ("system", "s"), ("assistant", "a")),
        {},
        Problem.SYSTEM_NOT_FIRST,
        "messages[1]",
    ),
    (
        "two-user-turns",
        chat(("user", "q"), ("user", "q2"), ("assistant", "a")),
        {},
        Problem.ROLE_ORDER,
        "two user turns in a row at messages[1]",
    ),
    (
        "starts-with-assistant",
        chat(("assistant", "a"), ("user", "q"), ("assistant", "a")),
        {},
        Problem.ROLE_ORDER,
        "must start with a user turn",
    ),
    (
        "no-assistant",
        chat(("system", "s"), ("user", "q")),
        {},
        Problem.NO_ASSISTANT_TURN,
        "no assistant turn",
    ),
    (
        "ends-with-user",
        chat(("user", "q"), ("assistant", "a"), ("user", "q2")),
        {},
        Problem.ENDS_WITHOUT_ASSISTANT,
        "ends with a user turn",
    ),
    (
        "bad-weight",
        {
            "messages": [
                {"role": "user", "content": "q"},
                {"role": "assistant", "content": "a", "weight": 0.5},
            ]
        },
        {},
        Problem.WRONG_TYPE,
        "weight must be 0 or 1",
    ),
    (
        "too-long",
        LONG_PROMPT,
        {"over_length": OverLength.REJECT},
        Problem.TOO_LONG,
        "over maxSeqLength 64",
    ),
    (
        "nothing-left-after-truncation",
        LONG_PROMPT,
        {},
        Problem.NO_TRAINABLE_TOKENS,
        "within the first 64 tokens",
    ),
    (
        "all-turns-weight-zero",
        {
            "messages": [
                {"role": "user", "content": "q"},
                {"role": "assistant", "content": "a", "weight": 0},
            ]
        },
        {},
        Problem.NO_TRAINABLE_TOKENS,
        "no completion or assistant tokens",
    ),
]

FORMAT_CASES: list[tuple[str, RecordFormat, Any, Problem, str]] = [
    (
        "instruction-without-output",
        RecordFormat.INSTRUCTION,
        {"instruction": "do"},
        Problem.MISSING_FIELD,
        "'output'",
    ),
    (
        "instruction-input-not-string",
        RecordFormat.INSTRUCTION,
        {"instruction": "do", "input": ["x"], "output": "done"},
        Problem.WRONG_TYPE,
        "'input'",
    ),
    (
        "completion-prompt-not-string",
        RecordFormat.COMPLETION,
        {"prompt": 1, "completion": "c"},
        Problem.WRONG_TYPE,
        "'prompt'",
    ),
    (
        "completion-empty",
        RecordFormat.COMPLETION,
        {"prompt": "p", "completion": ""},
        Problem.EMPTY_FIELD,
        "'completion'",
    ),
    (
        "text-null",
        RecordFormat.TEXT,
        {"text": None, "prompt": None},
        Problem.UNKNOWN_FORMAT,
        "none of the fields",
    ),
]

VALID = {
    RecordFormat.INSTRUCTION: {"instruction": "Say hi.", "input": "", "output": "Hi."},
    RecordFormat.COMPLETION: {"prompt": "2+2=", "completion": "4"},
    RecordFormat.TEXT: {"text": "Some text."},
}


def write_jsonl(path: Path, records: list[Any]) -> Path:
    lines = [r if isinstance(r, bytes) else json.dumps(r).encode() for r in records]
    path.write_bytes(b"\n".join(lines) + b"\n")
    return path


def report_for(path: Path, tokenizer: Any, split: float = 0.0, **options: Any) -> dict[str, Any]:
    opts = ValidationOptions(max_seq_length=options.pop("max_seq_length", 64), **options)
    prepared = prepare_dataset(
        DatasetSource.single(str(path), path), tokenizer, opts, validation_split=split, seed=1
    )
    return prepared.report


def found(report: dict[str, Any]) -> list[tuple[int, str]]:
    return [(i["line"], i["problem"]) for i in report["issues"]]


@pytest.mark.parametrize(
    ("record", "options", "problem", "words"),
    [c[1:] for c in LINE_CASES],
    ids=[c[0] for c in LINE_CASES],
)
def test_malformed_chat_record_is_reported_at_its_line(
    tmp_path, tokenizer, record, options, problem, words
):
    path = write_jsonl(
        tmp_path / "data.jsonl", [GOOD, record, chat(("user", "b"), ("assistant", "c"))]
    )

    report = report_for(path, tokenizer, **options)

    assert found(report) == [(2, problem)]
    assert words in report["issues"][0]["message"]
    assert report["valid"] is False
    assert report["problems"] == {str(problem): 1}


@pytest.mark.parametrize(
    ("fmt", "record", "problem", "words"),
    [c[1:] for c in FORMAT_CASES],
    ids=[c[0] for c in FORMAT_CASES],
)
def test_malformed_record_of_other_formats(tmp_path, tokenizer, fmt, record, problem, words):
    path = write_jsonl(tmp_path / "data.jsonl", [VALID[fmt], record])

    report = report_for(path, tokenizer, fmt=fmt)

    assert found(report) == [(2, problem)]
    assert words in report["issues"][0]["message"]


def test_at_least_fifteen_kinds_of_malformed_data_are_covered():
    kinds = {c[3] for c in LINE_CASES} | {c[3] for c in FORMAT_CASES} | set(FILE_CASES_PROBLEMS)
    assert len(kinds) >= 15


FILE_CASES_PROBLEMS = [
    Problem.EMPTY_DATASET,
    Problem.NOT_A_LIST,
    Problem.UNSUPPORTED_FILE_TYPE,
    Problem.UNREADABLE,
    Problem.SPLIT_TOO_SMALL,
]


@pytest.mark.parametrize(
    ("name", "content", "split", "problem"),
    [
        ("empty.jsonl", b"\n\n", 0.0, Problem.EMPTY_DATASET),
        ("object.json", b'{"messages": []}', 0.0, Problem.NOT_A_LIST),
        ("data.csv", b"a,b\n", 0.0, Problem.UNSUPPORTED_FILE_TYPE),
        ("missing.jsonl", None, 0.0, Problem.UNREADABLE),
        ("one.jsonl", json.dumps(GOOD).encode(), 0.1, Problem.SPLIT_TOO_SMALL),
    ],
)
def test_file_level_problems_are_reported_at_line_zero(
    tmp_path, tokenizer, name, content, split, problem
):
    path = tmp_path / name
    if content is not None:
        path.write_bytes(content)

    report = report_for(path, tokenizer, split=split)

    assert found(report) == [(0, problem)]
    assert report["valid"] is False


def test_duplicates_and_truncation_are_warnings_that_keep_the_dataset_valid(tmp_path, tokenizer):
    long_answer = chat(("user", "q"), ("assistant", "word " * 200))
    path = write_jsonl(tmp_path / "data.jsonl", [GOOD, long_answer, GOOD])

    report = report_for(path, tokenizer)

    assert found(report) == [(2, "truncated"), (3, "duplicate")]
    assert "exact duplicate of line 1" in report["issues"][1]["message"]
    assert {i["severity"] for i in report["issues"]} == {"warning"}
    assert report["valid"] is True
    assert report["trainExamples"] == 2
    assert report["tokens"]["max"] == 64


def test_duplicates_are_kept_when_asked(tmp_path, tokenizer):
    path = write_jsonl(tmp_path / "data.jsonl", [GOOD, GOOD])

    report = report_for(path, tokenizer, drop_duplicates=False)

    assert report["issues"] == []
    assert report["trainExamples"] == 2


def test_every_problem_of_a_record_is_reported_not_only_the_first(tmp_path, tokenizer):
    record = {"messages": [{"role": "bot", "content": ""}, {"content": 3}]}
    path = write_jsonl(tmp_path / "data.jsonl", [GOOD, record])

    report = report_for(path, tokenizer)

    assert sorted(found(report)) == [
        (2, "empty_field"),
        (2, "missing_field"),
        (2, "unknown_role"),
        (2, "wrong_type"),
    ]


def test_a_template_that_rejects_a_conversation_is_reported(tmp_path, tokenizer):
    strict = type(tokenizer).from_pretrained(tokenizer.name_or_path)
    strict.chat_template = (
        "{% if messages[0]['role'] == 'system' %}{{ raise_exception('no system role') }}{% endif %}"
        + tokenizer.chat_template
    )
    path = write_jsonl(
        tmp_path / "data.jsonl", [GOOD, chat(("system", "s"), ("user", "q"), ("assistant", "a"))]
    )

    report = report_for(path, strict)

    assert found(report) == [(2, "template_error")]
    assert "no system role" in report["issues"][0]["message"]


def test_json_array_records_are_reported_at_the_line_they_start(tmp_path, tokenizer):
    path = tmp_path / "data.json"
    path.write_text('[\n  {"text": "a"},\n  {"text": ""},\n  {\n    "text": 5\n  }\n]\n')

    report = report_for(path, tokenizer)

    assert found(report) == [(3, "empty_field"), (4, "wrong_type")]


def test_report_counts_problems_and_caps_the_listed_issues(tmp_path, tokenizer):
    path = write_jsonl(tmp_path / "data.jsonl", [GOOD] + [b"{"] * 250)

    report = report_for(path, tokenizer)

    assert report["errorCount"] == 250
    assert report["problems"] == {"invalid_json": 250}
    assert len(report["issues"]) == 200
    assert report["issuesTruncated"] is True
    assert len(report["sha256"]) == 64
