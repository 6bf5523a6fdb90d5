"""A run killed mid-way resumes from its newest complete checkpoint and ends exactly where an
uninterrupted run ends; while it runs, progress is readable in S3 and on /metrics.

16-bit LoRA, because its CPU arithmetic does not depend on the run's history: bitsandbytes
repacks 4-bit weights for CPU inference at the first eval-mode forward and unpacks them when
a checkpoint is saved, so a 4-bit run's later steps use other kernels after a resume.
"""

from __future__ import annotations

import json
import re
import socket
import urllib.request

import pytest

from kubetune.api import Progress
from support.polling import eventually

TRAINING = {
    "maxSteps": 100,
    "learningRate": 5e-3,
    "batchSize": 8,
    "gradientAccumulationSteps": 1,
    "maxSeqLength": 64,
    "packing": True,
    "evalSteps": 100,
    "saveSteps": 10,
    "loggingSteps": 1,
    "precision": "fp32",
    "seed": 7,
}


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def complete_steps(trainer, prefix: str) -> list[int]:
    return sorted(
        int(key.split("/")[-2].removeprefix("step-"))
        for key in trainer.keys(prefix)
        if key.endswith("/COMPLETE")
    )


def scraped_step(port: int) -> float:
    text = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=2).read().decode()
    match = re.search(r'^kubetune_trainer_step\{run_id="[0-9a-f]+"\} (\S+)$', text, re.M)
    return float(match.group(1)) if match else 0.0


def test_killed_run_resumes_and_matches_an_uninterrupted_run(trainer):
    config = trainer.job("resume", method="lora", quantization=None, training=TRAINING)
    port = free_port()
    process = trainer.popen(config, "--metrics-port", str(port))
    try:
        marker = eventually(
            lambda: [k for k in trainer.keys("adapters/resume/") if k.endswith("/COMPLETE")],
            timeout=180,
            interval=0.05,
            what="a complete checkpoint",
        )
        run_prefix = marker[0].split("checkpoints/")[0]
        assert eventually(lambda: scraped_step(port) > 0, timeout=10, what="metrics step")
        progress = eventually(
            lambda: Progress.model_validate_known(
                json.loads(trainer.get(run_prefix + "progress.json"))
            ),
            timeout=10,
            what="progress.json",
        )
        assert progress.total_steps == 100
        assert process.poll() is None, "the run finished before it could be killed"
    finally:
        process.kill()
    assert process.wait(timeout=30) == -9
    saved = complete_steps(trainer, run_prefix + "checkpoints/")
    assert saved
    assert saved[-1] < 100

    code, resumed = trainer.run(config)

    assert code == 0, trainer.tmp.joinpath("trainer.log").read_text()[-3000:]
    assert resumed["resumedFromStep"] == saved[-1]
    assert resumed["step"] == 100
    trainer.verified_manifest(resumed)

    code, reference = trainer.run(config, "--run-id", "uninterrupted")
    assert code == 0
    assert reference["resumedFromStep"] is None
    assert resumed["metrics"]["trained_tokens"] == reference["metrics"]["trained_tokens"]
    assert resumed["metrics"]["eval_loss"] == pytest.approx(
        reference["metrics"]["eval_loss"], rel=1e-4
    )
