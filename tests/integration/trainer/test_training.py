"""The trainer learns a task with 4-bit QLoRA, 8-bit and 16-bit LoRA, and publishes a verifiable
adapter that changes what the model generates."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from peft import PeftModel
from transformers import AutoModelForCausalLM, AutoTokenizer

from kubetune.api import Progress

PROMPT = [{"role": "user", "content": "What color is the banana? (1000)"}]


def download(trainer, uri: str, directory: Path) -> Path:
    prefix = uri.removeprefix(f"s3://{trainer.bucket}/")
    for key in trainer.keys(prefix):
        target = directory / key.removeprefix(prefix)
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(trainer.get(key))
    return directory


def generate(model, tokenizer) -> str:
    ids = tokenizer.apply_chat_template(
        PROMPT, add_generation_prompt=True, return_tensors="pt", return_dict=True
    )["input_ids"]
    with torch.no_grad():
        out = model.generate(
            ids, max_new_tokens=8, do_sample=False, pad_token_id=tokenizer.pad_token_id
        )
    return tokenizer.decode(out[0, ids.shape[1] :], skip_special_tokens=True)


def test_qlora_4bit_learns_and_publishes_a_verifiable_adapter(trainer, tiny_model, tmp_path):
    config = trainer.job("fruit")

    code, summary = trainer.run(config)

    assert code == 0, trainer.tmp.joinpath("trainer.log").read_text()[-3000:]
    assert summary["reason"] == "Completed"
    assert summary["step"] == summary["totalSteps"] == 50
    start, end = summary["initialEvalLoss"], summary["metrics"]["eval_loss"]
    assert end <= start / 2, f"eval loss {start:.3f} -> {end:.3f}"
    manifest = trainer.verified_manifest(summary)
    names = {f.path for f in manifest.files}
    assert {"adapter_model.safetensors", "adapter_config.json", "tokenizer.json"} <= names
    assert manifest.base_model == {"name": "tests/tiny-llama", "revision": "main"}
    assert manifest.lora["r"] == 16
    assert manifest.dataset["sha256"] == summary["dataset"]["sha256"]
    assert manifest.metrics["perplexity"] == pytest.approx(2.718281828**end, rel=1e-6)

    run = summary["runId"]
    report = json.loads(trainer.get(f"adapters/fruit/{run}/progress.json"))
    progress = Progress.model_validate_known(report)
    assert (progress.step, progress.total_steps, progress.percent) == (50, 50, 100)
    assert (
        report["checkpointUri"]
        == f"s3://{trainer.bucket}/adapters/fruit/{run}/checkpoints/step-000050/"
    )
    assert report["trainedTokens"] == summary["trainedTokens"]
    markers = [
        k for k in trainer.keys(f"adapters/fruit/{run}/checkpoints/") if k.endswith("COMPLETE")
    ]
    assert [m.split("/")[-2] for m in sorted(markers)] == ["step-000025", "step-000050"]

    adapter = download(trainer, summary["artifactUri"], tmp_path / "adapter")
    tokenizer = AutoTokenizer.from_pretrained(adapter)
    base = AutoModelForCausalLM.from_pretrained(tiny_model).eval()
    before = generate(base, tokenizer)
    tuned = PeftModel.from_pretrained(base, adapter).eval()
    after = generate(tuned, tokenizer)
    assert after != before
    assert after.startswith("Answer:"), after

    again, second = trainer.run(config)
    assert again == 0
    assert second["reason"] == "ArtifactExists"
    assert second["manifestDigest"] == summary["manifestDigest"]


@pytest.mark.parametrize(
    ("method", "quantization"),
    [
        ("lora", None),
        ("qlora", {"bits": 8}),
    ],
)
def test_lora_16bit_and_8bit_learn(trainer, method, quantization):
    """Also unpacked batches, gradient accumulation and a linear schedule."""
    spec = {
        "method": method,
        "quantization": quantization,
        "training": {
            "maxSteps": 40,
            "learningRate": 1e-2,
            "scheduler": "linear",
            "batchSize": 4,
            "gradientAccumulationSteps": 2,
            "maxSeqLength": 64,
            "packing": False,
            "evalSteps": 40,
            "saveSteps": 40,
            "precision": "fp32",
            "seed": 42,
        },
    }
    config = trainer.job(f"fruit-{method}", **spec)

    code, summary = trainer.run(config)

    assert code == 0, trainer.tmp.joinpath("trainer.log").read_text()[-3000:]
    assert summary["metrics"]["eval_loss"] <= summary["initialEvalLoss"] / 2
    trainer.verified_manifest(summary)


def test_two_processes_train_one_adapter(trainer):
    """`kubetune-train train` starts one worker per GPU; KUBETUNE_NPROC_PER_NODE=2 does it on
    CPU (gloo), as the operator's pod would run it."""
    config = trainer.job(
        "fruit-ddp",
        training={
            "maxSteps": 24,
            "learningRate": 1e-2,
            "batchSize": 4,
            "gradientAccumulationSteps": 1,
            "maxSeqLength": 64,
            "packing": True,
            "evalSteps": 24,
            "saveSteps": 12,
            "seed": 42,
        },
    )
    trainer.credentials["KUBETUNE_NPROC_PER_NODE"] = "2"

    code, summary = trainer.run(config)

    assert code == 0, trainer.tmp.joinpath("trainer.log").read_text()[-3000:]
    assert summary["metrics"]["eval_loss"] < summary["initialEvalLoss"]
    trainer.verified_manifest(summary)
    checkpoint = f"adapters/fruit-ddp/{summary['runId']}/checkpoints/step-000024/"
    files = {k.removeprefix(checkpoint) for k in trainer.keys(checkpoint)}
    assert {
        "rng_state_0.pth",
        "rng_state_1.pth",
        "optimizer.pt",
        "scheduler.pt",
        "trainer_state.json",
        "COMPLETE",
    } <= files
    marker = json.loads(trainer.get(checkpoint + "COMPLETE"))
    assert marker["worldSize"] == 2


def test_early_stopping_ends_a_run_that_stopped_improving(trainer):
    training = {
        "maxSteps": 40,
        "learningRate": 1e-7,
        "batchSize": 8,
        "maxSeqLength": 64,
        "evalSteps": 5,
        "saveSteps": 40,
        "earlyStopping": {"patience": 2, "threshold": 0.5},
    }
    config = trainer.job("fruit-stop", method="lora", quantization=None, training=training)

    code, summary = trainer.run(config)

    assert code == 0, trainer.tmp.joinpath("trainer.log").read_text()[-3000:]
    assert summary["stoppedEarly"] is True
    # Evaluations at steps 5 (the baseline), 10 and 15 (two without improvement); the one
    # before training does not count.
    assert summary["step"] == 15
    trainer.verified_manifest(summary)
