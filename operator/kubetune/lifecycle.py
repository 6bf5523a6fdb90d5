"""What a FineTuneJob should become, given what is observed: a pure decision.

The controller observes the FineTuneJob, its validation and training Jobs (by their
deterministic names), their pods when a verdict needs them, and whether the run's artifact
already exists; :func:`plan_finetunejob` returns the status to write and the actions to
take. Running it twice on the same observation gives the same plan, which is what makes an
operator restart, a duplicate event or a retried handler harmless.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any

from pydantic import ValidationError

from kubetune.api import (
    ConditionStatus,
    FineTuneJob,
    FineTuneJobConditionType,
    FineTuneJobPhase,
    FineTuneJobStatus,
    Reason,
)
from kubetune.api.finetunejob import DatasetStatus
from kubetune.builders.training import CONTAINER
from kubetune.failures import classify_failure, image_pull_failure, termination_summary
from kubetune.status import is_true, set_condition

Phase = FineTuneJobPhase
Cond = FineTuneJobConditionType
TERMINAL = {Phase.SUCCEEDED, Phase.FAILED}


class Action(StrEnum):
    START_VALIDATION = "StartValidation"  # config map + validation Job
    START_TRAINING = "StartTraining"  # training Job (+ rendezvous Service)
    SUSPEND_TRAINING = "SuspendTraining"
    RESUME_TRAINING = "ResumeTraining"
    STOP_VALIDATION = "StopValidation"  # delete the validation Job, e.g. on ImagePullFailed
    STOP_TRAINING = "StopTraining"  # delete the training Job (its pods), e.g. on ImagePullFailed
    CREATE_ADAPTER = "CreateAdapter"


@dataclass(frozen=True)
class Observed:
    job: FineTuneJob
    validation: dict[str, Any] | None = None
    training: dict[str, Any] | None = None
    pods: list[dict[str, Any]] = field(default_factory=list)
    """Pods of the Job whose verdict is being read (validation, then training)."""
    artifact_exists: bool | None = None
    """Whether the run's manifest exists in S3; None when it was not looked at."""
    failure: tuple[Reason, str] | None = None
    """A reason the run cannot proceed, found while observing (e.g. a missing Secret)."""
    now: datetime | None = None


@dataclass
class Plan:
    """The status to write and what to do. A plan that reaches a terminal phase carries no
    actions: the terminal status is written first and the next plan (:meth:`settle`) cleans
    up, so a failed write can never leave the run half-stopped and re-planned as new."""

    status: FineTuneJobStatus
    actions: list[Action] = field(default_factory=list)
    events: list[tuple[str, str, str]] = field(default_factory=list)
    """(type Normal|Warning, reason, message) for each transition."""


def _job_condition(job: dict[str, Any] | None, kind: str) -> bool:
    conditions = ((job or {}).get("status") or {}).get("conditions") or []
    return any(c.get("type") == kind and c.get("status") == "True" for c in conditions)


def is_finished(job: dict[str, Any] | None) -> bool:
    return _job_condition(job, "Complete") or _job_condition(job, "Failed")


def needs_pods(job: dict[str, Any] | None) -> bool:
    """Whether a Job's verdict needs a list of its pods: only once it finished (termination
    summaries, failure classification). Before that the Job's status says all the plan
    needs; a pod that cannot pull its image reaches the plan through its own event.
    Listing pods on every Job event was most of the operator's list requests
    (bench/operator_scale.py)."""
    return job is not None and is_finished(job)


def needs_artifact_check(obs: Observed) -> bool:
    """Look in S3 before starting training (maybe it is done) and after it completes."""
    status = obs.job.status or FineTuneJobStatus()
    if status.phase in TERMINAL:
        return False
    validated = is_true(status.conditions, Cond.VALIDATED) or _job_condition(
        obs.validation, "Complete"
    )
    return validated and (obs.training is None or _job_condition(obs.training, "Complete"))


