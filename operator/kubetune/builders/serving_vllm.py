"""vLLM serving: a Deployment per track, adapters synced from S3 before vLLM starts.

vLLM serves LoRA adapters from local paths (``--lora-modules name=path``) and cannot verify
an artifact, so each pod starts with an init container that runs ``python -m
kubetune_server.sync`` from the reference runtime image: it fetches every adapter of the
track into an emptyDir, each under its manifest digest, verified exactly as ``kubetune-serve``
verifies (manifest digest, every file's sha256, base model, rank). The list travels in the
pod template (``KUBETUNE_SERVING_CONFIG``), so a pod can never start with adapters other
than the ones its own arguments name.

A canary is a second Deployment (track=canary) with the canary's adapter set; both tracks
sit behind one Service (split by replica counts), or, when the Gateway API is installed,
behind an HTTPRoute whose backend weights split requests exactly.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from kubetune.api import (
    Adapter,
    GatewayRef,
    InferenceDeployment,
    InferenceDeploymentStatus,
    ResolvedAdapter,
    TrafficRouting,
)
from kubetune.builders import pods
from kubetune.builders.serving import (
    CACHE_DIR,
    CONTAINER,
    HTTP_PORT,
    PORT_NAME,
    Children,
    Track,
    build_deployment,
    build_service,
    build_serving_config,
    config_map_name,
    deployment_name,
    metadata,
    pod_spec,
    secrets_of,
    service_name,
)
from kubetune.rollout.traffic import split_replicas
from kubetune.settings import Settings

VLLM_LORA_RANKS = (8, 16, 32, 64, 128, 256, 320, 512)
"""The values vLLM accepts for --max-lora-rank."""
ADAPTERS_DIR = "/adapters"
MODELS_DIR = "/models"
SYNC_CONTAINER = "sync-adapters"
GATEWAY_API_VERSION = "gateway.networking.k8s.io/v1"


def max_lora_rank(ranks: list[int], configured: int | None) -> int:
    """The smallest rank vLLM accepts that is at least ``configured`` (or, unset, every
    adapter's rank). Adapters above a configured rank are refused before this is rendered."""
    needed = configured if configured is not None else max(ranks, default=1)
    return next((r for r in VLLM_LORA_RANKS if r >= needed), VLLM_LORA_RANKS[-1])


def adapter_path(resolved: ResolvedAdapter) -> str:
    """Where the sync puts an adapter: its manifest digest, as the runtime's cache does."""
    assert resolved.digest is not None
    return f"{ADAPTERS_DIR}/{resolved.digest.removeprefix('sha256:')}"


def _model_args(infd: InferenceDeployment) -> tuple[list[str], list[dict[str, Any]]]:
    """(arguments, volumes) naming the base model: hf:// by id and revision, pvc:// as a
    read-only mount, s3:// through vLLM's Run:ai streamer."""
    base = infd.spec.base_model
    uri = base.uri or f"hf://{base.name}"
    if uri.startswith("hf://"):
        return ["--model", uri.removeprefix("hf://"), "--revision", base.revision], []
    if uri.startswith("pvc://"):
        claim, _, path = uri.removeprefix("pvc://").partition("/")
        volume = {"name": "model", "persistentVolumeClaim": {"claimName": claim, "readOnly": True}}
        return ["--model", f"{MODELS_DIR}/{claim}/{path}".rstrip("/")], [volume]
    return ["--model", uri, "--load-format", "runai_streamer"], []


def _vllm_container(
    infd: InferenceDeployment,
    adapters: list[ResolvedAdapter],
    objects: Mapping[str, Adapter],
    settings: Settings,
) -> dict[str, Any]:
    spec, base = infd.spec, infd.spec.base_model
    model_args, model_volumes = _model_args(infd)
    args = [*model_args, "--served-model-name", base.name, "--port", str(HTTP_PORT)]
    if spec.resources.gpus > 1:
        args += ["--tensor-parallel-size", str(spec.resources.gpus)]
    if adapters:
        ranks = [objects[a.adapter_ref].spec.lora.r for a in adapters]
        args += [
            "--enable-lora",
            "--max-lora-rank",
            str(max_lora_rank(ranks, spec.runtime.max_lora_rank)),
            "--max-loras",
            str(len(adapters)),
            "--lora-modules",
            *(f"{a.name}={adapter_path(a)}" for a in sorted(adapters, key=lambda a: a.name)),
        ]
    env = [
        {"name": "HOME", "value": "/tmp"},
        {"name": "HF_HOME", "value": f"{CACHE_DIR}/hf"},
        {"name": "XDG_CACHE_HOME", "value": f"{CACHE_DIR}/xdg"},
        *pods.token_env(base.token_secret_ref),
        *pods.credential_env("", base),
    ]
    if (base.uri or "").startswith("s3://") and (base.endpoint or settings.storage.endpoint):
        env.append(
            {"name": "AWS_ENDPOINT_URL", "value": str(base.endpoint or settings.storage.endpoint)}
        )
    mounts = [
        {"name": "adapters", "mountPath": ADAPTERS_DIR, "readOnly": True},
        {"name": "cache", "mountPath": CACHE_DIR},
        {"name": "tmp", "mountPath": "/tmp"},
        {"name": "dshm", "mountPath": "/dev/shm"},
    ]
    if model_volumes:
        claim = model_volumes[0]["persistentVolumeClaim"]["claimName"]
        mounts.append({"name": "model", "mountPath": f"{MODELS_DIR}/{claim}", "readOnly": True})
    return {
        "name": CONTAINER,
        "image": spec.runtime.image or settings.images.vllm,
        "command": ["python3", "-m", "vllm.entrypoints.openai.api_server"],
        "args": [*args, *(spec.runtime.args or [])],
        "env": env,
        "ports": [{"name": PORT_NAME, "containerPort": HTTP_PORT}],
        **pods.http_probes(PORT_NAME, startup="/health", live="/health", ready="/health"),
        "resources": pods.resource_requirements(spec.resources),
        "securityContext": pods.container_security_context(),
        "volumeMounts": mounts,
    }


def _sync_container(
    infd: InferenceDeployment,
    adapters: list[ResolvedAdapter],
    objects: Mapping[str, Adapter],
    settings: Settings,
    secret_mounts: list[dict[str, Any]],
) -> dict[str, Any]:
    base = infd.spec.base_model
    config = build_serving_config(adapters, {}, objects, settings)
    args = ["--dest", ADAPTERS_DIR, "--model-name", base.name, "--model-revision", base.revision]
    args += ["--s3-credentials-dir", pods.CREDENTIALS_DIR]
    if infd.spec.runtime.max_lora_rank is not None:
        args += ["--max-lora-rank", str(infd.spec.runtime.max_lora_rank)]
    return {
        "name": SYNC_CONTAINER,
        "image": settings.images.runtime,
        "command": ["python", "-m", "kubetune_server.sync"],
        "args": args,
        "env": [
            {"name": "KUBETUNE_SERVING_CONFIG", "value": json.dumps(config, sort_keys=True)},
            {"name": "HOME", "value": "/tmp"},
        ],
        "resources": {"requests": {"cpu": "500m", "memory": "512Mi"}, "limits": {"memory": "2Gi"}},
        "securityContext": pods.container_security_context(),
        "volumeMounts": [
            {"name": "adapters", "mountPath": ADAPTERS_DIR},
            {"name": "tmp", "mountPath": "/tmp"},
            *secret_mounts,
        ],
    }


def build_vllm_deployment(
    infd: InferenceDeployment,
    adapters: list[ResolvedAdapter],
    objects: Mapping[str, Adapter],
    settings: Settings,
    *,
    track: Track,
    replicas: int,
) -> dict[str, Any]:
    """One track: vLLM serving ``adapters``, after the init container synced them."""
    secret_volumes, secret_mounts = pods.credential_volumes(secrets_of(adapters, objects))
    _, model_volumes = _model_args(infd)
    volumes = [
        {"name": "adapters", "emptyDir": {}},
        {"name": "cache", "emptyDir": {}},
        {"name": "tmp", "emptyDir": {}},
        {"name": "dshm", "emptyDir": {"medium": "Memory"}},
        *model_volumes,
        *secret_volumes,
    ]
    pod = pod_spec(
        infd,
        [_vllm_container(infd, adapters, objects, settings)],
        volumes,
        init_containers=[_sync_container(infd, adapters, objects, settings, secret_mounts)]
        if adapters
        else None,
    )
    return build_deployment(infd, pod, replicas, track)


def _parent_ref(infd: InferenceDeployment, gateway: GatewayRef | None) -> dict[str, Any]:
    if gateway is None:  # GAMMA: a mesh routes requests for the Service by this route
        return {"group": "", "kind": "Service", "name": service_name(infd), "port": HTTP_PORT}
    return gateway.model_dump(mode="json", by_alias=True, exclude_none=True)


def build_http_route(infd: InferenceDeployment, canary_weight: int) -> dict[str, Any]:
    """Exact weights between the stable and canary Services."""
    backends = [
        {
            "name": service_name(infd, Track.STABLE),
            "port": HTTP_PORT,
            "weight": 100 - canary_weight,
        },
        {"name": service_name(infd, Track.CANARY), "port": HTTP_PORT, "weight": canary_weight},
    ]
    return {
        "apiVersion": GATEWAY_API_VERSION,
        "kind": "HTTPRoute",
        "metadata": metadata(infd, infd.metadata["name"]),
        "spec": {
            "parentRefs": [_parent_ref(infd, infd.spec.gateway)],
            "rules": [{"backendRefs": backends}],
        },
    }


def build_vllm_children(
    infd: InferenceDeployment,
    status: InferenceDeploymentStatus,
    adapters: Mapping[str, Adapter],
    settings: Settings,
    routing: TrafficRouting,
) -> Children:
    """Stable (and canary) Deployments, the Service, and the HTTPRoute in Gateway mode."""
    assert status.stable is not None
    canary = status.canary
    weight = canary.weight if canary else 0
    stable_pods, canary_pods = split_replicas(infd.spec.replicas, weight)
    stable = build_vllm_deployment(
        infd, status.stable.adapters, adapters, settings, track=Track.STABLE, replicas=stable_pods
    )
    apply = [stable, build_service(infd)]
    delete = [("ConfigMap", config_map_name(infd))]
    if canary is not None:
        apply.append(
            build_vllm_deployment(
                infd, canary.adapters, adapters, settings, track=Track.CANARY, replicas=canary_pods
            )
        )
    else:
        delete.append(("Deployment", deployment_name(infd, Track.CANARY)))
    if routing == TrafficRouting.GATEWAY:
        apply += [
            build_service(infd, Track.STABLE),
            build_service(infd, Track.CANARY),
            build_http_route(infd, weight),
        ]
    else:
        delete += [
            ("Service", service_name(infd, Track.STABLE)),
            ("Service", service_name(infd, Track.CANARY)),
            ("HTTPRoute", infd.metadata["name"]),
        ]
    return Children(apply=apply, delete=delete)
