"""`kubetune-train validate` checks a job's data with its tokenizer and says why it is bad."""

from __future__ import annotations

import json
import shutil

import pytest
import yaml

from kubetune_trainer.cli import main

GOOD = {
    "messages": [{"role": "user", "content": "Hi?"}, {"role": "assistant", "content": "Hello."}]
}


@pytest.fixture
def volume(tmp_path, monkeypatch, tiny_model):
    """A PVC root holding the tiny model under claim `models`; datasets go under `data`."""
    root = tmp_path / "pvc"
    shutil.copytree(tiny_model, root / "models" / "tiny")
    (root / "data").mkdir()
    monkeypatch.setenv("KUBETUNE_PVC_ROOT", str(root))
    return root


def job(tmp_path, dataset_uri: str, **training) -> str:
    manifest = {
        "apiVersion": "kubetune.io/v1alpha1",
        "kind": "FineTuneJob",
        "metadata": {"name": "demo"},
        "spec": {
            "baseModel": {"name": "tests/tiny-llama", "uri": "pvc://models/tiny"},
            "dataset": {"uri": dataset_uri, "validationSplit": 0.25},
            "method": "lora",
            "training": {"maxSeqLength": 64, **training},
            "output": {"uri": "s3://adapters/demo/"},
            "adapter": {"name": "demo", "version": "v1"},
        },
    }
    path = tmp_path / "job.yaml"
    path.write_text(yaml.safe_dump(manifest))
    return str(path)


def test_valid_data_exits_zero_with_report_and_summary(tmp_path, volume):
    (volume / "data" / "train.jsonl").write_text(
        "\n".join(
            json.dumps(
                {
                    "messages": [
                        {"role": "user", "content": f"q{i}"},
                        {"role": "assistant", "content": f"a{i}"},
                    ]
                }
            )
            for i in range(8)
        )
    )
    report, summary = tmp_path / "report.json", tmp_path / "termination"

    code = main(
        [
            "validate",
            "--config",
            job(tmp_path, "pvc://data/train.jsonl"),
            "--report",
            str(report),
            "--termination-path",
            str(summary),
            "--workdir",
            str(tmp_path / "work"),
        ]
    )

    assert code == 0
    assert json.loads(report.read_text())["trainExamples"] == 6
    written = json.loads(summary.read_text())
    assert written["reason"] == "DatasetValid"
    assert written["dataset"]["records"] == 8
    assert written["dataset"]["evalRecords"] == 2


def test_invalid_data_fails_with_dataset_invalid_and_the_lines(tmp_path, volume, capsys):
    lines = [json.dumps(GOOD), "{oops", json.dumps({"messages": []}), json.dumps(GOOD) + " "]
    (volume / "data" / "bad.jsonl").write_text("\n".join(lines))
    summary = tmp_path / "termination"

    code = main(
        [
            "validate",
            "--config",
            job(tmp_path, "pvc://data/bad.jsonl"),
            "--termination-path",
            str(summary),
            "--workdir",
            str(tmp_path / "work"),
        ]
    )

    assert code == 3
    report = json.loads(capsys.readouterr().out)
    assert [(i["line"], i["problem"]) for i in report["issues"]] == [
        (2, "invalid_json"),
        (3, "empty_conversation"),
        (4, "duplicate"),
    ]
    written = json.loads(summary.read_text())
    assert written["reason"] == "DatasetInvalid"
    assert "line 2: invalid JSON" in written["message"]
    assert "line 3: 'messages' is empty" in written["message"]
    assert written["dataset"]["problems"] == {
        "invalid_json": 1,
        "empty_conversation": 1,
        "duplicate": 1,
    }


def test_over_length_reject_is_a_flag(tmp_path, volume, capsys):
    long = {
        "messages": [
            {"role": "user", "content": "word " * 100},
            {"role": "assistant", "content": "ok"},
        ]
    }
    (volume / "data" / "long.jsonl").write_text(json.dumps(GOOD) + "\n" + json.dumps(long))
    config = job(tmp_path, "pvc://data/long.jsonl")
    common = ["--termination-path", str(tmp_path / "t"), "--workdir", str(tmp_path / "w")]

    rejected = main(["validate", "--config", config, "--over-length", "reject", *common])
    rejected_report = json.loads(capsys.readouterr().out)

    assert rejected == 3
    assert [(i["line"], i["problem"]) for i in rejected_report["issues"]] == [(2, "too_long")]


def test_a_missing_base_model_is_base_model_not_found(tmp_path, volume):
    config = job(tmp_path, "pvc://data/train.jsonl")
    shutil.rmtree(volume / "models" / "tiny")
    summary = tmp_path / "termination"

    code = main(
        [
            "validate",
            "--config",
            config,
            "--termination-path",
            str(summary),
            "--workdir",
            str(tmp_path / "work"),
        ]
    )

    assert code == 3
    assert json.loads(summary.read_text())["reason"] == "BaseModelNotFound"


def test_a_spec_the_api_rejects_is_invalid_spec(tmp_path):
    path = tmp_path / "job.yaml"
    path.write_text(yaml.safe_dump({"baseModel": {"name": "x"}, "method": "sgd"}))
    summary = tmp_path / "termination"

    code = main(["--config", str(path), "--termination-path", str(summary)])

    assert code == 3
    assert json.loads(summary.read_text())["reason"] == "InvalidSpec"