class _Planner:
    def __init__(self, obs: Observed) -> None:
        self.obs = obs
        current = obs.job.status or FineTuneJobStatus()
        self.status = current.model_copy(deep=True)
        self.generation = obs.job.metadata.get("generation")
        self.plan = Plan(self.status)

    def condition(self, type_: Cond, value: bool, reason: Reason, message: str = "") -> None:
        set_condition(
            self.status.conditions,
            type_,
            value,
            reason,
            message,
            generation=self.generation,
            at=self.obs.now,
        )

    def phase(self, phase: Phase, reason: Reason, message: str, *, warning: bool = False) -> None:
        if self.status.phase != phase:
            self.plan.events.append(("Warning" if warning else "Normal", str(reason), message))
        self.status.phase = phase

    def fail(self, reason: Reason, message: str) -> None:
        self.condition(Cond.FAILED, True, reason, message)
        self.condition(Cond.RUNNING, False, reason, message)
        self.finish()
        self.phase(Phase.FAILED, reason, message, warning=True)

    def succeed(self, reason: Reason, message: str) -> None:
        self.condition(Cond.SUCCEEDED, True, reason, message)
        self.condition(Cond.RUNNING, False, reason, message)
        self.finish()
        self.phase(Phase.SUCCEEDED, reason, message)

    def finish(self) -> None:
        """Completion time, and the GPU time the run held (pods x GPUs x wall time)."""
        status, resources = self.status, self.obs.job.spec.resources
        status.completion_time = status.completion_time or self.obs.now
        if status.start_time and status.completion_time and status.gpu_seconds is None:
            seconds = (status.completion_time - status.start_time).total_seconds()
            status.gpu_seconds = int(max(seconds, 0) * resources.gpus * resources.nodes)

    def run(self) -> Plan:
        self.status.observed_generation = self.generation
        if self.status.phase in TERMINAL:
            self.settle()
            return self.plan
        if self.obs.failure is not None:
            self.fail(*self.obs.failure)
            return self.plan
        if not is_true(self.status.conditions, Cond.VALIDATED) and not self.validate():
            return self.plan
        self.train()
        return self.plan

    def settle(self) -> None:
        """A finished run holds no pods and, if it succeeded, has its Adapter; this also
        finishes what a reconcile interrupted after writing the terminal status."""
        obs = self.obs
        if obs.validation is not None and not is_finished(obs.validation):
            self.plan.actions.append(Action.STOP_VALIDATION)
        if obs.training is not None and not is_finished(obs.training):
            self.plan.actions.append(Action.STOP_TRAINING)
        if self.status.phase == Phase.SUCCEEDED and self.status.adapter_ref is None:
            self.plan.actions.append(Action.CREATE_ADAPTER)

    def validate(self) -> bool:
        """Drive validation; True once the dataset is known to be valid."""
        obs = self.obs
        if obs.validation is None:
            self.plan.actions.append(Action.START_VALIDATION)
            self.condition(
                Cond.VALIDATED,
                ConditionStatus.UNKNOWN,
                Reason.VALIDATING_DATASET,
                "validating the dataset on CPU before any GPU is requested",
            )
            self.phase(Phase.VALIDATING, Reason.VALIDATING_DATASET, "dataset validation started")
            return False
        if _job_condition(obs.validation, "Failed"):
            reason, message = classify_failure(obs.validation, obs.pods, CONTAINER)
            self.condition(Cond.VALIDATED, False, reason, message)
            self.fail(reason, message)
            return False
        pull = image_pull_failure(obs.pods)
        if pull and not _job_condition(obs.validation, "Complete"):
            self.condition(Cond.VALIDATED, False, Reason.IMAGE_PULL_FAILED, pull)
            self.fail(Reason.IMAGE_PULL_FAILED, pull)
            return False
        if not _job_condition(obs.validation, "Complete"):
            self.phase(Phase.VALIDATING, Reason.VALIDATING_DATASET, "dataset validation started")
            return False
        summary = next((s for p in obs.pods if (s := termination_summary(p, CONTAINER))), {})
        self.status.dataset = _dataset_status(summary.get("dataset"))
        self.condition(
            Cond.VALIDATED, True, Reason.DATASET_VALID, str(summary.get("message") or "")
        )
        return True

    def train(self) -> None:
        obs, spec = self.obs, self.obs.job.spec
        training = obs.training
        if training is None:
            if obs.artifact_exists:
                self.succeed(
                    Reason.ARTIFACT_EXISTS,
                    "the artifact of this exact run already exists; training skipped",
                )
                return
            self.plan.actions.append(Action.START_TRAINING)
            reason, message = (
                (Reason.QUEUED, f"submitted to queue {spec.queue_name}")
                if spec.queue_name
                else (Reason.JOB_CREATED, "training Job created; waiting for its pods")
            )
            self.phase(Phase.QUEUED, reason, message)
            return
        job_status = training.get("status") or {}
        self.status.job_name = (training.get("metadata") or {}).get("name")
        self.admission(training, spec.queue_name)
        self.status.attempts = max(self.status.attempts, _pods_started(training))
        self.status.start_time = self.status.start_time or _parse_time(job_status.get("startTime"))
        if _job_condition(training, "Complete"):
            if obs.artifact_exists is False:
                self.fail(
                    Reason.TRAINER_FAILED,
                    "the training Job completed but the run's manifest is not in S3",
                )
            else:
                self.apply_summary()
                self.succeed(Reason.COMPLETED, "training completed; adapter published")
            return
        if _job_condition(training, "Failed"):
            self.fail(*classify_failure(training, obs.pods, CONTAINER))
            return
        pull = image_pull_failure(obs.pods)
        if pull:
            self.fail(Reason.IMAGE_PULL_FAILED, pull)
            return
        suspended = bool((training.get("spec") or {}).get("suspend"))
        if spec.suspend:
            if not suspended:
                self.plan.actions.append(Action.SUSPEND_TRAINING)
            self.condition(
                Cond.SUSPENDED, True, Reason.SUSPENDED, "suspended: pods stopped, checkpoints kept"
            )
            self.phase(Phase.SUSPENDED, Reason.SUSPENDED, "training suspended")
            return
        if is_true(self.status.conditions, Cond.SUSPENDED):
            self.condition(Cond.SUSPENDED, False, Reason.TRAINING, "resumed")
        if suspended and not spec.queue_name:
            self.plan.actions.append(Action.RESUME_TRAINING)
            self.phase(Phase.QUEUED, Reason.JOB_CREATED, "resuming from the last checkpoint")
            return
        if suspended:
            self.phase(
                Phase.QUEUED, Reason.QUEUED, f"waiting for admission by queue {spec.queue_name}"
            )
            return
        if _pods_running(training):
            self.condition(Cond.RUNNING, True, Reason.TRAINING, "training pods are running")
            self.phase(Phase.RUNNING, Reason.TRAINING, "training started")
        elif self.status.phase == Phase.RUNNING and _pods_ended(training):
            return  # the Job controller is still counting them; its verdict comes next
        else:
            self.phase(
                Phase.QUEUED, Reason.JOB_CREATED, "training Job created; waiting for its pods"
            )

    def admission(self, training: dict[str, Any], queue: str | None) -> None:
        """Admitted: the training Job may start pods. A queue (Kueue) admits a Job by
        unsuspending it; without one it is admitted when created. A user's suspend leaves
        the condition as it was: that Job was admitted, it is only paused."""
        if not (training.get("spec") or {}).get("suspend"):
            message = f"admitted by queue {queue}" if queue else "no queue: admitted at once"
            self.condition(Cond.ADMITTED, True, Reason.ADMITTED, message)
        elif queue and not self.obs.job.spec.suspend:
            self.condition(Cond.ADMITTED, False, Reason.QUEUED, f"waiting for queue {queue}")

    def apply_summary(self) -> None:
        summary = next((s for p in self.obs.pods if (s := termination_summary(p, CONTAINER))), {})
        metrics = summary.get("metrics") or {}
        if isinstance(summary.get("trainedTokens"), int):
            self.status.trained_tokens = summary["trainedTokens"]
        elif isinstance(metrics.get("trained_tokens"), int):
            self.status.trained_tokens = metrics["trained_tokens"]


