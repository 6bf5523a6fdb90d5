"""Files of every supported type load with their line (or row) numbers; splits are seeded."""

from __future__ import annotations

import json

import pyarrow as pa
import pyarrow.parquet as pq

from kubetune_trainer.datasets.loading import dataset_digest, file_digest, read_records
from kubetune_trainer.datasets.preparing import DatasetFile, DatasetSource, prepare_dataset, split
from kubetune_trainer.datasets.tokenization import TokenizedExample
from kubetune_trainer.datasets.validation import ValidationOptions

CHAT = [
    {"messages": [{"role": "user", "content": f"q{i}"}, {"role": "assistant", "content": f"a{i}"}]}
    for i in range(20)
]


def test_jsonl_skips_blank_lines_but_keeps_line_numbers(tmp_path):
    path = tmp_path / "d.jsonl"
    path.write_text('{"text": "a"}\n\n{"text": "b"}\n')

    records, issues = read_records(path)

    assert issues == []
    assert [(r.line, r.value) for r in records] == [(1, {"text": "a"}), (3, {"text": "b"})]


def test_a_json_file_holding_json_lines_is_read_as_such(tmp_path):
    path = tmp_path / "d.json"
    path.write_text('{"text": "a"}\n{"text": "b"}\n')

    records, issues = read_records(path)

    assert issues == []
    assert [r.line for r in records] == [1, 2]


def test_an_unclosed_json_array_keeps_what_parsed_and_reports_the_end(tmp_path):
    path = tmp_path / "d.json"
    path.write_text('[{"text": "a"},\n{"text": "b"}\n')

    records, issues = read_records(path)

    assert [r.line for r in records] == [1, 2]
    assert [(i.line, i.problem) for i in issues] == [(3, "invalid_json")]


def test_parquet_rows_are_numbered_and_nested_messages_survive(tmp_path, tokenizer):
    path = tmp_path / "d.parquet"
    pq.write_table(pa.Table.from_pylist(CHAT[:3]), path)

    records, issues = read_records(path)
    prepared = prepare_dataset(
        DatasetSource.single("s3://b/d.parquet", path),
        tokenizer,
        ValidationOptions(max_seq_length=64),
        validation_split=0,
        seed=0,
    )

    assert issues == []
    assert [r.line for r in records] == [1, 2, 3]
    assert records[0].value == CHAT[0]
    assert prepared.report["format"] == "chat"
    assert prepared.report["trainExamples"] == 3
    assert prepared.digest == file_digest(path)


def test_split_is_seeded_and_disjoint():
    examples = [TokenizedExample([i], [i]) for i in range(100)]

    train, validation = split(examples, 0.1, seed=7)
    again = split(examples, 0.1, seed=7)
    other = split(examples, 0.1, seed=8)

    assert (train, validation) == again
    assert validation != other[1]
    assert len(validation) == 10
    assert sorted(e.input_ids[0] for e in train + validation) == list(range(100))


def test_a_separate_eval_file_is_the_validation_set(tmp_path, tokenizer):
    train_path, eval_path = tmp_path / "train.jsonl", tmp_path / "eval.jsonl"
    train_path.write_text("\n".join(json.dumps(r) for r in CHAT[:10]))
    eval_path.write_text("\n".join(json.dumps(r) for r in CHAT[10:13]) + "\n{")

    prepared = prepare_dataset(
        DatasetSource.single("s3://b/train.jsonl", train_path),
        tokenizer,
        ValidationOptions(max_seq_length=64),
        validation_split=0.5,
        seed=0,
        eval_data=DatasetSource.single("s3://b/eval.jsonl", eval_path),
    )

    assert (len(prepared.train), len(prepared.validation)) == (10, 3)
    assert prepared.report["issues"] == [
        {
            "line": 4,
            "severity": "error",
            "problem": "invalid_json",
            "message": prepared.report["issues"][0]["message"],
            "source": "s3://b/eval.jsonl",
        }
    ]
    assert prepared.report["eval"]["sha256"] == file_digest(eval_path)


def test_shards_are_one_dataset_whose_issues_name_their_file(tmp_path, tokenizer):
    first, second = tmp_path / "part-0.jsonl", tmp_path / "part-1.jsonl"
    first.write_text("\n".join(json.dumps(r) for r in CHAT[:4]))
    second.write_text(json.dumps(CHAT[4]) + '\n{"text": "stray"}\n')
    source = DatasetSource(
        "s3://b/data/",
        (
            DatasetFile("s3://b/data/part-0.jsonl", first),
            DatasetFile("s3://b/data/part-1.jsonl", second),
        ),
    )

    prepared = prepare_dataset(
        source, tokenizer, ValidationOptions(max_seq_length=64), validation_split=0, seed=0
    )

    assert prepared.report["format"] == "chat"
    assert prepared.report["records"] == 6
    assert [(i["source"], i["line"], i["problem"]) for i in prepared.report["issues"]] == [
        ("s3://b/data/part-1.jsonl", 2, "mixed_format")
    ]
    assert prepared.digest == dataset_digest(
        {"part-0.jsonl": file_digest(first), "part-1.jsonl": file_digest(second)}
    )
    assert prepared.digest not in (file_digest(first), file_digest(second))
