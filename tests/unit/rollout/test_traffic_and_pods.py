"""How traffic is split and how pods per track are counted; what Deployments report."""

from __future__ import annotations

from typing import Any

import pytest

from kubetune.api import RuntimeType, TrafficRouting
from kubetune.rollout import effective_weight, plan_routing, split_replicas, summarize_pods
from support.inference import deployment


@pytest.mark.parametrize(
    ("runtime", "gateway_api", "routing"),
    [
        (RuntimeType.KUBETUNE, False, TrafficRouting.IN_POD),
        (RuntimeType.KUBETUNE, True, TrafficRouting.IN_POD),  # in-pod is exact and free
        (RuntimeType.VLLM, True, TrafficRouting.GATEWAY),
        (RuntimeType.VLLM, False, TrafficRouting.REPLICAS),
    ],
)
def test_routing(runtime: RuntimeType, gateway_api: bool, routing: TrafficRouting) -> None:
    assert plan_routing(runtime, gateway_api=gateway_api) == routing


@pytest.mark.parametrize(
    ("replicas", "weight", "stable", "canary"),
    [
        (2, 0, 2, 0),
        (0, 10, 0, 0),
        (1, 10, 1, 1),  # at least one canary pod; stable keeps its capacity
        (2, 10, 2, 1),
        (10, 10, 10, 1),
        (10, 25, 10, 3),
        (4, 50, 4, 4),
        (4, 75, 1, 4),
        (2, 90, 0, 2),
        (3, 100, 0, 3),
    ],
)
def test_split_replicas(replicas: int, weight: int, stable: int, canary: int) -> None:
    assert split_replicas(replicas, weight) == (stable, canary)


@pytest.mark.parametrize("replicas", [1, 2, 3, 5, 8, 10, 20])
@pytest.mark.parametrize("weight", [1, 5, 10, 20, 33, 50, 66, 80, 95, 99, 100])
def test_split_never_starves_stable_below_half_and_tracks_weight(
    replicas: int, weight: int
) -> None:
    stable, canary = split_replicas(replicas, weight)
    if weight < 50:
        assert stable == replicas
        assert canary >= 1
    else:
        assert canary == replicas
    assert effective_weight(stable, canary) >= 1
    if replicas >= 10 and 5 <= weight <= 95:
        assert abs(effective_weight(stable, canary) - weight) <= 6


@pytest.mark.parametrize(
    ("deployments", "expected"),
    [
        pytest.param([], {"replicas": 0, "settled": False}, id="none-expected"),
        pytest.param([None], {"replicas": 0, "settled": False}, id="not-created-yet"),
        pytest.param([deployment("s")], {"replicas": 2, "ready": 2, "available": 2,
                                         "settled": True}, id="ready"),
        pytest.param([deployment("s", ready=1)], {"ready": 1, "settled": False}, id="starting"),
        pytest.param([deployment("s"), None], {"replicas": 2, "settled": False},
                     id="canary-missing"),
        pytest.param([deployment("s"), deployment("c", replicas=1)],
                     {"replicas": 3, "ready": 3, "settled": True}, id="two-tracks"),
        pytest.param([deployment("s", generation=2, status={"observedGeneration": 1})],
                     {"settled": False}, id="spec-not-observed"),
        pytest.param([deployment("s", status={"updatedReplicas": 1})], {"settled": False},
                     id="rolling"),
        pytest.param([deployment("s", status={"replicas": 3})], {"settled": False},
                     id="old-pod-terminating"),
    ],
)  # fmt: skip
def test_summarize_pods(deployments: list[dict[str, Any] | None], expected: dict[str, Any]) -> None:
    pods = summarize_pods(deployments)
    assert {k: getattr(pods, k) for k in expected} == expected
    assert pods.stalled is None


def test_a_stuck_deployment_is_stalled() -> None:
    stuck = deployment(
        "support-canary",
        ready=0,
        status={
            "conditions": [
                {
                    "type": "Progressing",
                    "status": "False",
                    "reason": "ProgressDeadlineExceeded",
                    "message": "ReplicaSet has timed out progressing.",
                }
            ]
        },
    )
    pods = summarize_pods([deployment("support"), stuck])
    assert pods.stalled == "Deployment support-canary: ReplicaSet has timed out progressing."
    assert not pods.settled
