"""Every failure ends with a machine-readable reason in the termination message, and failures
a retry would meet again exit 3 so that the Job fails at once."""

from __future__ import annotations

import json
import signal

import pyarrow as pa
import pyarrow.parquet as pq
import torch
from transformers import AutoModelForCausalLM

from kubetune_trainer import cli, runner


def test_wrong_credentials_are_s3_access_denied(trainer):
    trainer.credentials["KUBETUNE_S3_OUTPUT_AWS_SECRET_ACCESS_KEY"] = "not-the-secret"

    code, summary = trainer.run(trainer.job("denied"))

    assert code == 3
    assert summary["reason"] == "S3AccessDenied"
    assert f"s3://{trainer.bucket}/adapters/denied/" in summary["message"]


def test_invalid_data_fails_before_the_model_is_loaded(trainer, fruit, as_jsonl):
    lines = as_jsonl(fruit(10)).split(b"\n")
    lines[3] = b'{"messages": [{"role": "user", "content": "q"}]}'
    lines[6] = b"not json"
    trainer.put("data/train.jsonl", b"\n".join(lines))

    code, summary = trainer.run(trainer.job("invalid"))

    assert code == 3
    assert summary["reason"] == "DatasetInvalid"
    assert "line 4: the conversation has no assistant turn" in summary["message"]
    assert "line 7: invalid JSON" in summary["message"]
    assert summary["dataset"]["problems"] == {"no_assistant_turn": 1, "invalid_json": 1}
    assert "Loading weights" not in trainer.tmp.joinpath("trainer.log").read_text()


def test_a_missing_base_model_is_base_model_not_found(trainer):
    config = trainer.job(
        "missing",
        baseModel={
            "name": "tests/nothing",
            "uri": f"s3://{trainer.bucket}/models/nothing",
            "endpoint": trainer.s3.endpoint,
        },
    )

    code, summary = trainer.run(config)

    assert code == 3
    assert summary["reason"] == "BaseModelNotFound"
    assert "tests/nothing" in summary["message"]


def test_a_diverging_loss_is_nan_loss(trainer, tiny_model, tmp_path):
    poisoned = AutoModelForCausalLM.from_pretrained(tiny_model)
    with torch.no_grad():
        poisoned.model.layers[0].mlp.down_proj.weight[0, 0] = float("nan")
    poisoned.save_pretrained(tmp_path / "poisoned")
    for name in ("tokenizer.json", "tokenizer_config.json", "chat_template.jinja"):
        (tmp_path / "poisoned" / name).write_bytes((tiny_model / name).read_bytes())
    uri = trainer.put_model(tmp_path / "poisoned", "models/poisoned")
    config = trainer.job(
        "nan",
        method="lora",
        quantization=None,
        baseModel={"name": "tests/poisoned", "uri": uri, "endpoint": trainer.s3.endpoint},
    )

    code, summary = trainer.run(config)

    assert code == 3
    assert summary["reason"] == "NaNLoss"
    assert "learningRate" in summary["message"]


def test_running_out_of_memory_is_out_of_memory(trainer, monkeypatch):
    def exhausted(*args, **kwargs):
        raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 20.00 GiB")

    monkeypatch.setattr(runner, "load_model", exhausted)
    monkeypatch.setattr(signal, "signal", lambda *args: None)
    for name, value in trainer.credentials.items():
        monkeypatch.setenv(name, value)

    code = cli.main(trainer.args(trainer.job("oom")))

    summary = json.loads(trainer.tmp.joinpath("termination.json").read_text())
    assert code == 3
    assert summary["reason"] == "OutOfMemory"
    assert "batchSize 8" in summary["message"]


def test_validate_reads_parquet_and_shards_from_s3(trainer, fruit, as_jsonl):
    records = fruit(12)
    table = trainer.tmp / "part.parquet"
    pq.write_table(pa.Table.from_pylist(records[:6]), table)
    trainer.put("shards/part-0.parquet", table.read_bytes())
    trainer.put("shards/part-1.jsonl", as_jsonl(records[6:]) + b"\n{broken")
    dataset = {
        "uri": f"s3://{trainer.bucket}/shards/",
        "validationSplit": 0.2,
        "endpoint": trainer.s3.endpoint,
    }
    config = trainer.job("shards", dataset=dataset)
    report = trainer.tmp / "report.json"

    code, summary = trainer.run(config, "--report", str(report), command="validate")

    assert code == 3
    assert summary["reason"] == "DatasetInvalid"
    found = json.loads(report.read_text())
    assert found["records"] == 13  # the broken line is a record, reported below
    assert [(i.get("source"), i["line"], i["problem"]) for i in found["issues"]] == [
        (f"s3://{trainer.bucket}/shards/part-1.jsonl", 7, "invalid_json")
    ]
    assert [f["name"] for f in found["files"]] == ["part-0.parquet", "part-1.jsonl"]
