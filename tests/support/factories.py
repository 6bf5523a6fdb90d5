"""Test objects built from one valid default, overridden field by field."""

from __future__ import annotations

import copy
from typing import Any

from kubetune.api import FineTuneJob


def finetunejob_body(**spec: Any) -> dict[str, Any]:
    """A FineTuneJob as the apiserver returns it (metadata filled in); ``spec`` overrides."""
    access = {"endpoint": "http://minio:9000", "credentialsSecretRef": {"name": "s3-creds"}}
    body: dict[str, Any] = {
        "apiVersion": "kubetune.io/v1alpha1",
        "kind": "FineTuneJob",
        "metadata": {
            "name": "support-bot",
            "namespace": "team",
            "uid": "0b4f0c9e-6d3a-4d8e-9a57-3d1f2c1b0a99",
            "generation": 1,
            "resourceVersion": "100",
        },
        "spec": {
            "baseModel": {"name": "meta-llama/Llama-3.1-8B-Instruct", **access},
            "dataset": {"uri": "s3://data/train.jsonl", "validationSplit": 0.1, **access},
            "method": "qlora",
            "lora": {"r": 16, "alpha": 32},
            "training": {"maxSteps": 100},
            "resources": {"gpus": 1},
            "output": {"uri": "s3://adapters/support-bot/", **access},
            "adapter": {"name": "support-bot", "version": "v3"},
        },
    }
    body["spec"].update(copy.deepcopy(spec))
    return body


def make_finetunejob(**spec: Any) -> FineTuneJob:
    return FineTuneJob.model_validate(finetunejob_body(**spec))


def validated_finetunejob(phase: str = "Validating", **spec: Any) -> FineTuneJob:
    """A FineTuneJob whose dataset was validated (the Validated condition), in ``phase``."""
    body = finetunejob_body(**spec)
    body["status"] = {
        "phase": phase,
        "conditions": [
            {
                "type": "Validated",
                "status": "True",
                "reason": "DatasetValid",
                "lastTransitionTime": "2026-11-29T11:00:00Z",
            }
        ],
    }
    return FineTuneJob.model_validate(body)


def k8s_job(
    name: str, *, conditions: tuple[str, ...] = (), suspend: bool = False, **counts: int
) -> dict[str, Any]:
    """A batch Job's observed state: True conditions by type, and pod counters."""
    status: dict[str, Any] = {
        "conditions": [
            {"type": c, "status": "True", "reason": reason}
            for c, reason in (tuple(c.split(":", 1)) if ":" in c else (c, c) for c in conditions)
        ],
        **counts,
    }
    if counts.get("active"):
        status.setdefault("startTime", "2026-11-29T10:00:00Z")
    return {"metadata": {"name": name}, "spec": {"suspend": suspend}, "status": status}


def pod(
    *,
    waiting: str | None = None,
    terminated: dict[str, Any] | None = None,
    message: str | None = None,
    created: str = "2026-11-29T10:00:00Z",
    conditions: list[dict[str, Any]] | None = None,
    container: str = "trainer",
) -> dict[str, Any]:
    """A pod of a training or validation Job with one container in the given state."""
    state: dict[str, Any] = {"running": {}}
    if waiting:
        state = {"waiting": {"reason": waiting, "message": "details"}}
    if terminated is not None or message is not None:
        state = {"terminated": {"exitCode": 1, **(terminated or {}), "message": message}}
    return {
        "metadata": {"name": "support-bot-train-abc", "creationTimestamp": created},
        "status": {
            "conditions": conditions or [],
            "containerStatuses": [{"name": container, "image": "trainer:1", "state": state}],
        },
    }


def s3_finetunejob(
    name: str,
    bucket: str,
    endpoint: str,
    *,
    adapter: str = "support-bot",
    base_model: str = "kubetune/tiny-llama",
    validation_split: float = 0.1,
    **spec: Any,
) -> dict[str, Any]:
    """A small valid FineTuneJob reading the model from ``models/tiny/`` and the data from
    ``data/train.jsonl`` of ``bucket`` with the Secret ``s3-creds``, publishing the
    ``adapter`` family's v1; ``spec`` overrides fields."""
    access = {"endpoint": endpoint, "credentialsSecretRef": {"name": "s3-creds"}}
    body: dict[str, Any] = {
        "apiVersion": "kubetune.io/v1alpha1",
        "kind": "FineTuneJob",
        "metadata": {"name": name},
        "spec": {
            "baseModel": {"name": base_model, "uri": f"s3://{bucket}/models/tiny/", **access},
            "dataset": {
                "uri": f"s3://{bucket}/data/train.jsonl",
                "validationSplit": validation_split,
                **access,
            },
            "method": "qlora",
            "lora": {"r": 8, "alpha": 16},
            "training": {"maxSteps": 20},
            "resources": {"gpus": 1, "gpuType": "NVIDIA-H100-80GB-HBM3"},
            "output": {"uri": f"s3://{bucket}/adapters/{adapter}/", **access},
            "adapter": {"name": adapter, "version": "v1"},
        },
    }
    body["spec"].update(spec)
    return body
