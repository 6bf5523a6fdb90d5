"""A Job event is skipped when its signal was already reconciled: that is safe only if every
Job the plan would decide differently about has a different signal."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from kubetune.api import FineTuneJob
from kubetune.lifecycle import Observed, job_signal, plan_finetunejob
from support.factories import finetunejob_body, k8s_job, validated_finetunejob

NOW = datetime(2026, 11, 29, 12, 0, tzinfo=UTC)
TIMES = st.sampled_from([None, "2026-11-29T10:00:00Z", "2026-11-29T10:05:00Z"])
CONDITIONS = [
    {"type": "Complete"},
    {"type": "Failed", "reason": "BackoffLimitExceeded", "message": "backoff limit reached"},
    {"type": "Failed", "reason": "PodFailurePolicy", "message": "container trainer exit 3"},
    {"type": "Failed", "reason": "DeadlineExceeded"},
    {"type": "SuccessCriteriaMet"},
    {"type": "FailureTarget", "reason": "PodFailurePolicy"},
    {"type": "Suspended"},
]


@st.composite
def jobs(draw: st.DrawFn) -> dict[str, Any]:
    """Job states as the Job controller writes them, including fields no decision reads."""
    conditions = [
        {**c, "status": draw(st.sampled_from(["True", "False"])), "lastTransitionTime": draw(TIMES)}
        for c in draw(st.lists(st.sampled_from(CONDITIONS), max_size=3, unique_by=str))
    ]
    status = {
        "conditions": conditions,
        "startTime": draw(TIMES),
        "completionTime": draw(TIMES),
        "uncountedTerminatedPods": draw(
            st.sampled_from([{}, {"succeeded": ["uid-1"]}, {"failed": ["uid-2"]}])
        ),
        **{
            counter: draw(st.integers(0, 2))
            for counter in ("active", "ready", "succeeded", "failed", "terminating")
        },
    }
    metadata = {"name": draw(st.sampled_from(["run-train", "run-validate"]))}
    metadata["resourceVersion"] = str(draw(st.integers(1, 9)))
    return {"metadata": metadata, "spec": {"suspend": draw(st.booleans())}, "status": status}


def _fresh() -> FineTuneJob:
    return FineTuneJob.model_validate(finetunejob_body())


def _decisions(job: dict[str, Any]) -> list[Any]:
    """Every plan the Job could take part in: as validation Job; as training Job, before and
    after the run's artifact is in S3."""
    done = k8s_job("run-validate", conditions=("Complete",))
    running = validated_finetunejob(phase="Running")
    plans = [
        plan_finetunejob(Observed(job=_fresh(), now=NOW, validation=job)),
        *(
            plan_finetunejob(
                Observed(
                    job=running, now=NOW, validation=done, training=job, artifact_exists=exists
                )
            )
            for exists in (None, True)
        ),
    ]
    return [(p.status.model_dump(mode="json"), p.actions, p.events) for p in plans]


FIELDS = [
    ("spec", "suspend"),
    ("metadata", "name"),
    ("metadata", "resourceVersion"),
    *(
        ("status", f)
        for f in (
            "conditions",
            "startTime",
            "completionTime",
            "uncountedTerminatedPods",
            "active",
            "ready",
            "succeeded",
            "failed",
            "terminating",
        )
    ),
]


@settings(max_examples=600, deadline=None)
@given(jobs(), jobs(), st.sets(st.sampled_from(FIELDS), min_size=1, max_size=3))
def test_jobs_with_one_signal_get_one_decision(
    first: dict[str, Any], other: dict[str, Any], fields: set[tuple[str, str]]
) -> None:
    """``second`` is ``first`` with a few fields from ``other``: often the same signal."""
    second = {part: dict(first[part]) for part in ("metadata", "spec", "status")}
    for part, field in fields:
        second[part][field] = other[part][field]
    if job_signal(first) == job_signal(second):
        assert _decisions(first) == _decisions(second)


@settings(max_examples=200, deadline=None)
@given(jobs(), st.sampled_from(["completionTime", "terminating", "resourceVersion", "times"]))
def test_what_no_decision_reads_leaves_the_signal_alone(job: dict[str, Any], field: str) -> None:
    changed = {**job, "metadata": dict(job["metadata"]), "status": dict(job["status"])}
    if field == "resourceVersion":
        changed["metadata"]["resourceVersion"] = "10"
    elif field == "times":
        changed["status"]["conditions"] = [
            {**c, "lastTransitionTime": "2026-11-29T11:59:00Z", "lastProbeTime": "x"}
            for c in job["status"]["conditions"]
        ]
    else:
        changed["status"][field] = "2026-11-29T11:59:00Z" if field == "completionTime" else 7
    assert job_signal(changed) == job_signal(job)


def test_the_job_controllers_updates_on_the_way_to_a_verdict() -> None:
    """A training Job's usual updates: created, started, pod ready, pod ended, success
    criteria met, complete. Which of them can change a decision."""
    created = k8s_job("run-train")
    started = k8s_job("run-train", active=1)
    ready = k8s_job("run-train", active=1, ready=1)
    ended = k8s_job("run-train", active=1, ready=0)
    ended["status"]["uncountedTerminatedPods"] = {"succeeded": ["uid-1"]}
    criteria = k8s_job("run-train", succeeded=1, conditions=("SuccessCriteriaMet",))
    criteria["status"]["startTime"] = started["status"]["startTime"]
    counted = {**criteria, "status": {**criteria["status"], "terminating": 0}}
    complete = k8s_job("run-train", succeeded=1, conditions=("SuccessCriteriaMet", "Complete"))
    complete["status"]["startTime"] = started["status"]["startTime"]
    sequence = [created, started, ready, ended, criteria, counted, complete]
    signals = [job_signal(job) for job in sequence]
    changed = [i for i in range(1, len(signals)) if signals[i] != signals[i - 1]]
    assert changed == [1, 2, 3, 4, 6]  # "counted" (a counter no decision reads) is skipped
