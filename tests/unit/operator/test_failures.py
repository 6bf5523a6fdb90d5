"""Failure classification: the trainer's reason, then the kubelet's, then the Job's."""

from __future__ import annotations

import json

import pytest

from kubetune.api import Reason
from kubetune.failures import (
    classify_failure,
    image_pull_failure,
    termination_summary,
    was_preempted,
)
from support.factories import k8s_job, pod

FAILED = k8s_job("t", conditions=("Failed:BackoffLimitExceeded",), failed=1)


@pytest.mark.parametrize(
    ("job", "pods", "reason", "in_message"),
    [
        (
            FAILED,
            [pod(message=json.dumps({"reason": "DatasetInvalid", "message": "line 3"}))],
            Reason.DATASET_INVALID,
            "line 3",
        ),
        (
            FAILED,
            [pod(message=json.dumps({"reason": "S3AccessDenied", "message": "denied"}))],
            Reason.S3_ACCESS_DENIED,
            "denied",
        ),
        (
            FAILED,
            [pod(message=json.dumps({"reason": "NaNLoss", "message": "step 7"}))],
            Reason.NAN_LOSS,
            "step 7",
        ),
        (
            FAILED,
            [pod(terminated={"exitCode": 137, "reason": "OOMKilled"})],
            Reason.OUT_OF_MEMORY,
            "memory",
        ),
        (FAILED, [pod(waiting="ErrImagePull")], Reason.IMAGE_PULL_FAILED, "ErrImagePull"),
        (
            FAILED,
            [
                pod(
                    terminated={"exitCode": 137},
                    conditions=[{"type": "DisruptionTarget", "status": "True"}],
                )
            ],
            Reason.PREEMPTED,
            "preempted",
        ),
        (
            k8s_job("t", conditions=("Failed:DeadlineExceeded",)),
            [pod(message=json.dumps({"reason": "TrainerFailed", "message": "SIGTERM"}))],
            Reason.DEADLINE_EXCEEDED,
            "",
        ),
        (
            FAILED,
            [pod(terminated={"exitCode": 2}, message="Traceback: boom")],
            Reason.TRAINER_FAILED,
            "",
        ),
        (FAILED, [], Reason.BACKOFF_LIMIT_EXCEEDED, ""),
        (k8s_job("t"), [], Reason.TRAINER_FAILED, "failed"),
    ],
    ids=[
        "dataset",
        "s3-denied",
        "nan",
        "oom",
        "image",
        "preempted",
        "deadline-wins",
        "crash-log",
        "backoff",
        "unknown",
    ],
)
def test_classify_failure(job, pods, reason: Reason, in_message: str) -> None:
    got, message = classify_failure(job, pods, "trainer")
    assert got == reason
    assert in_message in message


def test_the_newest_pods_summary_wins() -> None:
    old = pod(
        message=json.dumps({"reason": "OutOfMemory", "message": "old"}),
        created="2026-01-01T00:00:00Z",
    )
    new = pod(
        message=json.dumps({"reason": "NaNLoss", "message": "new"}), created="2026-01-02T00:00:00Z"
    )
    assert classify_failure(FAILED, [old, new], "trainer") == (Reason.NAN_LOSS, "new")


@pytest.mark.parametrize("message", ["not json", "[1, 2]", "", None])
def test_a_termination_message_that_is_not_a_summary_is_ignored(message: str | None) -> None:
    assert termination_summary(pod(terminated={}, message=message), "trainer") is None


def test_other_containers_are_not_read() -> None:
    assert (
        termination_summary(pod(message='{"reason": "NaNLoss"}', container="sidecar"), "trainer")
        is None
    )


def test_image_pull_and_preemption_predicates() -> None:
    assert image_pull_failure([pod(), pod(waiting="ContainerCreating")]) is None
    assert "ImagePullBackOff" in image_pull_failure([pod(waiting="ImagePullBackOff")])
    assert was_preempted({"status": {"reason": "Evicted"}})
    assert not was_preempted(pod(conditions=[{"type": "DisruptionTarget", "status": "False"}]))
