"""What a reconcile observes: a child Job from its event, unless the run already finished."""

from __future__ import annotations

from typing import Any

import pytest

from kubetune.builders.training import training_job_name, validation_job_name
from kubetune.controllers import finetunejob
from kubetune.lifecycle import Action, plan_finetunejob
from support.factories import validated_finetunejob

JOB = validated_finetunejob("Running")
COMPLETE = [
    {"type": "SuccessCriteriaMet", "status": "True"},
    {"type": "Complete", "status": "True"},
]


def _job(name: str, **status: Any) -> dict[str, Any]:
    return {"metadata": {"name": name, "namespace": "default"}, "status": status}


ENDED = _job(training_job_name(JOB), succeeded=1, uncountedTerminatedPods={})
"""The training Job as an event delivered it before the Job controller's verdict."""
DONE = _job(training_job_name(JOB), succeeded=1, conditions=COMPLETE)
"""The same Job now."""


@pytest.fixture
def reads(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The Jobs read from the apiserver; it answers with the finished ones."""
    done: list[str] = []
    validation = _job(validation_job_name(JOB), conditions=COMPLETE)
    jobs = {training_job_name(JOB): DONE, validation_job_name(JOB): validation}

    def get_job(namespace: str, name: str) -> dict[str, Any] | None:
        done.append(name)
        return jobs.get(name)

    monkeypatch.setattr(finetunejob.k8s, "get_job", get_job)
    monkeypatch.setattr(finetunejob.k8s, "list_job_pods", lambda *_: [])
    return done


def test_a_finished_run_reads_its_jobs_afresh_and_deletes_none(reads: list[str]) -> None:
    succeeded = JOB.model_copy(
        update={"status": JOB.status.model_copy(update={"phase": "Succeeded"})}
    )
    obs = finetunejob._observe(succeeded, seen=ENDED)
    assert obs.training == DONE
    assert training_job_name(JOB) in reads
    assert Action.STOP_TRAINING not in plan_finetunejob(obs).actions


def test_a_running_run_takes_the_job_its_event_delivered(
    reads: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(finetunejob, "needs_artifact_check", lambda _: False)
    obs = finetunejob._observe(JOB, seen=ENDED)
    assert obs.training is ENDED
    assert reads == []
