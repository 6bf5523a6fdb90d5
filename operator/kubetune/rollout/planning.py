"""What an InferenceDeployment's rollout should do next, given what is observed: a pure
decision.

The controller observes the object, the adapters the spec resolves to, the serving pods,
a fresh analysis measurement when one was due, and the ``rollout-action`` annotation;
:func:`plan_rollout` returns the status to write (stable and canary adapters, step, weight,
analysis, conditions, phase) and the events to send. The manifests follow from that status,
so deciding and rendering never disagree, and running the planner twice on one observation
changes nothing the second time.

The rules, in order:

1. A manual ``promote`` or ``abort`` acts at once on a running canary.
2. The resolved adapters are compared with the stable and canary revisions: the first set
   becomes stable directly; a new set starts a canary (after the eval gate), or replaces the
   stable set at once without ``spec.rollout``; a set that changes mid-canary restarts the
   canary from step 0 against the current stable; a set that was rolled back is not retried
   until the resolution changes.
3. A running canary is analysed when a measurement arrived, rolled back after
   ``failureLimit`` failed checks, and advanced once its step's pause is over, its pods are
   settled, and (with analysis) the latest check of this step passed; after the last step it
   is promoted.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum

from kubetune.api import (
    Adapter,
    AnalysisResult,
    CanaryStatus,
    InferenceDeployment,
    InferenceDeploymentConditionType,
    InferenceDeploymentPhase,
    InferenceDeploymentStatus,
    Reason,
    ResolvedAdapter,
    RevisionStatus,
    TrafficRouting,
)
from kubetune.rollout.analyzing import (
    Measurement,
    check_eval_gate,
    evaluate,
    parse_duration,
    record,
)
from kubetune.rollout.pods import ServingPods
from kubetune.rollout.resolving import Problem, Resolution, revision_of
from kubetune.rollout.traffic import effective_weight, split_replicas
from kubetune.status import get_condition, set_condition

Phase = InferenceDeploymentPhase
Cond = InferenceDeploymentConditionType
ROLLBACK_REASONS = {Reason.ANALYSIS_FAILED, Reason.EVAL_GATE_FAILED, Reason.ABORTED}
"""Outcomes that leave the deployment RolledBack (Degraded: Git is not what serves)."""


class RolloutAction(StrEnum):
    """Values of the ``kubetune.io/rollout-action`` annotation."""

    PROMOTE = "promote"
    ABORT = "abort"


@dataclass(frozen=True)
class Observed:
    deployment: InferenceDeployment
    resolution: Resolution
    now: datetime
    adapters: Mapping[str, Adapter] = field(default_factory=dict)
    """Adapters of the namespace by name: for the eval gate and to see that every adapter
    in service still exists."""
    pods: ServingPods = field(default_factory=ServingPods)
    routing: TrafficRouting = TrafficRouting.IN_POD
    measurement: Measurement | None = None
    """A canary measurement, present only when an analysis check was due."""
    action: str | None = None
    """The rollout-action annotation, if set."""
    selector: str | None = None
    endpoints: list[str] = field(default_factory=list)


@dataclass
class Plan:
    status: InferenceDeploymentStatus
    apply: bool = True
    """False when the adapters in service cannot all be found: nothing may be re-rendered."""
    remove_action: bool = False
    events: list[tuple[str, str, str]] = field(default_factory=list)
    """(type Normal|Warning, reason, message) for each transition."""


class _Planner:
    def __init__(self, obs: Observed) -> None:
        self.obs = obs
        self.spec = obs.deployment.spec
        current = obs.deployment.status or InferenceDeploymentStatus()
        self.status = current.model_copy(deep=True)
        self.generation = obs.deployment.metadata.get("generation")
        self.plan = Plan(self.status)
        self.outcome: tuple[Reason, str] | None = None

    def event(self, reason: Reason, message: str, *, warning: bool = False) -> None:
        self.plan.events.append(("Warning" if warning else "Normal", str(reason), message))

    def condition(self, type_: Cond, value: bool, reason: Reason | str, message: str) -> None:
        set_condition(
            self.status.conditions,
            type_,
            value,
            reason,
            message,
            generation=self.generation,
            at=self.obs.now,
        )

    def run(self) -> Plan:
        obs, status = self.obs, self.status
        status.observed_generation = self.generation
        status.routing = obs.routing
        status.selector = obs.selector
        status.endpoints = list(obs.endpoints)
        status.replicas, status.ready_replicas = obs.pods.replicas, obs.pods.ready
        if obs.action is not None:
            self.act(obs.action)
        if obs.resolution.problem is None:
            self.follow(obs.resolution.adapters)
        if status.canary is not None:
            self.progress(status.canary)
        self.summarize()
        return self.plan

    # Transitions.

    def act(self, action: str) -> None:
        self.plan.remove_action = True
        canary = self.status.canary
        if action not in set(RolloutAction):
            message = f"unknown rollout action {action!r}; expected promote or abort"
            self.event(Reason.ACTION_IGNORED, message, warning=True)
        elif canary is None:
            self.event(Reason.ACTION_IGNORED, f"{action}: no canary is in progress", warning=True)
        elif action == RolloutAction.PROMOTE:
            self.promote(canary, "promoted by the rollout-action annotation")
        else:
            self.roll_back(canary, Reason.ABORTED, "aborted by the rollout-action annotation")

    def follow(self, desired: list[ResolvedAdapter]) -> None:
        status, revision = self.status, revision_of(desired)
        stable, canary = status.stable, status.canary
        if stable is None or (self.spec.rollout is None and revision != stable.revision):
            status.stable, status.canary = RevisionStatus(revision=revision, adapters=desired), None
            self.outcome = (Reason.DEPLOYED, f"serving {revision or 'the base model'}")
            self.event(Reason.DEPLOYED, self.outcome[1])
        elif revision in (stable.revision, status.rolled_back_revision):
            if canary is not None:
                status.canary = None
                message = f"canary {canary.revision} cancelled: {revision} is desired again"
                self.outcome = (Reason.CANARY_CANCELLED, message)
                self.event(Reason.CANARY_CANCELLED, message)
        elif canary is None or canary.revision != revision:
            self.start_canary(desired, stable, restarted_from=canary)

    def start_canary(
        self,
        desired: list[ResolvedAdapter],
        stable: RevisionStatus,
        *,
        restarted_from: CanaryStatus | None,
    ) -> None:
        rollout, revision = self.spec.rollout, revision_of(desired)
        assert rollout is not None
        if rollout.eval_gate is not None:
            refused = check_eval_gate(
                rollout.eval_gate, stable.adapters, desired, self.obs.adapters
            )
            if refused is not None:
                self.status.canary = None
                self.status.rolled_back_revision = revision
                self.outcome = (Reason.EVAL_GATE_FAILED, refused)
                self.event(Reason.EVAL_GATE_FAILED, f"{revision} refused: {refused}", warning=True)
                return
        first = rollout.steps[0]
        self.status.canary = CanaryStatus(
            revision=revision,
            adapters=desired,
            step=0,
            weight=first.weight,
            step_started_at=self.obs.now,
        )
        steps = f"at {first.weight}% (step 1 of {len(rollout.steps)}) against {stable.revision}"
        if restarted_from is None:
            self.event(Reason.CANARY_PROGRESSING, f"canary {revision} started {steps}")
        else:
            message = f"{revision} replaces canary {restarted_from.revision}; restarted {steps}"
            self.event(Reason.CANARY_RESTARTED, message)

    def progress(self, canary: CanaryStatus) -> None:
        rollout, obs = self.spec.rollout, self.obs
        if rollout is None:
            self.promote(canary, "spec.rollout was removed")
            return
        steps = rollout.steps
        canary.step = min(canary.step, len(steps) - 1)
        canary.weight = steps[canary.step].weight
        analysis = rollout.analysis
        if analysis is not None and obs.measurement is not None:
            result, message = evaluate(analysis, obs.measurement)
            canary.analysis = record(canary.analysis, result, message, obs.measurement, obs.now)
            if result == AnalysisResult.FAILED:
                failures, limit = canary.analysis.failures, analysis.failure_limit
                if failures >= limit:
                    self.roll_back(canary, Reason.ANALYSIS_FAILED, message)
                    return
                self.event(
                    Reason.ANALYSIS_FAILED,
                    f"check {failures} of {limit} failed: {message}",
                    warning=True,
                )
        started = canary.step_started_at or obs.now
        if obs.now - started < parse_duration(steps[canary.step].pause) or not obs.pods.settled:
            return
        if analysis is not None and not (
            canary.analysis is not None
            and canary.analysis.result == AnalysisResult.PASSED
            and canary.analysis.last_checked_at is not None
            and canary.analysis.last_checked_at >= started
        ):
            return
        if canary.step + 1 == len(steps):
            self.promote(canary, f"promoted after {len(steps)} steps")
            return
        canary.step += 1
        canary.weight = steps[canary.step].weight
        canary.step_started_at = obs.now
        self.event(
            Reason.CANARY_PROGRESSING,
            f"canary {canary.revision} at {canary.weight}% (step {canary.step + 1} of "
            f"{len(steps)})",
        )

    def promote(self, canary: CanaryStatus, why: str) -> None:
        self.status.stable = RevisionStatus(revision=canary.revision, adapters=canary.adapters)
        self.status.canary = None
        self.outcome = (Reason.PROMOTED, f"{canary.revision} {why}")
        self.event(Reason.PROMOTED, self.outcome[1])

    def roll_back(self, canary: CanaryStatus, reason: Reason, why: str) -> None:
        self.status.canary = None
        self.status.rolled_back_revision = canary.revision
        stable = self.status.stable.revision if self.status.stable else "nothing"
        self.outcome = (reason, f"canary {canary.revision} rolled back to {stable}: {why}")
        self.event(Reason.ROLLED_BACK, self.outcome[1], warning=True)

    # Conditions and phase.

    def missing_in_service(self) -> Problem | None:
        tracks = [t for t in (self.status.stable, self.status.canary) if t is not None]
        for ref in sorted({a.adapter_ref for t in tracks for a in t.adapters}):
            if ref not in self.obs.adapters:
                self.plan.apply = False
                return Problem(Reason.ADAPTER_NOT_FOUND, f"Adapter {ref!r} in service is gone")
        return None

    def canary_message(self, canary: CanaryStatus) -> str:
        steps = len(self.spec.rollout.steps) if self.spec.rollout else 1
        stable = self.status.stable.revision if self.status.stable else "nothing"
        message = (
            f"canary {canary.revision} at {canary.weight}% (step {canary.step + 1} of {steps}) "
            f"against {stable}"
        )
        if self.obs.routing == TrafficRouting.REPLICAS:
            stable_pods, canary_pods = split_replicas(self.spec.replicas, canary.weight)
            share = effective_weight(stable_pods, canary_pods)
            message += f"; {canary_pods} canary and {stable_pods} stable pods ({share}%)"
        if canary.analysis is not None and canary.analysis.message:
            message += f"; last check {canary.analysis.result}: {canary.analysis.message}"
        return message

    def summarize(self) -> None:
        status, pods = self.status, self.obs.pods
        missing = self.missing_in_service()
        problem = self.obs.resolution.problem or missing
        available = f"{pods.available} of {pods.replicas} serving pods available"
        if pods.available:
            self.condition(Cond.AVAILABLE, True, Reason.MINIMUM_REPLICAS_AVAILABLE, available)
        else:
            self.condition(Cond.AVAILABLE, False, Reason.REPLICAS_UNAVAILABLE, available)
        rollback = self.rollback_in_effect()
        progressing: tuple[Reason, str] | None = None
        if status.canary is not None:
            progressing = (Reason.CANARY_PROGRESSING, self.canary_message(status.canary))
        elif problem is not None and problem.waiting:
            progressing = (problem.reason, problem.message)
        elif not pods.settled and pods.stalled is None:
            progressing = (
                Reason.REPLICAS_UNAVAILABLE,
                f"{pods.ready} of {pods.replicas} pods ready",
            )
        if progressing is not None:
            self.condition(Cond.PROGRESSING, True, *progressing)
        else:
            self.condition(Cond.PROGRESSING, False, *(rollback or self.last_outcome()))
        degraded = None
        if problem is not None and not problem.waiting:
            degraded = (problem.reason, problem.message)
        elif pods.stalled is not None:
            degraded = (Reason.REPLICAS_UNAVAILABLE, pods.stalled)
        was = get_condition(status.conditions, Cond.DEGRADED)
        if degraded is not None and (
            was is None or was.status != "True" or was.reason != degraded[0]
        ):
            self.event(degraded[0], degraded[1], warning=True)
        why = degraded or rollback
        if why is not None:
            self.condition(Cond.DEGRADED, True, *why)
        else:
            self.condition(Cond.DEGRADED, False, Reason.AS_EXPECTED, "")
        if degraded is not None:
            status.phase = Phase.DEGRADED
        elif rollback is not None:
            status.phase = Phase.ROLLED_BACK
        elif progressing is not None:
            status.phase = Phase.PROGRESSING
        else:
            status.phase = Phase.HEALTHY

    def last_outcome(self) -> tuple[Reason, str]:
        """Why nothing is progressing: this run's transition, else the one recorded before."""
        if self.outcome is not None:
            return self.outcome
        previous = get_condition(self.status.conditions, Cond.PROGRESSING)
        if previous is not None and previous.status == "False" and previous.reason in set(Reason):
            return Reason(previous.reason), previous.message
        stable = self.status.stable
        return Reason.DEPLOYED, f"serving {stable.revision if stable else 'nothing'}"

    def rollback_in_effect(self) -> tuple[Reason, str] | None:
        """Why the desired adapters are not served, when they are the ones rolled back."""
        status, resolution = self.status, self.obs.resolution
        if (
            status.canary is not None
            or resolution.problem is not None
            or status.rolled_back_revision != resolution.revision
            or (status.stable is not None and status.stable.revision == resolution.revision)
        ):
            return None
        if self.outcome is not None and self.outcome[0] in ROLLBACK_REASONS:
            return self.outcome
        for type_ in (Cond.DEGRADED, Cond.PROGRESSING):
            previous = get_condition(status.conditions, type_)
            if previous is not None and previous.reason in ROLLBACK_REASONS:
                return Reason(previous.reason), previous.message
        return Reason.ROLLED_BACK, f"{resolution.revision} was rolled back"


def plan_rollout(obs: Observed) -> Plan:
    """The status to write, whether to render the children, and the events to send."""
    return _Planner(obs).run()
