"""Play the trainer's side of the contract exactly as the trainer does, without training.

The operator only sees S3 objects (progress, manifest, files) and the pod's termination
message; writing those is enough to drive it through a whole lifecycle on kwok nodes.
"""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, datetime
from typing import Any

from kubernetes import client

from kubetune import artifacts
from support.polling import eventually


def _split(uri: str) -> tuple[str, str]:
    bucket, _, key = uri.removeprefix("s3://").partition("/")
    return bucket, key


def publish_artifact(
    s3: Any,
    output_uri: str,
    run: str,
    files: dict[str, bytes],
    *,
    metrics: dict[str, Any] | None = None,
) -> tuple[str, str]:
    """Upload ``files`` then the manifest (last, as the trainer does); (adapter uri, digest)."""
    prefix = artifacts.adapter_uri(output_uri, run)
    for path, data in files.items():
        bucket, key = _split(artifacts.join(prefix, path))
        s3.put_object(Bucket=bucket, Key=key, Body=data)
    manifest = artifacts.Manifest(
        run_id=run,
        base_model={"name": "kubetune/tiny-llama", "revision": "main"},
        lora={"r": 8, "alpha": 16},
        files=[
            artifacts.ManifestFile(path=p, sha256=hashlib.sha256(d).hexdigest(), size=len(d))
            for p, d in sorted(files.items())
        ],
        metrics=metrics or {"eval_loss": 0.42, "train_loss": 0.5, "trained_tokens": 12345},
        dataset={"uri": "s3://data/train.jsonl", "sha256": "a" * 64},
        trainer_version="0.1.0",
        created_at=datetime.now(UTC),
    )
    data = manifest.to_bytes()
    bucket, key = _split(artifacts.join(prefix, artifacts.MANIFEST_NAME))
    s3.put_object(Bucket=bucket, Key=key, Body=data)
    return prefix, artifacts.digest(data)


def write_progress(s3: Any, output_uri: str, run: str, **progress: Any) -> None:
    bucket, key = _split(artifacts.progress_uri(output_uri, run))
    s3.put_object(Bucket=bucket, Key=key, Body=json.dumps(progress).encode())


def running_pod(api: client.ApiClient, namespace: str, job_name: str) -> client.V1Pod:
    core = client.CoreV1Api(api)

    def find() -> client.V1Pod | None:
        pods = core.list_namespaced_pod(namespace, label_selector=f"job-name={job_name}").items
        return next((p for p in pods if p.status.phase == "Running"), None)

    return eventually(find, what=f"a Running pod of Job {job_name}")


def finish_pod(
    api: client.ApiClient,
    pod: client.V1Pod,
    exit_code: int,
    summary: dict[str, Any] | None = None,
    *,
    reason: str | None = None,
) -> None:
    """End a kwok-run pod with ``exit_code`` and the trainer's summary as termination message."""
    annotations = {"kwok.kubetune.io/exit-code": str(exit_code)}
    if summary is not None:
        annotations["kwok.kubetune.io/message"] = json.dumps(summary)
    if reason is not None:
        annotations["kwok.kubetune.io/reason"] = reason
    client.CoreV1Api(api).patch_namespaced_pod(
        pod.metadata.name, pod.metadata.namespace, {"metadata": {"annotations": annotations}}
    )


def pass_validation(api: client.ApiClient, namespace: str, name: str) -> None:
    """End the validation pod of FineTuneJob ``name`` as the trainer does for valid data."""
    from support.resources import validation_summary

    finish_pod(api, running_pod(api, namespace, f"{name}-validate"), 0, validation_summary())


def finish_training(api: client.ApiClient, s3: Any, namespace: str, name: str) -> tuple[str, str]:
    """Publish the run's artifact and end its training pod successfully; (uri, digest)."""
    from kubetune.api import FineTuneJob
    from support.resources import get

    job = FineTuneJob.model_validate(get(api, namespace, "finetunejobs", name))
    pod = running_pod(api, namespace, f"{name}-train")
    published = publish_artifact(
        s3,
        job.spec.output.uri,
        artifacts.run_id(job.spec),
        {"adapter_model.safetensors": b"\x07" * 256},
    )
    finish_pod(api, pod, 0, {"phase": "Succeeded", "reason": "Completed", "message": "done"})
    return published
