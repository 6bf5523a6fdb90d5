"""The reference runtime's serving objects: the config the runtime reads, its Deployment,
Service, and what changes (and what must not) as a canary's weight moves."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest
import yaml

from kubetune.api import InferenceDeployment, ResolvedAdapter, TrafficRouting
from kubetune.builders.serving import build_serving_config, in_pod_routes
from kubetune.builders.serving_children import build_children
from kubetune.settings import Settings, Storage
from support.inference import (
    ENDPOINT,
    adapters_by_name,
    digest_of,
    make_adapter,
    make_infd,
    track,
)

GOLDEN = Path(__file__).parent / "golden"
SETTINGS = Settings()
ADAPTERS = adapters_by_name(
    make_adapter("support-bot-v1"),
    make_adapter("support-bot-v2"),
    make_adapter("sql-helper-v7", family="sql-helper", secret="sql-creds"),
)
STABLE = track("support-bot-v1", "sql-helper-v7")
CANARY = track("support-bot-v2", "sql-helper-v7", step=0, weight=10)


def objects(infd: InferenceDeployment, **kw: Any) -> dict[tuple[str, str], dict[str, Any]]:
    assert infd.status is not None
    routing = kw.pop("routing", TrafficRouting.IN_POD)
    children = build_children(infd, infd.status, ADAPTERS, kw.pop("settings", SETTINGS), routing)
    return {(o["kind"], o["metadata"]["name"]): o for o in children.apply}


def canary_infd(weight: int = 10, **spec: Any) -> InferenceDeployment:
    canary = {**CANARY, "weight": weight}
    return make_infd(status={"stable": STABLE, "canary": canary}, **spec)


def contains_run(args: list[str], run: list[str]) -> bool:
    """Whether ``run`` appears in ``args`` as consecutive items."""
    return any(args[i : i + len(run)] == run for i in range(len(args)))


def config_of(objs: dict[tuple[str, str], dict[str, Any]]) -> dict[str, Any]:
    return yaml.safe_load(objs[("ConfigMap", "support-serving")]["data"]["serving.yaml"])


def test_matches_golden() -> None:
    """The whole rendering of an in-pod canary, reviewed once and kept (set
    KUBETUNE_UPDATE_GOLDEN=1 to rewrite after an intended change)."""
    rendered = yaml.safe_dump_all(objects(canary_infd()).values(), sort_keys=True)
    path = GOLDEN / "serving-kubetune-canary.yaml"
    if os.environ.get("KUBETUNE_UPDATE_GOLDEN"):
        path.write_text(rendered)
    assert rendered == path.read_text()


def test_nothing_before_a_stable_set_exists() -> None:
    infd = make_infd(status={})
    assert infd.status is not None
    children = build_children(infd, infd.status, ADAPTERS, SETTINGS, TrafficRouting.IN_POD)
    assert (children.apply, children.delete) == ([], [])


def test_canary_is_a_weighted_route_inside_the_same_pods() -> None:
    objs = objects(canary_infd())
    assert set(objs) == {
        ("ConfigMap", "support-serving"),
        ("Deployment", "support"),
        ("Service", "support"),
    }
    config = config_of(objs)
    assert config["routes"] == {
        "support-bot": {"support-bot-v1": 90, "support-bot-v2": 10},
        "sql-helper": {"sql-helper-v7": 100},
    }
    assert list(config["routes"]["support-bot"]) == ["support-bot-v1", "support-bot-v2"]
    versions = {a["version"]: a for a in config["adapters"]}
    assert set(versions) == {"support-bot-v1", "support-bot-v2", "sql-helper-v7"}
    assert versions["support-bot-v2"] == {
        "version": "support-bot-v2",
        "uri": "s3://adapters/support-bot/support-bot-v2/",
        "digest": digest_of("support-bot-v2"),
        "s3": {"endpoint": ENDPOINT, "credentialsSecret": "s3-creds"},
    }
    assert objs[("Deployment", "support")]["spec"]["replicas"] == 2


def test_moving_the_weight_changes_the_config_not_the_pods() -> None:
    """An in-pod canary must not restart pods: only the ConfigMap (and its generation)."""
    at_10, at_50 = objects(canary_infd(10)), objects(canary_infd(50))
    assert at_10[("Deployment", "support")] == at_50[("Deployment", "support")]
    assert config_of(at_50)["routes"]["support-bot"] == {"support-bot-v1": 50, "support-bot-v2": 50}
    assert config_of(at_10)["generation"] != config_of(at_50)["generation"]
    assert config_of(at_10) == config_of(objects(canary_infd(10)))


def test_promoted_config_holds_only_the_new_version() -> None:
    infd = make_infd(status={"stable": track("support-bot-v2", "sql-helper-v7")})
    config = config_of(objects(infd))
    assert config["routes"]["support-bot"] == {"support-bot-v2": 100}
    assert {a["version"] for a in config["adapters"]} == {"sql-helper-v7", "support-bot-v2"}


def test_a_new_served_name_in_the_canary_gets_all_of_its_traffic() -> None:
    status = {"stable": track("support-bot-v1"), "canary": track("support-bot-v1", "sql-helper-v7")}
    assert status["canary"]["revision"] != status["stable"]["revision"]
    infd = make_infd(status={**status, "canary": {**status["canary"], "weight": 10}})
    assert infd.status is not None
    assert in_pod_routes(infd.status) == {
        "support-bot": {"support-bot-v1": 100},
        "sql-helper": {"sql-helper-v7": 100},
    }


def test_pod_is_restricted_and_has_no_api_credentials() -> None:
    deployment = objects(canary_infd())[("Deployment", "support")]
    pod = deployment["spec"]["template"]["spec"]
    assert pod["automountServiceAccountToken"] is False
    assert pod["securityContext"]["runAsNonRoot"] is True
    (server,) = pod["containers"]
    context = server["securityContext"]
    assert context["allowPrivilegeEscalation"] is False
    assert context["readOnlyRootFilesystem"] is True
    assert context["capabilities"] == {"drop": ["ALL"]}
    assert {k: v["httpGet"]["path"] for k, v in server.items() if k.endswith("Probe")} == {
        "startupProbe": "/startupz",
        "livenessProbe": "/livez",
        "readinessProbe": "/readyz",
    }
    annotations = deployment["spec"]["template"]["metadata"]["annotations"]
    assert annotations["prometheus.io/port"] == "8000"
    labels = deployment["spec"]["template"]["metadata"]["labels"]
    assert labels["kubetune.io/inferencedeployment"] == "support"
    assert deployment["metadata"]["ownerReferences"][0]["uid"] == "0f1e2d3c-uid"


def test_credentials_of_every_adapter_in_service_are_mounted_where_the_runtime_looks() -> None:
    pod = objects(canary_infd())[("Deployment", "support")]["spec"]["template"]["spec"]
    mounts = {m["mountPath"]: m["name"] for m in pod["containers"][0]["volumeMounts"]}
    volumes = {v["name"]: v for v in pod["volumes"]}
    for secret in ("s3-creds", "sql-creds"):
        volume = volumes[mounts[f"/var/run/secrets/kubetune/s3/{secret}"]]
        assert volume["secret"] == {"secretName": secret}
    assert not any("AWS_SECRET" in str(e.get("value", "")) for e in pod["containers"][0]["env"])


@pytest.mark.parametrize(
    ("spec", "present", "absent"),
    [
        ({}, [["--model-name", "kubetune/tiny-llama", "--model-revision", "main"],
              ["--config", "/etc/kubetune/serving.yaml"], ["--port", "8000"]],
         ["--max-lora-rank", "--model-uri"]),
        ({"runtime": {"type": "kubetune", "maxLoraRank": 16, "args": ["--max-active", "4"]}},
         [["--max-lora-rank", "16"], ["--max-active", "4"]], []),
        ({"baseModel": {"name": "kubetune/tiny-llama", "uri": "s3://models/tiny/",
                        "endpoint": "http://minio:9000",
                        "credentialsSecretRef": {"name": "model-creds"}}},
         [["--model-uri", "s3://models/tiny/"], ["--model-s3-endpoint", "http://minio:9000"]], []),
    ],
)  # fmt: skip
def test_server_arguments(
    spec: dict[str, Any], present: list[list[str]], absent: list[str]
) -> None:
    pod = objects(canary_infd(**spec))[("Deployment", "support")]["spec"]["template"]["spec"]
    server = pod["containers"][0]
    assert server["command"] == ["kubetune-serve"]
    assert all(contains_run(server["args"], run) for run in present), server["args"]
    assert not set(absent) & set(server["args"])
    env = {e["name"]: e for e in server["env"]}
    if "credentialsSecretRef" in spec.get("baseModel", {}):
        ref = env["KUBETUNE_S3_BASE_MODEL_AWS_ACCESS_KEY_ID"]["valueFrom"]["secretKeyRef"]
        assert ref["name"] == "model-creds"


def test_storage_defaults_fill_adapter_access() -> None:
    adapter = make_adapter("support-bot-v1", secret=None)
    adapter.spec.endpoint = None
    served = ResolvedAdapter(
        name="support-bot", adapter_ref="support-bot-v1", digest=digest_of("support-bot-v1")
    )
    config = build_serving_config(
        [served],
        {"support-bot": {"support-bot-v1": 100}},
        {"support-bot-v1": adapter},
        Settings(storage=Storage(endpoint="http://s3.local:9000", region="eu-west-1")),
    )
    assert config["adapters"][0]["s3"] == {
        "endpoint": "http://s3.local:9000",
        "region": "eu-west-1",
    }


def test_gpu_and_scheduling_reach_the_pod() -> None:
    infd = canary_infd(
        resources={
            "gpus": 1,
            "gpuType": "NVIDIA-L4",
            "memory": "16Gi",
            "tolerations": [{"key": "nvidia.com/gpu", "operator": "Exists"}],
        }
    )
    pod = objects(infd)[("Deployment", "support")]["spec"]["template"]["spec"]
    assert pod["containers"][0]["resources"] == {
        "requests": {"memory": "16Gi"},
        "limits": {"nvidia.com/gpu": "1", "memory": "16Gi"},
    }
    assert pod["nodeSelector"] == {"nvidia.com/gpu.product": "NVIDIA-L4"}
    assert pod["tolerations"] == [{"key": "nvidia.com/gpu", "operator": "Exists"}]


def test_service_spans_every_serving_pod() -> None:
    service = objects(canary_infd())[("Service", "support")]
    assert service["spec"]["selector"] == {"kubetune.io/inferencedeployment": "support"}
    assert service["spec"]["ports"][0]["port"] == 8000