def job_signal(job: dict[str, Any]) -> tuple[Any, ...]:
    """All that a plan reads from a Job. The Job controller updates a Job three or four times
    on the way to each verdict; an event whose signal is the one already reconciled cannot
    change a decision, so the controller skips it (bench/operator_scale.py). Whatever the
    plan (or :mod:`kubetune.failures`) starts to read from a Job must be added here."""
    status = job.get("status") or {}
    conditions = sorted(
        tuple(str(c.get(k) or "") for k in ("type", "status", "reason", "message"))
        for c in status.get("conditions") or []
    )
    return (
        (job.get("metadata") or {}).get("name"),
        bool((job.get("spec") or {}).get("suspend")),
        status.get("startTime"),
        _pods_started(job),
        _pods_running(job),
        _pods_ended(job),
        tuple(conditions),
    )


def _pods_started(job: dict[str, Any]) -> int:
    status = job.get("status") or {}
    return sum(int(status.get(k) or 0) for k in ("active", "failed", "succeeded"))


def _pods_running(job: dict[str, Any]) -> bool:
    status = job.get("status") or {}
    return bool(int(status.get("active") or 0) and int(status.get("ready") or 0))


def _pods_ended(job: dict[str, Any]) -> bool:
    """The Job's pods finished but the Job has not said Complete or Failed yet: without
    this, every successful run flipped Running -> Queued ("waiting for its pods") ->
    Succeeded, with a status write and an event for nothing (bench/operator_scale.py)."""
    status = job.get("status") or {}
    uncounted = status.get("uncountedTerminatedPods") or {}
    return (
        bool(uncounted.get("succeeded") or uncounted.get("failed"))
        or int(status.get("succeeded") or 0) > 0
        or _job_condition(job, "SuccessCriteriaMet")
        or _job_condition(job, "FailureTarget")
    )


def _dataset_status(reported: Any) -> DatasetStatus | None:
    """The validation pod's dataset summary, or None when it is not one (any image can end
    the pod with any message)."""
    try:
        return DatasetStatus.model_validate_known(reported) if isinstance(reported, dict) else None
    except ValidationError:
        return None


def _parse_time(value: str | None) -> datetime | None:
    return datetime.fromisoformat(value.replace("Z", "+00:00")) if value else None


def plan_finetunejob(obs: Observed) -> Plan:
    """The status to write and the actions to take for one observation."""
    return _Planner(obs).run()
