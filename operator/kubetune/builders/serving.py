"""The objects that serve an InferenceDeployment, rendered from its spec and the stable and
canary adapter sets the rollout planner decided on.

- runtime ``kubetune``: one Deployment of ``kubetune-serve`` whose serving ConfigMap holds
  every adapter version in service and the weighted routes between them: the canary lives
  inside the same pods (no extra GPU, no restart: the runtime re-reads the mounted file).
- runtime ``vllm`` (:mod:`kubetune.builders.serving_vllm`): a stable Deployment and, during a
  canary, a second Deployment (track=canary) with the canary's adapters; both behind one
  Service, split by replica counts, or by an HTTPRoute's weights when the Gateway API is
  installed.

Pure: the same inputs give the same manifests, which is what lets the controller compare a
hash of them with what it applied before and skip no-op writes.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

import yaml

from kubetune.api import (
    Adapter,
    InferenceDeployment,
    InferenceDeploymentStatus,
    ResolvedAdapter,
    TrafficRouting,
    constants,
)
from kubetune.builders import pods
from kubetune.builders.meta import child_metadata, child_name
from kubetune.builders.meta import labels as meta_labels
from kubetune.settings import Settings

CONTAINER = "server"
HTTP_PORT = 8000
PORT_NAME = "http"
CONFIG_DIR = "/etc/kubetune"
CONFIG_FILE = "serving.yaml"
CACHE_DIR = "/var/cache/kubetune"
COMPONENT = "serving"


class Track(StrEnum):
    STABLE = "stable"
    CANARY = "canary"


def deployment_name(infd: InferenceDeployment, track: Track = Track.STABLE) -> str:
    name = infd.metadata["name"]
    return name if track == Track.STABLE else child_name(name, "canary")


def service_name(infd: InferenceDeployment, track: Track | None = None) -> str:
    """The Service over every serving pod (``track`` None), or over one track's pods."""
    name = infd.metadata["name"]
    return name if track is None else child_name(name, track.value)


def config_map_name(infd: InferenceDeployment) -> str:
    return child_name(infd.metadata["name"], "serving")


def pod_labels(infd: InferenceDeployment, track: Track | None = None) -> dict[str, str]:
    """The labels that select serving pods, of one track or of all."""
    labels = {constants.LABEL_INFERENCEDEPLOYMENT: infd.metadata["name"]}
    if track is not None:
        labels[constants.LABEL_TRACK] = track.value
    return labels


def pod_selector(infd: InferenceDeployment) -> str:
    """The serving pods as a label selector string (status.selector, for kubectl scale)."""
    return ",".join(f"{k}={v}" for k, v in pod_labels(infd).items())


def endpoints(infd: InferenceDeployment) -> list[str]:
    """Base URLs of the OpenAI-compatible API inside the cluster."""
    host = f"{service_name(infd)}.{infd.metadata['namespace']}.svc"
    return [f"http://{host}:{HTTP_PORT}/v1"]


def owner(infd: InferenceDeployment) -> dict[str, Any]:
    return {"apiVersion": infd.api_version, "kind": infd.kind, "metadata": infd.metadata}


def metadata(infd: InferenceDeployment, name: str, track: Track | None = None) -> dict[str, Any]:
    return child_metadata(owner(infd), name, COMPONENT, **pod_labels(infd, track))


# The serving config: the contract with the reference runtime (docs/reference-runtime.md).


def _adapter_source(
    resolved: ResolvedAdapter, adapter: Adapter, settings: Settings
) -> dict[str, Any]:
    spec = adapter.spec
    s3: dict[str, str] = {}
    if spec.endpoint or settings.storage.endpoint:
        s3["endpoint"] = str(spec.endpoint or settings.storage.endpoint)
    if spec.region or settings.storage.region:
        s3["region"] = str(spec.region or settings.storage.region)
    if spec.credentials_secret_ref is not None:
        s3["credentialsSecret"] = spec.credentials_secret_ref.name
    source: dict[str, Any] = {
        "version": resolved.adapter_ref,
        "uri": spec.uri,
        "digest": resolved.digest or spec.digest,
    }
    if s3:
        source["s3"] = s3
    return source


