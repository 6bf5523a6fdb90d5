"""The rollout planner: observation in, status and events out, one scenario per row."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

import pytest

from kubetune.api import Adapter, InferenceDeployment, TrafficRouting
from kubetune.rollout import Measurement, Observed, Plan, ServingPods, plan_rollout
from kubetune.rollout import resolve_adapters as resolve
from support.inference import ANALYSIS, NOW, STEPS, adapters_by_name, make_adapter, make_infd, track

SETTLED = ServingPods(replicas=2, ready=2, available=2, settled=True)
STARTING = ServingPods(replicas=2, ready=0, available=0, settled=False)
V1 = make_adapter("support-bot-v1", created="2026-11-29T09:00:00Z", eval_loss=0.50)
V2 = make_adapter("support-bot-v2", created="2026-11-29T10:00:00Z", eval_loss=0.52)
V3 = make_adapter("support-bot-v3", created="2026-11-29T11:00:00Z", eval_loss=0.40)


def ago(seconds: float) -> str:
    return (NOW - timedelta(seconds=seconds)).isoformat()


def canary(ref: str = "support-bot-v2", *, step: int = 0, started: float = 0, **fields: Any):
    weight = STEPS[step]["weight"]
    return track(ref, step=step, weight=weight, stepStartedAt=ago(started), **fields)


def run(
    infd: InferenceDeployment,
    *available: Adapter,
    pods: ServingPods = SETTLED,
    measurement: Measurement | None = None,
    action: str | None = None,
    routing: TrafficRouting = TrafficRouting.IN_POD,
    at: float = 0,
) -> Plan:
    adapters = adapters_by_name(*(available or (V1, V2)))
    return plan_rollout(
        Observed(
            deployment=infd,
            resolution=resolve(infd.spec, adapters.values()),
            now=NOW + timedelta(seconds=at),
            adapters=adapters,
            pods=pods,
            routing=routing,
            measurement=measurement,
            action=action,
        )
    )


def conditions(plan: Plan) -> dict[str, tuple[str, str]]:
    return {c.type: (c.status.value, c.reason) for c in plan.status.conditions}


def events(plan: Plan) -> list[tuple[str, str]]:
    return [(kind, reason) for kind, reason, _ in plan.events]


@dataclass(frozen=True)
class Case:
    """A status before, what is observed, and what the plan must say."""

    id: str
    status: dict[str, Any] | None
    expect: dict[str, Any]
    adapters: tuple[Adapter, ...] = (V1, V2)
    spec: dict[str, Any] = field(default_factory=dict)
    observe: dict[str, Any] = field(default_factory=dict)
    events: list[tuple[str, str]] = field(default_factory=list)


STABLE_V1 = {"stable": track("support-bot-v1")}
WITH_ANALYSIS = {"rollout": {"steps": STEPS, "analysis": ANALYSIS}}
PASSED = Measurement(requests=100, errors=0, p95_latency_ms=100)
FAILED = Measurement(requests=100, errors=30, p95_latency_ms=100)
FEW = Measurement(requests=3, errors=3)

CASES = [
    Case("first-version-served-directly", None,
         {"phase": "Healthy", "stable": "support-bot-v2", "canary": None,
          "Progressing": ("False", "Deployed")},
         events=[("Normal", "Deployed")]),
    Case("first-version-pods-starting", None,
         {"phase": "Progressing", "stable": "support-bot-v2",
          "Progressing": ("True", "ReplicasUnavailable"),
          "Available": ("False", "ReplicasUnavailable")},
         observe={"pods": STARTING}, events=[("Normal", "Deployed")]),
    Case("new-version-starts-canary", STABLE_V1,
         {"phase": "Progressing", "stable": "support-bot-v1", "canary": "support-bot-v2",
          "step": 0, "weight": 10, "Progressing": ("True", "CanaryProgressing")},
         events=[("Normal", "CanaryProgressing")]),
    Case("no-rollout-replaces-at-once", STABLE_V1,
         {"phase": "Healthy", "stable": "support-bot-v2", "canary": None},
         spec={"rollout": {}}, events=[("Normal", "Deployed")]),
    Case("same-version-stays-healthy", {"stable": track("support-bot-v2")},
         {"phase": "Healthy", "stable": "support-bot-v2", "Degraded": ("False", "AsExpected")}),
    Case("pause-not-over-holds", {**STABLE_V1, "canary": canary(started=59)},
         {"canary": "support-bot-v2", "step": 0, "weight": 10}),
    Case("pause-over-advances", {**STABLE_V1, "canary": canary(started=60)},
         {"canary": "support-bot-v2", "step": 1, "weight": 50, "started": NOW},
         events=[("Normal", "CanaryProgressing")]),
    Case("pause-over-but-pods-starting-holds", {**STABLE_V1, "canary": canary(started=600)},
         {"step": 0}, observe={"pods": STARTING}),
    Case("last-step-over-promotes", {**STABLE_V1, "canary": canary(step=1, started=120)},
         {"phase": "Healthy", "stable": "support-bot-v2", "canary": None,
          "Progressing": ("False", "Promoted")},
         events=[("Normal", "Promoted")]),
    Case("analysis-pause-over-without-check-holds",
         {**STABLE_V1, "canary": canary(started=600)}, {"step": 0}, spec=WITH_ANALYSIS),
    Case("analysis-passed-advances", {**STABLE_V1, "canary": canary(started=60)},
         {"step": 1, "result": "Passed", "failures": 0},
         spec=WITH_ANALYSIS, observe={"measurement": PASSED},
         events=[("Normal", "CanaryProgressing")]),
    Case("analysis-pass-of-previous-step-does-not-count",
         {**STABLE_V1, "canary": canary(step=1, started=120, analysis={
             "result": "Passed", "failures": 0, "lastCheckedAt": ago(121)})},
         {"step": 1, "canary": "support-bot-v2"}, spec=WITH_ANALYSIS),
    Case("analysis-inconclusive-holds-uncounted", {**STABLE_V1, "canary": canary(started=60)},
         {"step": 0, "result": "Inconclusive", "failures": 0},
         spec=WITH_ANALYSIS, observe={"measurement": FEW}),
    Case("analysis-unreachable-holds-uncounted", {**STABLE_V1, "canary": canary(started=60)},
         {"step": 0, "result": "Inconclusive", "failures": 0},
         spec=WITH_ANALYSIS, observe={"measurement": Measurement(error="timed out")}),
    Case("analysis-first-failure-warns", {**STABLE_V1, "canary": canary(started=60)},
         {"step": 0, "canary": "support-bot-v2", "result": "Failed", "failures": 1},
         spec=WITH_ANALYSIS, observe={"measurement": FAILED},
         events=[("Warning", "AnalysisFailed")]),
    Case("analysis-failure-limit-rolls-back",
         {**STABLE_V1, "canary": canary(step=1, started=30, analysis={
             "result": "Failed", "failures": 1, "lastCheckedAt": ago(30)})},
         {"phase": "RolledBack", "stable": "support-bot-v1", "canary": None,
          "rolledBack": "support-bot-v2", "Degraded": ("True", "AnalysisFailed"),
          "Progressing": ("False", "AnalysisFailed")},
         spec=WITH_ANALYSIS, observe={"measurement": FAILED},
         events=[("Warning", "RolledBack")]),
    Case("rolled-back-version-is-not-retried",
         {**STABLE_V1, "rolledBackRevision": "support-bot-v2", "conditions": [
             {"type": "Degraded", "status": "True", "reason": "AnalysisFailed",
              "message": "error rate", "lastTransitionTime": ago(60)}]},
         {"phase": "RolledBack", "canary": None, "Degraded": ("True", "AnalysisFailed")}),
    Case("newer-version-after-rollback-starts-canary",
         {**STABLE_V1, "rolledBackRevision": "support-bot-v2"},
         {"phase": "Progressing", "canary": "support-bot-v3", "step": 0,
          "Degraded": ("False", "AsExpected")},
         adapters=(V1, V2, V3), events=[("Normal", "CanaryProgressing")]),
    Case("new-adapter-mid-rollout-restarts",
         {**STABLE_V1, "canary": canary(step=1, started=30, analysis={
             "result": "Failed", "failures": 1, "lastCheckedAt": ago(30)})},
         {"stable": "support-bot-v1", "canary": "support-bot-v3", "step": 0, "weight": 10,
          "started": NOW, "result": None, "failures": None},
         adapters=(V1, V2, V3), spec=WITH_ANALYSIS, events=[("Normal", "CanaryRestarted")]),
    Case("spec-back-to-stable-cancels-canary", {**STABLE_V1, "canary": canary(started=30)},
         {"phase": "Healthy", "stable": "support-bot-v1", "canary": None,
          "Progressing": ("False", "CanaryCancelled")},
         spec={"adapters": [{"name": "support-bot", "adapterRef": "support-bot-v1"}]},
         events=[("Normal", "CanaryCancelled")]),
    Case("eval-gate-refuses-before-traffic", STABLE_V1,
         {"phase": "RolledBack", "canary": None, "rolledBack": "support-bot-v2",
          "Degraded": ("True", "EvalGateFailed")},
         spec={"rollout": {"steps": STEPS, "evalGate": {"maxEvalLossIncrease": 0.01}}},
         events=[("Warning", "EvalGateFailed")]),
    Case("eval-gate-within-margin", STABLE_V1, {"canary": "support-bot-v2"},
         spec={"rollout": {"steps": STEPS, "evalGate": {"maxEvalLossIncrease": 0.05}}},
         events=[("Normal", "CanaryProgressing")]),
    Case("failed-adapter-degrades-keeping-stable", STABLE_V1,
         {"phase": "Degraded", "stable": "support-bot-v1", "canary": None,
          "Degraded": ("True", "AdapterNotReady"), "Available": ("True",
                                                                 "MinimumReplicasAvailable")},
         spec={"adapters": [{"name": "support-bot", "adapterRef": "bad"}]},
         adapters=(V1, make_adapter("bad", phase="Failed")),
         events=[("Warning", "AdapterNotReady")]),
    Case("verifying-adapter-is-progress", STABLE_V1,
         {"phase": "Progressing", "stable": "support-bot-v1", "canary": None,
          "Progressing": ("True", "AdapterNotReady"), "Degraded": ("False", "AsExpected")},
         spec={"adapters": [{"name": "support-bot", "adapterRef": "new"}]},
         adapters=(V1, make_adapter("new", phase="Verifying"))),
    Case("nothing-resolvable-at-first", None,
         {"phase": "Degraded", "stable": None, "Degraded": ("True", "AdapterNotFound")},
         adapters=(make_adapter("other", family="other"),),
         events=[("Warning", "AdapterNotFound")]),
    Case("stuck-deployment-degrades", {"stable": track("support-bot-v2")},
         {"phase": "Degraded", "Degraded": ("True", "ReplicasUnavailable")},
         observe={"pods": ServingPods(replicas=2, stalled="Deployment support: stuck")},
         events=[("Warning", "ReplicasUnavailable")]),
    Case("stable-adapter-gone-stops-rendering", {**STABLE_V1, "canary": canary(started=1)},
         {"phase": "Degraded", "apply": False, "Degraded": ("True", "AdapterNotFound")},
         adapters=(V2,), events=[("Warning", "AdapterNotFound")]),
    Case("promote-action", {**STABLE_V1, "canary": canary(started=1)},
         {"phase": "Healthy", "stable": "support-bot-v2", "canary": None, "remove": True,
          "Progressing": ("False", "Promoted")},
         observe={"action": "promote"}, events=[("Normal", "Promoted")]),
    Case("abort-action", {**STABLE_V1, "canary": canary(started=1)},
         {"phase": "RolledBack", "stable": "support-bot-v1", "canary": None, "remove": True,
          "rolledBack": "support-bot-v2", "Degraded": ("True", "Aborted")},
         observe={"action": "abort"}, events=[("Warning", "RolledBack")]),
    Case("action-without-canary-is-ignored", {"stable": track("support-bot-v2")},
         {"phase": "Healthy", "remove": True}, observe={"action": "promote"},
         events=[("Warning", "RolloutActionIgnored")]),
    Case("unknown-action-is-ignored", {**STABLE_V1, "canary": canary(started=1)},
         {"canary": "support-bot-v2", "remove": True}, observe={"action": "restart"},
         events=[("Warning", "RolloutActionIgnored")]),
]  # fmt: skip


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_plan(case: Case) -> None:
    infd = make_infd(status=case.status, **case.spec)
    plan = run(infd, *case.adapters, **case.observe)
    status, expect = plan.status, case.expect
    found: dict[str, Any] = {
        "phase": status.phase.value,
        "stable": status.stable.revision if status.stable else None,
        "canary": status.canary.revision if status.canary else None,
        "rolledBack": status.rolled_back_revision,
        "remove": plan.remove_action,
        "apply": plan.apply,
        **conditions(plan),
    }
    if status.canary is not None:
        analysis = status.canary.analysis
        found.update(
            step=status.canary.step,
            weight=status.canary.weight,
            started=status.canary.step_started_at,
            result=analysis.result.value if analysis and analysis.result else None,
            failures=analysis.failures if analysis else None,
        )
    assert {k: found.get(k) for k in expect} == expect
    assert events(plan) == case.events
    assert status.observed_generation == 1
    assert all(c.observed_generation == 1 for c in status.conditions)


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_planning_again_changes_nothing(case: Case) -> None:
    """Level-triggered: the plan's own status, observed again, is a fixed point."""
    first = run(make_infd(status=case.status, **case.spec), *case.adapters, **case.observe)
    again = make_infd(status=first.status.model_dump(mode="json", exclude_none=True), **case.spec)
    observe = {k: v for k, v in case.observe.items() if k not in ("action", "measurement")}
    second = run(again, *case.adapters, **observe)
    assert second.status == first.status
    assert [e for e in second.events if e[0] == "Normal"] == []


