"""What the serving Deployments report, reduced to what the rollout decisions need.

Kept apart from the planner so that the planner reads facts ("settled", "stalled") rather
than Deployment status fields, and so that the rules for them are tested on their own.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class ServingPods:
    """The serving pods of every track together."""

    replicas: int = 0
    """Pods the Deployments currently ask for."""
    ready: int = 0
    available: int = 0
    settled: bool = False
    """Every expected Deployment exists, has seen its latest spec, and all its pods are
    updated and available."""
    stalled: str | None = None
    """A Deployment's ProgressDeadlineExceeded message: its rollout is stuck."""


def _settled(deployment: dict[str, Any]) -> bool:
    spec, status = deployment.get("spec") or {}, deployment.get("status") or {}
    wanted = int(spec.get("replicas", 1))
    return (
        int(status.get("observedGeneration") or 0)
        >= int(deployment["metadata"].get("generation") or 0)
        and int(status.get("updatedReplicas") or 0) == wanted
        and int(status.get("availableReplicas") or 0) == wanted
        and int(status.get("replicas") or 0) == wanted
    )


def _stalled(deployment: dict[str, Any]) -> str | None:
    for condition in (deployment.get("status") or {}).get("conditions") or []:
        if condition.get("type") == "Progressing" and condition.get("reason") == (
            "ProgressDeadlineExceeded"
        ):
            name = deployment["metadata"]["name"]
            return f"Deployment {name}: {condition.get('message') or 'progress deadline exceeded'}"
    return None


def summarize_pods(deployments: Iterable[dict[str, Any] | None]) -> ServingPods:
    """The pods of the Deployments a deployment needs now; ``None`` stands for one that
    should exist but does not (yet)."""
    present = list(deployments)
    found = [d for d in present if d is not None]
    status = [d.get("status") or {} for d in found]
    return ServingPods(
        replicas=sum(int((d.get("spec") or {}).get("replicas", 1)) for d in found),
        ready=sum(int(s.get("readyReplicas") or 0) for s in status),
        available=sum(int(s.get("availableReplicas") or 0) for s in status),
        settled=bool(present) and len(found) == len(present) and all(map(_settled, found)),
        stalled=next(filter(None, map(_stalled, found)), None),
    )