def build_serving_config(
    versions: list[ResolvedAdapter],
    routes: dict[str, dict[str, int]],
    adapters: Mapping[str, Adapter],
    settings: Settings,
) -> dict[str, Any]:
    """The runtime's serving config; ``generation`` is derived from the content, so it
    changes exactly when the content does and ``appliedGeneration`` can be compared."""
    unique = {v.adapter_ref: v for v in versions}
    body = {
        "adapters": [_adapter_source(v, adapters[ref], settings) for ref, v in unique.items()],
        "routes": routes,
    }
    digest = hashlib.sha256(json.dumps(body, sort_keys=True).encode()).hexdigest()
    return {"generation": int(digest[:12], 16), **body}


def in_pod_routes(status: InferenceDeploymentStatus) -> dict[str, dict[str, int]]:
    """Served name -> {version: weight}, stable first and canary last (the runtime's sticky
    routing then only ever moves users from stable to canary as the weight grows)."""
    routes: dict[str, dict[str, int]] = {}
    stable = status.stable.adapters if status.stable else []
    for served in stable:
        routes[served.name] = {served.adapter_ref: 100}
    canary = status.canary
    if canary is None:
        return routes
    for served in canary.adapters:
        before = routes.get(served.name)
        if before is None:
            routes[served.name] = {served.adapter_ref: 100}
        elif served.adapter_ref not in before:
            old = next(iter(before))
            routes[served.name] = {old: 100 - canary.weight, served.adapter_ref: canary.weight}
    return routes


def secrets_of(versions: list[ResolvedAdapter], adapters: Mapping[str, Adapter]) -> list[str]:
    """Names of the S3 credential Secrets the adapters in ``versions`` need."""
    refs = (adapters[v.adapter_ref].spec.credentials_secret_ref for v in versions)
    return sorted({ref.name for ref in refs if ref is not None})


def build_config_map(infd: InferenceDeployment, config: dict[str, Any]) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": metadata(infd, config_map_name(infd)),
        "data": {CONFIG_FILE: yaml.safe_dump(config, sort_keys=False)},
    }


# Workloads.


def build_deployment(
    infd: InferenceDeployment, pod: dict[str, Any], replicas: int, track: Track
) -> dict[str, Any]:
    """A Deployment of ``pod`` that keeps capacity while it rolls (one extra pod at most)."""
    labels = pod_labels(infd, track)
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": metadata(infd, deployment_name(infd, track), track),
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": labels},
            "strategy": {
                "type": "RollingUpdate",
                "rollingUpdate": {"maxUnavailable": 0, "maxSurge": 1},
            },
            "progressDeadlineSeconds": 1800,
            "template": {
                "metadata": {
                    "labels": meta_labels(COMPONENT, **labels),
                    "annotations": {
                        "prometheus.io/scrape": "true",
                        "prometheus.io/port": str(HTTP_PORT),
                        "prometheus.io/path": "/metrics",
                    },
                },
                "spec": pod,
            },
        },
    }


def pod_spec(
    infd: InferenceDeployment,
    containers: list[dict[str, Any]],
    volumes: list[dict[str, Any]],
    *,
    init_containers: list[dict[str, Any]] | None = None,
) -> dict[str, Any]:
    spec: dict[str, Any] = {
        "automountServiceAccountToken": False,
        "enableServiceLinks": False,
        "terminationGracePeriodSeconds": 60,
        "securityContext": pods.pod_security_context(),
        **pods.scheduling(infd.spec.resources),
    }
    if init_containers:
        spec["initContainers"] = init_containers
    return {**spec, "containers": containers, "volumes": volumes}