def test_a_whole_rollout_with_analysis_reaches_promotion() -> None:
    infd = make_infd(status=STABLE_V1, **WITH_ANALYSIS)
    at, seen = 0.0, []
    for _ in range(20):
        canary_now = infd.status.canary if infd.status else None
        due = canary_now is not None and canary_now.step_started_at is not None
        plan = run(infd, measurement=PASSED if due and at > 0 else None, at=at)
        seen += [reason for _, reason, _ in plan.events]
        infd = make_infd(
            status=plan.status.model_dump(mode="json", exclude_none=True), **WITH_ANALYSIS
        )
        if plan.status.canary is None and plan.status.stable.revision == "support-bot-v2":
            break
        at += 60
    assert seen == ["CanaryProgressing", "CanaryProgressing", "Promoted"]
    assert infd.status is not None
    assert infd.status.phase.value == "Healthy"


def test_replica_routing_says_how_pods_split() -> None:
    infd = make_infd(runtime="vllm", status={**STABLE_V1, "canary": canary(started=1)})
    plan = run(infd, routing=TrafficRouting.REPLICAS)
    progressing = next(c for c in plan.status.conditions if c.type == "Progressing")
    assert progressing.message == (
        "canary support-bot-v2 at 10% (step 1 of 2) against support-bot-v1; "
        "1 canary and 2 stable pods (33%)"
    )
    assert plan.status.routing == TrafficRouting.REPLICAS


def test_status_carries_selector_endpoints_and_pod_counts() -> None:
    infd = make_infd(status=STABLE_V1)
    adapters = adapters_by_name(V1)
    plan = plan_rollout(
        Observed(
            deployment=infd,
            resolution=resolve(infd.spec, adapters.values()),
            now=NOW,
            adapters=adapters,
            pods=ServingPods(replicas=3, ready=2, available=2, settled=False),
            selector="kubetune.io/inferencedeployment=support",
            endpoints=["http://support.ml.svc:8000/v1"],
        )
    )
    status = plan.status
    assert (status.replicas, status.ready_replicas) == (3, 2)
    assert status.selector == "kubetune.io/inferencedeployment=support"
    assert status.endpoints == ["http://support.ml.svc:8000/v1"]
