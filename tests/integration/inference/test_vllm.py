"""The vLLM runtime on the real control plane: a canary is a second Deployment behind one
Service, split by replicas; with the Gateway API's HTTPRoute CRD installed, by route weights.

The Gateway API CRD is installed by the test in a minimal form (same group, version, kind
and plural; an open schema): what the operator detects and writes is what matters here,
not a gateway implementation, which no test cluster runs.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest
from kubernetes import client

from support.polling import eventually

from .conftest import Adapters, Deployed, canary_at, conditions

HOLD = [{"weight": 10, "pause": "1h"}, {"weight": 60, "pause": "1h"}]
HTTPROUTES = "httproutes.gateway.networking.k8s.io"


def _args(deployment: client.V1Deployment) -> list[str]:
    return list(deployment.spec.template.spec.containers[0].args)


def _rank(deployment: client.V1Deployment) -> str:
    args = _args(deployment)
    return args[args.index("--max-lora-rank") + 1]


def test_vllm_canary_is_a_second_deployment_split_by_replicas(
    api_client: client.ApiClient, adapters: Adapters, deploy: Callable[..., Deployed]
) -> None:
    adapters.publish("support-bot-v1", rank=8)
    infd = deploy(runtime="vllm", steps=HOLD, replicas=2)
    status = infd.wait(lambda s: s.get("phase") == "Healthy", "Healthy")
    assert status["routing"] == "Replicas"
    stable = infd.deployment()
    args = _args(stable)
    assert _rank(stable) == "8"
    assert "--enable-lora" in args
    (sync,) = stable.spec.template.spec.init_containers
    assert sync.command == ["python", "-m", "kubetune_server.sync"]

    adapters.publish("support-bot-v2", rank=24)
    status = infd.wait(canary_at(0, 10), "canary at 10%")
    progressing = next(c for c in status["conditions"] if c["type"] == "Progressing")
    assert progressing["message"].endswith("1 canary and 2 stable pods (33%)")
    canary = eventually(lambda: infd.deployment("-canary"), what="canary Deployment")
    assert canary.spec.replicas == 1
    assert canary.spec.template.metadata.labels["kubetune.io/track"] == "canary"
    assert _rank(canary) == "32"  # rank 24, rounded up to one vLLM accepts
    assert any(a.startswith("support-bot=/adapters/") for a in _args(canary))
    assert _args(canary) != args

    infd.annotate("promote")
    infd.wait(lambda s: s.get("stable", {}).get("revision") == "support-bot-v2", "promoted")
    eventually(
        lambda: (
            not client.AppsV1Api(api_client)
            .list_namespaced_deployment(infd.namespace, label_selector="kubetune.io/track=canary")
            .items
        ),
        what="canary Deployment removed",
    )

    def serving_v2() -> client.V1Deployment | None:
        deployment = infd.deployment()
        return deployment if _rank(deployment) == "32" else None

    promoted = eventually(serving_v2, what="stable Deployment serving v2")
    assert promoted.spec.replicas == 2
    infd.wait(lambda s: s.get("phase") == "Healthy", "Healthy after promotion")


@pytest.fixture
def gateway_api(api_client: client.ApiClient) -> Iterator[None]:
    ext = client.ApiextensionsV1Api(api_client)
    crd = {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {
            "name": HTTPROUTES,
            # As the upstream CRDs carry it: *.k8s.io groups need an approved API.
            "annotations": {
                "api-approved.kubernetes.io": "https://github.com/kubernetes-sigs/gateway-api/pull/2466"
            },
        },
        "spec": {
            "group": "gateway.networking.k8s.io",
            "names": {"kind": "HTTPRoute", "plural": "httproutes", "listKind": "HTTPRouteList",
                      "singular": "httproute"},
            "scope": "Namespaced",
            "versions": [{"name": "v1", "served": True, "storage": True, "schema": {
                "openAPIV3Schema": {"type": "object",
                                    "x-kubernetes-preserve-unknown-fields": True}}}],
        },
    }  # fmt: skip
    ext.create_custom_resource_definition(crd)

    def established() -> bool:
        conditions = ext.read_custom_resource_definition(HTTPROUTES).status.conditions or []
        return any(c.type == "Established" and c.status == "True" for c in conditions)

    eventually(established, what="HTTPRoute CRD established")
    yield
    ext.delete_custom_resource_definition(HTTPROUTES)


def _route(api: client.ApiClient, namespace: str) -> dict:
    return client.CustomObjectsApi(api).get_namespaced_custom_object(
        "gateway.networking.k8s.io", "v1", namespace, "httproutes", "support"
    )


def _weights(route: dict) -> list[tuple[str, int]]:
    return [(b["name"], b["weight"]) for b in route["spec"]["rules"][0]["backendRefs"]]


def test_with_the_gateway_api_an_httproute_splits_by_weight(
    api_client: client.ApiClient,
    gateway_api: None,
    adapters: Adapters,
    deploy: Callable[..., Deployed],
) -> None:
    adapters.publish("support-bot-v1")
    infd = deploy(runtime="vllm", steps=HOLD, gateway={"name": "public", "namespace": "gw"})
    status = infd.wait(lambda s: s.get("phase") == "Healthy", "Healthy")
    assert status["routing"] == "Gateway"
    route = eventually(lambda: _route(api_client, infd.namespace), what="HTTPRoute")
    assert route["spec"]["parentRefs"] == [{"name": "public", "namespace": "gw"}]
    assert _weights(route) == [("support-stable", 100), ("support-canary", 0)]
    core = client.CoreV1Api(api_client)
    for track in ("stable", "canary"):
        service = core.read_namespaced_service(f"support-{track}", infd.namespace)
        assert service.spec.selector["kubetune.io/track"] == track

    adapters.publish("support-bot-v2")
    infd.wait(canary_at(0, 10), "canary at 10%")
    eventually(
        lambda: (
            _weights(_route(api_client, infd.namespace))
            == [("support-stable", 90), ("support-canary", 10)]
        ),
        what="route at 90/10",
    )
    infd.annotate("abort")
    status = infd.wait(lambda s: s.get("phase") == "RolledBack", "RolledBack")
    assert conditions(status)["Degraded"] == ("True", "Aborted")
    eventually(
        lambda: (
            _weights(_route(api_client, infd.namespace))
            == [("support-stable", 100), ("support-canary", 0)]
        ),
        what="route back to stable",
    )
