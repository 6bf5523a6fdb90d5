"""How canary traffic is split, and how many pods each track runs.

Three ways, chosen by what the runtime and the cluster can do:

- ``InPod`` (runtime kubetune): the reference runtime routes a served name between adapter
  versions by weight inside every pod, so a canary costs no extra pod, GPU or restart, and
  the split is exact.
- ``Gateway`` (runtime vllm, Gateway API installed): an HTTPRoute's backend weights split
  requests exactly between a stable and a canary Service.
- ``Replicas`` (runtime vllm otherwise): one Service over both tracks, so the split is the
  ratio of ready pods; coarse for small deployments, but needs nothing installed.

In the two pod-based ways the canary also gets pods in proportion to its weight, because it
must carry that share of the load; the stable track keeps its full size until the canary's
weight passes one half, so a canary never shrinks the capacity users rely on.
"""

from __future__ import annotations

from kubetune.api import RuntimeType, TrafficRouting


def plan_routing(runtime: RuntimeType, *, gateway_api: bool) -> TrafficRouting:
    """The split a deployment of ``runtime`` uses, given whether HTTPRoutes exist here."""
    if runtime == RuntimeType.KUBETUNE:
        return TrafficRouting.IN_POD
    return TrafficRouting.GATEWAY if gateway_api else TrafficRouting.REPLICAS


def split_replicas(replicas: int, weight: int) -> tuple[int, int]:
    """(stable, canary) pod counts whose ratio approximates ``weight`` percent canary.

    Below 50 % the stable track keeps ``replicas`` and the canary gets at least one pod;
    from 50 % on the canary has ``replicas`` and the stable track shrinks (to none at 100).
    """
    if replicas == 0 or weight <= 0:
        return replicas, 0
    if weight < 50:
        return replicas, max(1, round(replicas * weight / (100 - weight)))
    return round(replicas * (100 - weight) / weight), replicas


def effective_weight(stable: int, canary: int) -> int:
    """The percent of pods (hence of requests, behind one Service) on the canary."""
    total = stable + canary
    return round(100 * canary / total) if total else 0
