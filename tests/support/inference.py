"""Factories of InferenceDeployments and Adapters for the rollout and serving tests.

Bodies are what the apiserver would return (camelCase, metadata with uid and generation);
``make_*`` parse them with the API models, as the operator does.
"""

from __future__ import annotations

import copy
import hashlib
from datetime import UTC, datetime
from typing import Any

from kubetune.api import Adapter, InferenceDeployment, ResolvedAdapter
from kubetune.rollout import revision_of

NOW = datetime(2026, 11, 29, 12, 0, tzinfo=UTC)
BASE = "kubetune/tiny-llama"
ENDPOINT = "http://minio.storage:9000"
STEPS = [{"weight": 10, "pause": "1m"}, {"weight": 50, "pause": "2m"}]
ANALYSIS = {
    "prometheusUrl": "http://prometheus:9090",
    "interval": "30s",
    "maxErrorRate": 0.05,
    "maxP95LatencyMs": 1000,
    "minRequests": 20,
    "failureLimit": 2,
}


def digest_of(name: str) -> str:
    """A stable, distinct ``sha256:`` digest per adapter name."""
    return "sha256:" + hashlib.sha256(name.encode()).hexdigest()


def adapter_body(
    name: str,
    *,
    family: str = "support-bot",
    created: str = "2026-11-29T10:00:00Z",
    phase: str | None = "Ready",
    rank: int = 8,
    eval_loss: float | None = 0.5,
    base: str = BASE,
    revision: str = "main",
    secret: str | None = "s3-creds",
) -> dict[str, Any]:
    spec: dict[str, Any] = {
        "baseModel": {"name": base, "revision": revision},
        "uri": f"s3://adapters/{family}/{name}/",
        "digest": digest_of(name),
        "endpoint": ENDPOINT,
        "lora": {"r": rank, "alpha": 2 * rank},
    }
    if secret is not None:
        spec["credentialsSecretRef"] = {"name": secret}
    if eval_loss is not None:
        spec["metrics"] = {"evalLoss": eval_loss}
    body: dict[str, Any] = {
        "apiVersion": "kubetune.io/v1alpha1",
        "kind": "Adapter",
        "metadata": {
            "name": name,
            "namespace": "ml",
            "creationTimestamp": created,
            "labels": {"kubetune.io/adapter-family": family},
        },
        "spec": spec,
    }
    if phase is not None:
        body["status"] = {"phase": phase}
        if phase == "Ready":
            body["status"]["verifiedDigest"] = digest_of(name)
    return body


def make_adapter(name: str, **fields: Any) -> Adapter:
    return Adapter.model_validate(adapter_body(name, **fields))


def adapters_by_name(*adapters: Adapter) -> dict[str, Adapter]:
    return {a.metadata["name"]: a for a in adapters}


def infd_body(
    name: str = "support",
    *,
    runtime: str | dict[str, Any] = "kubetune",
    adapters: list[dict[str, Any]] | None = None,
    rollout: dict[str, Any] | None = None,
    status: dict[str, Any] | None = None,
    annotations: dict[str, str] | None = None,
    generation: int = 1,
    **spec: Any,
) -> dict[str, Any]:
    """An InferenceDeployment serving ``support-bot`` from its family, with a two-step
    canary rollout unless ``rollout`` says otherwise (``{}``: no rollout)."""
    body: dict[str, Any] = {
        "apiVersion": "kubetune.io/v1alpha1",
        "kind": "InferenceDeployment",
        "metadata": {
            "name": name,
            "namespace": "ml",
            "uid": "0f1e2d3c-uid",
            "generation": generation,
            "resourceVersion": "42",
            "annotations": dict(annotations or {}),
        },
        "spec": {
            "baseModel": {"name": BASE},
            "runtime": {"type": runtime} if isinstance(runtime, str) else runtime,
            "replicas": 2,
            "resources": {"gpus": 0, "cpu": "2", "memory": "4Gi"},
            "adapters": adapters
            if adapters is not None
            else [{"name": "support-bot", "selector": {"family": "support-bot"}}],
            **spec,
        },
    }
    if rollout is None:
        rollout = {"steps": copy.deepcopy(STEPS)}
    if rollout:
        body["spec"]["rollout"] = rollout
    if status is not None:
        body["status"] = status
    return body


def make_infd(name: str = "support", **fields: Any) -> InferenceDeployment:
    return InferenceDeployment.model_validate(infd_body(name, **fields))


def resolved(ref: str, name: str = "support-bot") -> dict[str, Any]:
    """One resolved adapter as status carries it."""
    return ResolvedAdapter(name=name, adapter_ref=ref, digest=digest_of(ref)).model_dump(
        mode="json", exclude_none=True
    )


def track(*refs: str, **fields: Any) -> dict[str, Any]:
    """A stable or canary status entry serving ``refs`` as support-bot (then sql-helper…)."""
    names = ["support-bot", "sql-helper", "summarizer"]
    adapters = [resolved(ref, names[i]) for i, ref in enumerate(refs)]
    revision = revision_of(ResolvedAdapter.model_validate(a) for a in adapters)
    return {"revision": revision, "adapters": adapters, **fields}


def deployment(
    name: str,
    *,
    replicas: int = 2,
    ready: int | None = None,
    generation: int = 1,
    status: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """A Deployment as the apiserver reports it, all pods ready unless ``ready`` says;
    ``status`` overrides fields of its status."""
    ready = replicas if ready is None else ready
    return {
        "metadata": {"name": name, "generation": generation},
        "spec": {"replicas": replicas},
        "status": {
            "observedGeneration": generation,
            "replicas": replicas,
            "updatedReplicas": replicas,
            "readyReplicas": ready,
            "availableReplicas": ready,
            **(status or {}),
        },
    }