def _kubetune_container(
    infd: InferenceDeployment, settings: Settings, mounts: list[dict[str, Any]]
) -> dict[str, Any]:
    spec = infd.spec
    base = spec.base_model
    args = ["--model-name", base.name, "--model-revision", base.revision]
    if base.uri:
        args += ["--model-uri", base.uri, "--model-cache-dir", f"{CACHE_DIR}/model"]
    if base.endpoint or settings.storage.endpoint:
        args += ["--model-s3-endpoint", str(base.endpoint or settings.storage.endpoint)]
    if base.region or settings.storage.region:
        args += ["--model-s3-region", str(base.region or settings.storage.region)]
    args += [
        "--config",
        f"{CONFIG_DIR}/{CONFIG_FILE}",
        "--adapter-cache-dir",
        f"{CACHE_DIR}/adapters",
        "--s3-credentials-dir",
        pods.CREDENTIALS_DIR,
        "--port",
        str(HTTP_PORT),
    ]
    if spec.runtime.max_lora_rank is not None:
        args += ["--max-lora-rank", str(spec.runtime.max_lora_rank)]
    env = [
        {"name": "HF_HOME", "value": f"{CACHE_DIR}/hf"},
        {"name": "HOME", "value": "/tmp"},
        *pods.credential_env("KUBETUNE_S3_BASE_MODEL_", base),
        *pods.token_env(base.token_secret_ref),
    ]
    return {
        "name": CONTAINER,
        "image": spec.runtime.image or settings.images.runtime,
        "command": ["kubetune-serve"],
        "args": [*args, *(spec.runtime.args or [])],
        "env": env,
        "ports": [{"name": PORT_NAME, "containerPort": HTTP_PORT}],
        **pods.http_probes(PORT_NAME, startup="/startupz", live="/livez", ready="/readyz"),
        "resources": pods.resource_requirements(spec.resources),
        "securityContext": pods.container_security_context(),
        "volumeMounts": mounts,
    }


def build_kubetune_deployment(
    infd: InferenceDeployment,
    status: InferenceDeploymentStatus,
    adapters: Mapping[str, Adapter],
    settings: Settings,
) -> dict[str, Any]:
    """The reference runtime: every version in service is loaded in every pod."""
    versions = in_service(status)
    secret_volumes, secret_mounts = pods.credential_volumes(secrets_of(versions, adapters))
    mounts = [
        {"name": "config", "mountPath": CONFIG_DIR, "readOnly": True},
        {"name": "cache", "mountPath": CACHE_DIR},
        {"name": "tmp", "mountPath": "/tmp"},
        *secret_mounts,
    ]
    volumes = [
        {"name": "config", "configMap": {"name": config_map_name(infd)}},
        {"name": "cache", "emptyDir": {}},
        {"name": "tmp", "emptyDir": {}},
        *secret_volumes,
    ]
    pod = pod_spec(infd, [_kubetune_container(infd, settings, mounts)], volumes)
    return build_deployment(infd, pod, infd.spec.replicas, Track.STABLE)


def in_service(status: InferenceDeploymentStatus) -> list[ResolvedAdapter]:
    """Every adapter version of the stable and canary sets (a version once)."""
    tracks = [t for t in (status.stable, status.canary) if t is not None]
    unique = {a.adapter_ref: a for t in tracks for a in t.adapters}
    return list(unique.values())


def build_service(infd: InferenceDeployment, track: Track | None = None) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": metadata(infd, service_name(infd, track), track),
        "spec": {
            "selector": pod_labels(infd, track),
            "ports": [
                {"name": PORT_NAME, "port": HTTP_PORT, "targetPort": PORT_NAME, "protocol": "TCP"}
            ],
        },
    }


@dataclass(frozen=True)
class Children:
    """Objects that must exist as rendered, and (kind, name) of those that must not."""

    apply: list[dict[str, Any]] = field(default_factory=list)
    delete: list[tuple[str, str]] = field(default_factory=list)


def build_kubetune_children(
    infd: InferenceDeployment,
    status: InferenceDeploymentStatus,
    adapters: Mapping[str, Adapter],
    settings: Settings,
    routing: TrafficRouting,
) -> Children:
    """ConfigMap, Deployment and Service of the reference runtime; the canary is a route."""
    config = build_serving_config(in_service(status), in_pod_routes(status), adapters, settings)
    return Children(
        apply=[
            build_config_map(infd, config),
            build_kubetune_deployment(infd, status, adapters, settings),
            build_service(infd),
        ],
        delete=[
            ("Deployment", deployment_name(infd, Track.CANARY)),
            ("Service", service_name(infd, Track.STABLE)),
            ("Service", service_name(infd, Track.CANARY)),
            ("HTTPRoute", infd.metadata["name"]),
        ],
    )
