"""vLLM serving objects: the flags vLLM needs for LoRA, the verified adapter sync, and the
canary as a second Deployment split by replicas or by an HTTPRoute."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest
import yaml

from kubetune.api import InferenceDeployment, TrafficRouting
from kubetune.builders.serving_children import build_children
from kubetune.builders.serving_vllm import max_lora_rank
from kubetune.settings import Settings
from support.inference import adapters_by_name, digest_of, make_adapter, make_infd, track

GOLDEN = Path(__file__).parent / "golden"
ADAPTERS = adapters_by_name(
    make_adapter("support-bot-v1", rank=8),
    make_adapter("support-bot-v2", rank=24),
    make_adapter("sql-helper-v7", family="sql-helper", rank=16),
)
STABLE = track("support-bot-v1", "sql-helper-v7")
CANARY = track("support-bot-v2", "sql-helper-v7", step=0, weight=10)


def vllm_infd(
    *, canary: bool = True, runtime: dict[str, Any] | None = None, **spec: Any
) -> InferenceDeployment:
    status: dict[str, Any] = {"stable": STABLE}
    if canary:
        status["canary"] = CANARY
    return make_infd(runtime=runtime or {"type": "vllm"}, status=status, replicas=4, **spec)


def build(infd: InferenceDeployment, routing: TrafficRouting = TrafficRouting.REPLICAS):
    assert infd.status is not None
    return build_children(infd, infd.status, ADAPTERS, Settings(), routing)


def by_key(infd: InferenceDeployment, **kw: Any) -> dict[tuple[str, str], dict[str, Any]]:
    return {(o["kind"], o["metadata"]["name"]): o for o in build(infd, **kw).apply}


def server(deployment: dict[str, Any]) -> dict[str, Any]:
    return deployment["spec"]["template"]["spec"]["containers"][0]


def flag(args: list[str], name: str) -> str:
    return args[args.index(name) + 1]


def lora_modules(args: list[str]) -> list[str]:
    start = args.index("--lora-modules") + 1
    end = next((i for i in range(start, len(args)) if args[i].startswith("--")), len(args))
    return args[start:end]


def test_matches_golden() -> None:
    rendered = yaml.safe_dump_all(
        by_key(vllm_infd(), routing=TrafficRouting.GATEWAY).values(), sort_keys=True
    )
    path = GOLDEN / "serving-vllm-gateway-canary.yaml"
    if os.environ.get("KUBETUNE_UPDATE_GOLDEN"):
        path.write_text(rendered)
    assert rendered == path.read_text()


@pytest.mark.parametrize(
    ("ranks", "configured", "expected"),
    [([4], None, 8), ([8, 16], None, 16), ([24], None, 32), ([300], None, 320),
     ([8], 24, 32), ([8], 512, 512), ([], None, 8), ([64], 64, 64)],
)  # fmt: skip
def test_max_lora_rank_is_one_vllm_accepts(
    ranks: list[int], configured: int | None, expected: int
) -> None:
    assert max_lora_rank(ranks, configured) == expected


def test_lora_flags_name_each_adapter_by_served_name_and_verified_path() -> None:
    objs = by_key(vllm_infd())
    stable, canary = objs[("Deployment", "support")], objs[("Deployment", "support-canary")]
    args = server(stable)["args"]
    assert server(stable)["command"] == ["python3", "-m", "vllm.entrypoints.openai.api_server"]
    assert "--enable-lora" in args
    assert (flag(args, "--max-lora-rank"), flag(args, "--max-loras")) == ("16", "2")
    hexes = {ref: digest_of(ref).removeprefix("sha256:") for ref in ADAPTERS}
    assert lora_modules(args) == [
        f"sql-helper=/adapters/{hexes['sql-helper-v7']}",
        f"support-bot=/adapters/{hexes['support-bot-v1']}",
    ]
    canary_args = server(canary)["args"]
    assert flag(canary_args, "--max-lora-rank") == "32"  # rank 24 rounded up
    assert f"support-bot=/adapters/{hexes['support-bot-v2']}" in lora_modules(canary_args)
    assert (flag(args, "--model"), flag(args, "--revision")) == ("kubetune/tiny-llama", "main")


def test_init_container_syncs_exactly_the_tracks_adapters() -> None:
    objs = by_key(vllm_infd())
    for name, refs in (
        ("support", {"support-bot-v1", "sql-helper-v7"}),
        ("support-canary", {"support-bot-v2", "sql-helper-v7"}),
    ):
        pod = objs[("Deployment", name)]["spec"]["template"]["spec"]
        (sync,) = pod["initContainers"]
        assert sync["image"] == Settings().images.runtime
        assert sync["command"] == ["python", "-m", "kubetune_server.sync"]
        assert flag(sync["args"], "--dest") == "/adapters"
        env = {e["name"]: e.get("value") for e in sync["env"]}
        config = json.loads(env["KUBETUNE_SERVING_CONFIG"])
        assert {a["version"] for a in config["adapters"]} == refs
        assert all(a["digest"] == digest_of(a["version"]) for a in config["adapters"])
        sync_mounts = {m["name"]: m["mountPath"] for m in sync["volumeMounts"]}
        server_mounts = {m["name"]: m for m in server(objs[("Deployment", name)])["volumeMounts"]}
        assert sync_mounts["adapters"] == "/adapters"
        assert server_mounts["adapters"]["readOnly"] is True
        assert "/var/run/secrets/kubetune/s3/s3-creds" in sync_mounts.values()
        assert pod["automountServiceAccountToken"] is False
        assert sync["securityContext"]["runAsNonRoot"] is True


def test_no_adapters_means_no_lora_and_no_sync() -> None:
    infd = make_infd(runtime="vllm", adapters=[], status={"stable": track()})
    deployment = by_key(infd)[("Deployment", "support")]
    assert "--enable-lora" not in server(deployment)["args"]
    assert "initContainers" not in deployment["spec"]["template"]["spec"]


@pytest.mark.parametrize(
    ("weight", "stable_pods", "canary_pods"), [(10, 4, 1), (50, 4, 4), (80, 1, 4)]
)
def test_canary_pods_in_proportion_to_the_weight(
    weight: int, stable_pods: int, canary_pods: int
) -> None:
    infd = make_infd(
        runtime="vllm",
        replicas=4,
        status={"stable": STABLE, "canary": {**CANARY, "weight": weight}},
    )
    objs = by_key(infd)
    assert objs[("Deployment", "support")]["spec"]["replicas"] == stable_pods
    canary = objs[("Deployment", "support-canary")]
    assert canary["spec"]["replicas"] == canary_pods
    assert canary["spec"]["selector"]["matchLabels"]["kubetune.io/track"] == "canary"
    front = objs[("Service", "support")]
    assert front["spec"]["selector"] == {"kubetune.io/inferencedeployment": "support"}


def test_without_canary_only_stable_serves_and_the_canary_is_removed() -> None:
    children = build(vllm_infd(canary=False))
    kinds = {(o["kind"], o["metadata"]["name"]) for o in children.apply}
    assert kinds == {("Deployment", "support"), ("Service", "support")}
    assert ("Deployment", "support-canary") in children.delete
    assert ("HTTPRoute", "support") in children.delete
    stable = next(o for o in children.apply if o["kind"] == "Deployment")
    assert stable["spec"]["replicas"] == 4


@pytest.mark.parametrize(
    ("gateway", "parent"),
    [
        (None, {"group": "", "kind": "Service", "name": "support", "port": 8000}),
        ({"name": "public", "namespace": "gateways", "sectionName": "https"},
         {"name": "public", "namespace": "gateways", "sectionName": "https"}),
    ],
)  # fmt: skip
def test_gateway_route_splits_exactly(
    gateway: dict[str, Any] | None, parent: dict[str, Any]
) -> None:
    spec = {"gateway": gateway} if gateway else {}
    objs = by_key(vllm_infd(**spec), routing=TrafficRouting.GATEWAY)
    route = objs[("HTTPRoute", "support")]
    assert route["apiVersion"] == "gateway.networking.k8s.io/v1"
    assert route["spec"]["parentRefs"] == [parent]
    assert route["spec"]["rules"] == [
        {
            "backendRefs": [
                {"name": "support-stable", "port": 8000, "weight": 90},
                {"name": "support-canary", "port": 8000, "weight": 10},
            ]
        }
    ]
    for track_name in ("stable", "canary"):
        selector = objs[("Service", f"support-{track_name}")]["spec"]["selector"]
        assert selector["kubetune.io/track"] == track_name


@pytest.mark.parametrize(
    ("base", "args", "volume"),
    [
        ({"name": "meta-llama/Llama-3.1-8B-Instruct", "revision": "abc"},
         ["--model", "meta-llama/Llama-3.1-8B-Instruct", "--revision", "abc"], None),
        ({"name": "kubetune/tiny-llama", "uri": "pvc://models/llama/8b"},
         ["--model", "/models/models/llama/8b"], {"claimName": "models", "readOnly": True}),
        ({"name": "kubetune/tiny-llama", "uri": "s3://models/llama/"},
         ["--model", "s3://models/llama/", "--load-format", "runai_streamer"], None),
    ],
)  # fmt: skip
def test_base_model_sources(
    base: dict[str, Any], args: list[str], volume: dict[str, Any] | None
) -> None:
    adapters = [{"name": "support-bot", "adapterRef": "support-bot-v1"}]
    infd = make_infd(
        runtime="vllm",
        baseModel=base,
        adapters=adapters,
        status={"stable": track("support-bot-v1")},
    )
    assert infd.status is not None
    deployment = build_children(infd, infd.status, ADAPTERS, Settings(), TrafficRouting.REPLICAS)
    pod = deployment.apply[0]["spec"]["template"]["spec"]
    assert server(deployment.apply[0])["args"][: len(args)] == args
    claims = [v["persistentVolumeClaim"] for v in pod["volumes"] if "persistentVolumeClaim" in v]
    assert claims == ([volume] if volume else [])


def test_gpus_give_tensor_parallelism_and_limits() -> None:
    infd = vllm_infd(resources={"gpus": 2, "gpuType": "NVIDIA-H100-80GB-HBM3"})
    deployment = by_key(infd)[("Deployment", "support")]
    assert flag(server(deployment)["args"], "--tensor-parallel-size") == "2"
    assert server(deployment)["resources"]["limits"]["nvidia.com/gpu"] == "2"
    pod = deployment["spec"]["template"]["spec"]
    assert pod["nodeSelector"] == {"nvidia.com/gpu.product": "NVIDIA-H100-80GB-HBM3"}
    assert {v["name"]: v for v in pod["volumes"]}["dshm"]["emptyDir"] == {"medium": "Memory"}


def test_user_arguments_come_last_and_image_can_be_overridden() -> None:
    infd = vllm_infd(
        runtime={"type": "vllm", "image": "registry.local/vllm:pinned", "args": ["--enforce-eager"]}
    )
    container = server(by_key(infd)[("Deployment", "support")])
    assert container["args"][-1] == "--enforce-eager"
    assert container["image"] == "registry.local/vllm:pinned"
