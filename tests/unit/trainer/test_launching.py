"""One pod, several GPUs or nodes: the trainer starts torchrun itself, and keeps exit code 3."""

from __future__ import annotations

import json
import sys

import pytest

from kubetune_trainer.launching import exit_code, plan_launch

ARGV = ["train", "--config", "/etc/kubetune/job.yaml"]
PREFIX = [sys.executable, "-m", "torch.distributed.run"]
SUFFIX = ["-m", "kubetune_trainer.cli", *ARGV]


@pytest.mark.parametrize(
    ("env", "gpus", "expected"),
    [
        ({}, 0, None),
        ({}, 1, None),
        ({"LOCAL_RANK": "0"}, 4, None),
        ({}, 4, [*PREFIX, "--nproc_per_node=4", "--standalone", *SUFFIX]),
        (
            {"KUBETUNE_NPROC_PER_NODE": "2"},
            0,
            [*PREFIX, "--nproc_per_node=2", "--standalone", *SUFFIX],
        ),
        (
            {
                "NNODES": "2",
                "NODE_RANK": "1",
                "MASTER_ADDR": "job-train-0.job-train",
                "MASTER_PORT": "29500",
            },
            8,
            [
                *PREFIX,
                "--nproc_per_node=8",
                "--nnodes=2",
                "--node_rank=1",
                "--master_addr=job-train-0.job-train",
                "--master_port=29500",
                *SUFFIX,
            ],
        ),
    ],
)
def test_plan_launch(env, gpus, expected):
    assert plan_launch(env, gpus, ARGV) == expected


@pytest.mark.parametrize(
    ("returncode", "summary", "expected"),
    [
        (0, None, 0),
        (1, {"reason": "DatasetInvalid"}, 3),
        (1, {"reason": "S3Unavailable"}, 1),
        (1, None, 1),
    ],
)
def test_exit_code_follows_the_workers_reason(tmp_path, returncode, summary, expected):
    path = tmp_path / "termination-log"
    if summary is not None:
        path.write_text(json.dumps(summary))

    assert exit_code(returncode, path) == expected
