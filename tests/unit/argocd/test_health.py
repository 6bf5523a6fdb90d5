"""The Argo CD health checks of the three kinds, over status fixtures the models accept."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import pytest

from kubetune.api import (
    KINDS,
    AdapterPhase,
    FineTuneJobPhase,
    InferenceDeploymentPhase,
    KubeObject,
)
from support.apiobjects import minimal, with_changes
from support.argocd import health

pytestmark = pytest.mark.unit

DIGEST = "sha256:" + "ab" * 32
MODELS: dict[str, type[KubeObject]] = {k.model_fields["kind"].default: k for k in KINDS}
PHASES: dict[str, list[str]] = {
    "FineTuneJob": list(FineTuneJobPhase),
    "Adapter": list(AdapterPhase),
    "InferenceDeployment": list(InferenceDeploymentPhase),
}


def condition(kind: str, status: str, reason: str, message: str = "") -> dict[str, str]:
    return {
        "type": kind,
        "status": status,
        "reason": reason,
        "message": message,
        "lastTransitionTime": "2026-01-05T10:00:00Z",
    }


def make(
    kind: str,
    status: dict[str, Any] | None,
    *,
    generation: int = 1,
    spec: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """A minimal object of ``kind`` at ``generation`` with ``status`` (observed at
    ``generation`` unless the status says otherwise) and dotted ``spec`` changes."""
    obj = with_changes(minimal(kind, "demo"), {f"spec.{k}": v for k, v in (spec or {}).items()})
    obj["metadata"]["generation"] = generation
    if status is not None:
        obj["status"] = {"observedGeneration": generation, **status}
    return obj


@dataclass(frozen=True)
class Case:
    id: str
    obj: dict[str, Any]
    status: str
    message: str
    valid: bool = field(default=True)
    """Whether the models accept ``obj`` (False only for a phase this version lacks)."""


ROLLOUT = {"rollout": {"steps": [{"weight": 10}, {"weight": 50}]}}
STABLE = {"revision": "support-bot-v3", "adapters": []}
CASES = [
    Case(
        "ftj-new",
        make("FineTuneJob", None),
        "Progressing",
        "Waiting for the operator to observe the FineTuneJob",
    ),
    Case(
        "ftj-succeeded-but-spec-changed",
        make("FineTuneJob", {"phase": "Succeeded", "observedGeneration": 2}, generation=3),
        "Progressing",
        "Waiting for the operator to observe generation 3",
    ),
    Case(
        "ftj-validating",
        make(
            "FineTuneJob",
            {
                "phase": "Validating",
                "conditions": [
                    condition("Validated", "Unknown", "Validating", "reading s3://d/train.jsonl")
                ],
            },
        ),
        "Progressing",
        "Validating: reading s3://d/train.jsonl",
    ),
    Case(
        "ftj-queued",
        make(
            "FineTuneJob",
            {
                "phase": "Queued",
                "conditions": [
                    condition("Validated", "True", "DatasetValid"),
                    condition("Admitted", "False", "Queued", "waiting for quota in gpu-queue"),
                ],
            },
        ),
        "Progressing",
        "Queued: waiting for quota in gpu-queue",
    ),
    Case(
        "ftj-running",
        make(
            "FineTuneJob",
            {"phase": "Running", "progress": {"step": 120, "totalSteps": 1000, "percent": 12}},
        ),
        "Progressing",
        "Training: step 120 of 1000 (12%)",
    ),
    Case(
        "ftj-running-before-first-report",
        make("FineTuneJob", {"phase": "Running"}),
        "Progressing",
        "Training",
    ),
    Case(
        "ftj-succeeded",
        make(
            "FineTuneJob",
            {
                "phase": "Succeeded",
                "adapterRef": "support-bot-v3",
                "conditions": [condition("Succeeded", "True", "Completed")],
            },
        ),
        "Healthy",
        "Published Adapter support-bot-v3",
    ),
    Case(
        "ftj-failed-oom",
        make(
            "FineTuneJob",
            {
                "phase": "Failed",
                "conditions": [
                    condition("Validated", "True", "DatasetValid", "4,812 records"),
                    condition("Failed", "True", "OutOfMemory", "CUDA OOM at step 312"),
                ],
            },
        ),
        "Degraded",
        "OutOfMemory: CUDA OOM at step 312",
    ),
    Case(
        "ftj-suspended",
        make(
            "FineTuneJob",
            {
                "phase": "Suspended",
                "conditions": [condition("Suspended", "True", "Suspended", "spec.suspend is true")],
            },
            spec={"suspend": True},
        ),
        "Suspended",
        "Suspended: spec.suspend is true",
    ),
    Case(
        "ftj-phase-from-a-newer-operator",
        make("FineTuneJob", {"phase": "Preempting"}),
        "Unknown",
        "Unknown phase Preempting",
        valid=False,
    ),
    Case(
        "adapter-new",
        make("Adapter", None),
        "Progressing",
        "Waiting for the operator to observe the Adapter",
    ),
    Case(
        "adapter-pending",
        make("Adapter", {"phase": "Pending"}),
        "Progressing",
        "Waiting to verify the artifact",
    ),
    Case(
        "adapter-verifying",
        make("Adapter", {"phase": "Verifying"}),
        "Progressing",
        "Verifying the manifest and file digests",
    ),
    Case(
        "adapter-ready",
        make(
            "Adapter",
            {
                "phase": "Ready",
                "verifiedDigest": DIGEST,
                "conditions": [
                    condition("Verified", "True", "Verified"),
                    condition("Ready", "True", "Verified"),
                ],
            },
        ),
        "Healthy",
        f"Verified {DIGEST}",
    ),
    Case(
        "adapter-digest-mismatch",
        make(
            "Adapter",
            {
                "phase": "Failed",
                "conditions": [
                    condition("Verified", "False", "DigestMismatch", "adapter_model.safetensors"),
                    condition("Ready", "False", "DigestMismatch", "not verified"),
                ],
            },
        ),
        "Degraded",
        "DigestMismatch: adapter_model.safetensors",
    ),
    Case(
        "infd-new",
        make("InferenceDeployment", None),
        "Progressing",
        "Waiting for the operator to observe the InferenceDeployment",
    ),
    Case(
        "infd-healthy-but-spec-changed",
        make("InferenceDeployment", {"phase": "Healthy", "observedGeneration": 4}, generation=5),
        "Progressing",
        "Waiting for the operator to observe generation 5",
    ),
    Case(
        "infd-first-rollout",
        make(
            "InferenceDeployment",
            {
                "phase": "Progressing",
                "conditions": [
                    condition("Progressing", "True", "ReplicasUnavailable", "0 of 2 pods ready")
                ],
            },
        ),
        "Progressing",
        "ReplicasUnavailable: 0 of 2 pods ready",
    ),
    Case(
        "infd-canary-step-1",
        make(
            "InferenceDeployment",
            {
                "phase": "Progressing",
                "stable": STABLE,
                "canary": {"revision": "support-bot-v4", "step": 0, "weight": 10},
            },
            spec=ROLLOUT,
        ),
        "Progressing",
        "Canary support-bot-v4 at 10% (step 1 of 2)",
    ),
    Case(
        "infd-healthy",
        make(
            "InferenceDeployment",
            {"phase": "Healthy", "stable": STABLE, "replicas": 2, "readyReplicas": 2},
        ),
        "Healthy",
        "Serving support-bot-v3 (2 of 2 replicas ready)",
    ),
    Case(
        "infd-degraded",
        make(
            "InferenceDeployment",
            {
                "phase": "Degraded",
                "conditions": [
                    condition("Available", "False", "AdapterNotFound", "support-bot-v9 not found")
                ],
            },
        ),
        "Degraded",
        "AdapterNotFound: support-bot-v9 not found",
    ),
    Case(
        "infd-rolled-back",
        make(
            "InferenceDeployment",
            {
                "phase": "RolledBack",
                "stable": STABLE,
                "conditions": [
                    condition("Available", "True", "MinimumReplicasAvailable"),
                    condition("Degraded", "True", "AnalysisFailed", "error rate 0.04 > 0.01"),
                ],
            },
            spec=ROLLOUT,
        ),
        "Degraded",
        "Rolled back to support-bot-v3: AnalysisFailed: error rate 0.04 > 0.01",
    ),
]


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.id)
def test_health(case: Case) -> None:
    assert health(case.obj) == {"status": case.status, "message": case.message}


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.id)
def test_fixtures_are_objects_the_operator_could_write(case: Case) -> None:
    model = MODELS[case.obj["kind"]]
    if case.valid:
        model.model_validate(case.obj)
    else:
        with pytest.raises(ValueError, match="phase"):
            model.model_validate(case.obj)


@pytest.mark.parametrize(
    ("kind", "phase"), [(kind, phase) for kind, phases in PHASES.items() for phase in phases]
)
def test_every_phase_has_a_health(kind: str, phase: str) -> None:
    """A phase added to the models without a health mapping would read Unknown in Argo CD."""
    result = health(make(kind, {"phase": phase}))
    assert result["status"] in {"Healthy", "Progressing", "Degraded", "Suspended"}
    assert result["message"]


@pytest.mark.parametrize(
    ("kind", "phase"), [(kind, phase) for kind, phases in PHASES.items() for phase in phases]
)
def test_a_stale_status_is_never_trusted(kind: str, phase: str) -> None:
    stale = make(kind, {"phase": phase, "observedGeneration": 1}, generation=2)
    assert health(stale) == {
        "status": "Progressing",
        "message": "Waiting for the operator to observe generation 2",
    }
