"""What a training pod leaves in S3 is data too: a run whose manifest lists files outside
its adapter prefix ends with a reason instead of publishing an Adapter."""

from __future__ import annotations

import json

from kubernetes import client

from kubetune import artifacts
from kubetune.api import FineTuneJob
from localcluster import S3Info
from support.operator import OperatorProcess
from support.polling import eventually
from support.resources import conditions, create, get, phase_is
from support.trainerside import finish_pod, pass_validation, running_pod

from ..conftest import make_finetunejob


def test_a_run_whose_manifest_escapes_its_prefix_fails_with_manifest_invalid(
    api_client: client.ApiClient,
    namespace: str,
    operator: OperatorProcess,
    s3: S3Info,
    bucket: str,
    s3_secret: str,
) -> None:
    create(api_client, namespace, "finetunejobs", make_finetunejob("bot", bucket, s3.endpoint))
    pass_validation(api_client, namespace, "bot")
    pod = running_pod(api_client, namespace, "bot-train")
    job = FineTuneJob.model_validate(get(api_client, namespace, "finetunejobs", "bot"))
    prefix = artifacts.adapter_uri(job.spec.output.uri, artifacts.run_id(job.spec))
    manifest = {
        "version": 1,
        "run_id": "r",
        "base_model": {"name": "kubetune/tiny-llama", "revision": "main"},
        "lora": {"r": 8},
        "files": [{"path": "../../other/weights", "sha256": "0" * 64, "size": 1}],
        "trainer_version": "0.1.0",
        "created_at": "2026-11-29T00:00:00Z",
    }
    key = artifacts.join(prefix, artifacts.MANIFEST_NAME).removeprefix(f"s3://{bucket}/")
    s3.client().put_object(Bucket=bucket, Key=key, Body=json.dumps(manifest).encode())
    finish_pod(api_client, pod, 0, {"phase": "Succeeded", "reason": "Completed"})

    status = eventually(lambda: phase_is(api_client, namespace, "bot", "Failed"), what="Failed")
    failed = conditions(status)["Failed"]
    assert failed["reason"] == "ManifestInvalid"
    assert "../../other/weights" in failed["message"]
    assert "adapterRef" not in status
    assert not client.CustomObjectsApi(api_client).list_namespaced_custom_object(
        "kubetune.io", "v1alpha1", namespace, "adapters"
    )["items"]
