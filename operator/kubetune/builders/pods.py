"""Pod-spec pieces every pod the operator runs shares (training, validation, serving): the
restricted security context, GPU and CPU requests, scheduling onto the right nodes, and S3
credentials as environment variables or mounted files.

Spelled once so that training pods, the reference runtime's pods and vLLM's pods cannot
drift apart on security: no API credentials, non-root, no privilege escalation, every
capability dropped.
"""

from __future__ import annotations

from typing import Any

from kubetune.api import ComputeResources, S3Access, SecretKeyRef

GPU = "nvidia.com/gpu"
GPU_PRODUCT_LABEL = "nvidia.com/gpu.product"
CREDENTIALS_DIR = "/var/run/secrets/kubetune/s3"
"""Where the reference runtime (and the adapter sync) look for ``<secret>/AWS_*`` files."""
CREDENTIAL_KEYS = ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN")


def container_security_context() -> dict[str, Any]:
    return {
        "allowPrivilegeEscalation": False,
        "readOnlyRootFilesystem": True,
        "runAsNonRoot": True,
        "capabilities": {"drop": ["ALL"]},
        "seccompProfile": {"type": "RuntimeDefault"},
    }


def pod_security_context() -> dict[str, Any]:
    return {
        "runAsNonRoot": True,
        "runAsUser": 1000,
        "runAsGroup": 1000,
        "fsGroup": 1000,
        "seccompProfile": {"type": "RuntimeDefault"},
    }


def resource_requirements(resources: ComputeResources) -> dict[str, Any]:
    """Requests equal to limits for CPU and memory (Guaranteed when both are set)."""
    limits: dict[str, str] = {}
    requests: dict[str, str] = {}
    if resources.gpus:
        limits[GPU] = str(resources.gpus)
    if resources.cpu is not None:
        limits["cpu"] = requests["cpu"] = str(resources.cpu)
    if resources.memory is not None:
        limits["memory"] = requests["memory"] = str(resources.memory)
    out: dict[str, Any] = {}
    if requests:
        out["requests"] = requests
    if limits:
        out["limits"] = limits
    return out


def scheduling(resources: ComputeResources) -> dict[str, Any]:
    """nodeSelector (with the GPU product) and tolerations of a pod spec."""
    selector = dict(resources.node_selector or {})
    if resources.gpu_type:
        selector[GPU_PRODUCT_LABEL] = resources.gpu_type
    out: dict[str, Any] = {}
    if selector:
        out["nodeSelector"] = selector
    if resources.tolerations:
        out["tolerations"] = [
            t.model_dump(mode="json", by_alias=True, exclude_none=True)
            for t in resources.tolerations
        ]
    return out


def credential_env(prefix: str, access: S3Access) -> list[dict[str, Any]]:
    """``<prefix>AWS_ACCESS_KEY_ID`` etc. from the Secret ``access`` names, if any."""
    secret = access.credentials_secret_ref
    if secret is None:
        return []
    return [
        {
            "name": f"{prefix}{key}",
            "valueFrom": {
                "secretKeyRef": {
                    "name": secret.name,
                    "key": key,
                    "optional": key == "AWS_SESSION_TOKEN",
                }
            },
        }
        for key in CREDENTIAL_KEYS
    ]


def token_env(token: SecretKeyRef | None) -> list[dict[str, Any]]:
    """HF_TOKEN from a Secret key, for gated or private models."""
    if token is None:
        return []
    return [
        {"name": "HF_TOKEN", "valueFrom": {"secretKeyRef": {"name": token.name, "key": token.key}}}
    ]


def credential_volumes(secrets: list[str]) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """(volumes, mounts) putting each Secret's files under ``CREDENTIALS_DIR/<name>/``."""
    volumes, mounts = [], []
    for index, name in enumerate(sorted(set(secrets))):
        volume = f"s3-credentials-{index}"
        volumes.append({"name": volume, "secret": {"secretName": name}})
        mounts.append({"name": volume, "mountPath": f"{CREDENTIALS_DIR}/{name}", "readOnly": True})
    return volumes, mounts


def http_probes(port: str, *, startup: str, live: str, ready: str) -> dict[str, Any]:
    """Startup (up to 30 minutes: large models load slowly), liveness and readiness."""

    def probe(path: str, period: int, failures: int) -> dict[str, Any]:
        return {
            "httpGet": {"path": path, "port": port},
            "periodSeconds": period,
            "failureThreshold": failures,
            "timeoutSeconds": 5,
        }

    return {
        "startupProbe": probe(startup, 5, 360),
        "livenessProbe": probe(live, 10, 3),
        "readinessProbe": probe(ready, 5, 2),
    }
