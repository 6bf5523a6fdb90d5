"""The FineTuneJob lifecycle as a pure decision: observation in, status and actions out."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import pytest

from kubetune.api import FineTuneJob, Reason
from kubetune.lifecycle import (
    Action,
    Observed,
    needs_artifact_check,
    needs_pods,
    plan_finetunejob,
)
from support.factories import (
    finetunejob_body,
    k8s_job,
    make_finetunejob,
    pod,
    validated_finetunejob,
)

NOW = datetime(2026, 11, 29, 12, 0, tzinfo=UTC)
VALID = json.dumps(
    {
        "phase": "Validated",
        "reason": "DatasetValid",
        "message": "",
        "dataset": {"records": 90, "evalRecords": 10, "format": "chat"},
    }
)


def _plan(job: FineTuneJob, **observed: Any):
    return plan_finetunejob(Observed(job=job, now=NOW, **observed))


def _condition(plan, kind: str) -> tuple[str, str]:
    found = next(c for c in plan.status.conditions if c.type == kind)
    return found.status.value, found.reason


@pytest.mark.parametrize(
    ("observed", "phase", "actions"),
    [
        ({}, "Validating", [Action.START_VALIDATION]),
        ({"validation": k8s_job("v", active=1)}, "Validating", []),
        (
            {
                "validation": k8s_job("v", conditions=("Complete",)),
                "pods": [pod(message=VALID)],
                "artifact_exists": False,
            },
            "Queued",
            [Action.START_TRAINING],
        ),
        (
            {
                "validation": k8s_job("v", conditions=("Complete",)),
                "pods": [pod(message=VALID)],
                "artifact_exists": True,
            },
            "Succeeded",
            [],
        ),
        (
            {
                "validation": k8s_job("v", conditions=("Failed:BackoffLimitExceeded",)),
                "pods": [pod(message='{"reason": "DatasetInvalid", "message": "line 4: empty"}')],
            },
            "Failed",
            [],
        ),
        (
            {"validation": k8s_job("v", active=1), "pods": [pod(waiting="ErrImagePull")]},
            "Failed",
            [],
        ),
        ({"failure": (Reason.SECRET_NOT_FOUND, "Secret s3-creds not found")}, "Failed", []),
    ],
    ids=["new", "validating", "valid", "artifact-exists", "invalid", "image-pull", "secret"],
)
def test_validation_stage(observed: dict[str, Any], phase: str, actions: list[Action]) -> None:
    plan = _plan(make_finetunejob(), **observed)
    assert plan.status.phase == phase
    assert plan.actions == actions


def test_valid_dataset_report_lands_in_status() -> None:
    plan = _plan(
        make_finetunejob(),
        validation=k8s_job("v", conditions=("Complete",)),
        pods=[pod(message=VALID)],
        artifact_exists=False,
    )
    assert plan.status.dataset.records == 90
    assert plan.status.dataset.eval_records == 10
    assert _condition(plan, "Validated") == ("True", "DatasetValid")


@pytest.mark.parametrize(
    ("training", "pods", "spec", "phase", "actions", "reason"),
    [
        (k8s_job("t", active=1), [], {}, "Queued", [], "JobCreated"),
        (k8s_job("t", active=1, ready=1), [pod()], {}, "Running", [], "Training"),
        (
            k8s_job("t", active=1, ready=1),
            [pod()],
            {"suspend": True},
            "Suspended",
            [Action.SUSPEND_TRAINING],
            "Suspended",
        ),
        (k8s_job("t", suspend=True), [], {}, "Queued", [Action.RESUME_TRAINING], "JobCreated"),
        (k8s_job("t", suspend=True), [], {"queueName": "gpus"}, "Queued", [], "Queued"),
        (
            k8s_job("t", active=1),
            [pod(waiting="ImagePullBackOff")],
            {},
            "Failed",
            [],
            "ImagePullFailed",
        ),
        (
            k8s_job("t", conditions=("Failed:DeadlineExceeded",), failed=1),
            [pod(terminated={})],
            {},
            "Failed",
            [],
            "DeadlineExceeded",
        ),
        (
            k8s_job("t", conditions=("Failed:BackoffLimitExceeded",), failed=3),
            [pod(terminated={"exitCode": 137, "reason": "OOMKilled"})],
            {},
            "Failed",
            [],
            "OutOfMemory",
        ),
    ],
    ids=[
        "pending-pods",
        "running",
        "suspend",
        "resume",
        "queued-by-kueue",
        "image-pull",
        "deadline",
        "oom",
    ],
)
def test_training_stage(
    training: dict[str, Any],
    pods: list[dict[str, Any]],
    spec: dict[str, Any],
    phase: str,
    actions: list[Action],
    reason: str,
) -> None:
    plan = _plan(validated_finetunejob(**spec), training=training, pods=pods)
    assert plan.status.phase == phase
    assert plan.actions == actions
    assert reason in {e[1] for e in plan.events} | {c.reason for c in plan.status.conditions}


@pytest.mark.parametrize(
    ("training", "spec", "admitted"),
    [
        (k8s_job("t", active=1), {}, ("True", "Admitted")),
        (k8s_job("t", suspend=True), {"queueName": "gpus"}, ("False", "Queued")),
        (k8s_job("t", active=1), {"queueName": "gpus"}, ("True", "Admitted")),
    ],
    ids=["no-queue", "waiting-for-kueue", "admitted-by-kueue"],
)
def test_admission_and_the_job_name(
    training: dict[str, Any], spec: dict[str, Any], admitted: tuple[str, str]
) -> None:
    plan = _plan(validated_finetunejob(**spec), training=training, pods=[])
    assert _condition(plan, "Admitted") == admitted
    assert plan.status.job_name == "t"


def test_a_user_suspend_does_not_unadmit() -> None:
    plan = _plan(validated_finetunejob(suspend=True), training=k8s_job("t", suspend=True), pods=[])
    assert plan.status.phase == "Suspended"
    assert all(c.type != "Admitted" for c in plan.status.conditions)


def test_completed_training_succeeds_only_when_the_manifest_exists() -> None:
    done = k8s_job("t", conditions=("Complete",), succeeded=1)
    assert (
        _plan(validated_finetunejob(), training=done, artifact_exists=True).status.phase
        == "Succeeded"
    )
    missing = _plan(validated_finetunejob(), training=done, artifact_exists=False)
    assert missing.status.phase == "Failed"
    assert missing.actions == []


def _finished(phase: str, **status: Any) -> FineTuneJob:
    body = finetunejob_body()
    body["status"] = {"phase": phase, **status}
    return FineTuneJob.model_validate(body)


@pytest.mark.parametrize(
    ("job", "observed", "actions"),
    [
        (_finished("Failed"), {"validation": k8s_job("v", active=1)}, [Action.STOP_VALIDATION]),
        (_finished("Failed"), {"training": k8s_job("t", active=1)}, [Action.STOP_TRAINING]),
        (_finished("Failed"), {"training": k8s_job("t", conditions=("Failed",))}, []),
        (
            _finished("Succeeded"),
            {"training": k8s_job("t", conditions=("Complete",))},
            [Action.CREATE_ADAPTER],
        ),
        (
            _finished("Succeeded", adapterRef="support-bot-v3"),
            {"training": k8s_job("t", conditions=("Complete",))},
            [],
        ),
    ],
    ids=["stop-validation", "stop-training", "keep-failed-job", "publish", "published"],
)
def test_a_finished_run_settles(
    job: FineTuneJob, observed: dict[str, Any], actions: list[Action]
) -> None:
    """After the terminal status is written, the next plan cleans up and publishes."""
    plan = _plan(job, **observed)
    assert plan.actions == actions
    assert plan.events == []


def test_terminal_jobs_are_left_alone_and_replanning_changes_nothing() -> None:
    first = _plan(
        make_finetunejob(), validation=k8s_job("v", conditions=("Failed:BackoffLimitExceeded",))
    )
    body = finetunejob_body()
    body["status"] = first.status.model_dump(mode="json", by_alias=True, exclude_none=True)
    again = _plan(
        FineTuneJob.model_validate(body), validation=k8s_job("v", conditions=("Complete",))
    )
    assert again.status == first.status
    assert (again.actions, again.events) == ([], [])


def test_an_event_only_on_transitions() -> None:
    first = _plan(validated_finetunejob(), training=k8s_job("t", active=1, ready=1), pods=[pod()])
    body = finetunejob_body()
    body["status"] = first.status.model_dump(mode="json", by_alias=True, exclude_none=True)
    second = _plan(
        FineTuneJob.model_validate(body), training=k8s_job("t", active=1, ready=1), pods=[pod()]
    )
    assert [e[1] for e in first.events] == ["Training"]
    assert second.events == []
    running = next(c for c in second.status.conditions if c.type == "Running")
    assert (
        running.last_transition_time
        == next(c for c in first.status.conditions if c.type == "Running").last_transition_time
    )


def test_attempts_follow_the_jobs_pod_counters() -> None:
    plan = _plan(
        validated_finetunejob(), training=k8s_job("t", active=1, failed=2, ready=1), pods=[pod()]
    )
    assert plan.status.attempts == 3


@pytest.mark.parametrize(
    ("observed", "expected"),
    [
        ({}, False),
        ({"validation": k8s_job("v", conditions=("Complete",))}, True),
        (
            {
                "validation": k8s_job("v", conditions=("Complete",)),
                "training": k8s_job("t", active=1),
            },
            False,
        ),
        (
            {
                "validation": k8s_job("v", conditions=("Complete",)),
                "training": k8s_job("t", conditions=("Complete",)),
            },
            True,
        ),
    ],
)
def test_s3_is_consulted_only_before_and_after_training(
    observed: dict[str, Any], expected: bool
) -> None:
    assert needs_artifact_check(Observed(job=make_finetunejob(), **observed)) is expected


@pytest.mark.parametrize(
    ("job", "listed"),
    [
        (None, False),
        (k8s_job("t"), False),  # no pod yet: its creation updates the Job
        (k8s_job("t", active=1), False),  # a stuck pod comes with its own event
        (k8s_job("t", active=2, ready=1), False),
        (k8s_job("t", active=1, ready=1), False),  # running: the status says enough
        (k8s_job("t", suspend=True), False),
        (k8s_job("t", conditions=("Complete",), succeeded=1), True),  # termination summary
        (k8s_job("t", conditions=("Failed:BackoffLimitExceeded",), failed=3), True),
    ],
)
def test_pods_are_listed_only_when_the_verdict_needs_them(
    job: dict[str, Any] | None, listed: bool
) -> None:
    assert needs_pods(job) is listed


def _running() -> FineTuneJob:
    job = validated_finetunejob()
    status = _plan(job, training=k8s_job("t", active=1, ready=1)).status
    assert status.phase == "Running"
    return job.model_copy(update={"status": status})


@pytest.mark.parametrize(
    "ended",
    [
        {"uncountedTerminatedPods": {"succeeded": ["pod-uid"]}},
        {"succeeded": 1},
        {"conditions": [{"type": "SuccessCriteriaMet", "status": "True"}]},
        {"failed": 1, "conditions": [{"type": "FailureTarget", "status": "True"}]},
    ],
    ids=["uncounted", "counted", "success-criteria-met", "failure-target"],
)
def test_pods_that_ended_before_the_jobs_verdict_keep_the_run_running(
    ended: dict[str, Any],
) -> None:
    training = {"metadata": {"name": "t"}, "spec": {"suspend": False}, "status": ended}
    plan = _plan(_running(), training=training)
    assert plan.status.phase == "Running"
    assert (plan.actions, plan.events) == ([], [])


def test_a_running_job_whose_pod_is_gone_waits_for_the_next_one() -> None:
    plan = _plan(_running(), training=k8s_job("t", failed=1))
    assert plan.status.phase == "Queued"
