"""What a pod leaves behind is data too (users choose the image): a manifest listing files
outside its adapter prefix ends the run with a reason instead of publishing an Adapter, and
a validation summary or a progress report of the wrong shape is ignored, never a crash."""

from __future__ import annotations

import json
import math

from kubernetes import client

from kubetune import artifacts
from kubetune.api import FineTuneJob
from localcluster import S3Info
from support.factories import s3_finetunejob
from support.handlerlog import handler_failures, log_size
from support.operator import OperatorProcess
from support.polling import eventually
from support.resources import conditions, create, get, phase_is, status_of
from support.trainerside import finish_pod, pass_validation, running_pod, write_progress


def test_a_run_whose_manifest_escapes_its_prefix_fails_with_manifest_invalid(
    api_client: client.ApiClient,
    namespace: str,
    operator: OperatorProcess,
    s3: S3Info,
    bucket: str,
    s3_secret: str,
) -> None:
    create(api_client, namespace, "finetunejobs", s3_finetunejob("bot", bucket, s3.endpoint))
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


def test_a_validation_summary_of_the_wrong_shape_is_ignored_not_fatal(
    api_client: client.ApiClient,
    namespace: str,
    operator: OperatorProcess,
    s3: S3Info,
    bucket: str,
    s3_secret: str,
) -> None:
    """The summary is whatever the pod's image wrote (users choose the image)."""
    start = log_size(operator)
    create(api_client, namespace, "finetunejobs", s3_finetunejob("bot", bucket, s3.endpoint))
    summary = {"phase": "Validated", "reason": "DatasetValid", "message": "ok"}
    summary["dataset"] = {"records": "lots", "format": "pickle", "sha256": ["x"]}
    finish_pod(api_client, running_pod(api_client, namespace, "bot-validate"), 0, summary)

    status = eventually(lambda: phase_is(api_client, namespace, "bot", "Running"), what="Running")
    assert conditions(status)["Validated"]["status"] == "True"
    assert "dataset" not in status
    assert not handler_failures(operator, start, namespace)


def test_progress_of_the_wrong_shape_is_ignored(
    api_client: client.ApiClient,
    namespace: str,
    operator: OperatorProcess,
    s3: S3Info,
    bucket: str,
    s3_secret: str,
) -> None:
    start = log_size(operator)
    create(api_client, namespace, "finetunejobs", s3_finetunejob("bot", bucket, s3.endpoint))
    pass_validation(api_client, namespace, "bot")
    eventually(lambda: phase_is(api_client, namespace, "bot", "Running"), what="Running")
    job = FineTuneJob.model_validate(get(api_client, namespace, "finetunejobs", "bot"))
    run = artifacts.run_id(job.spec)
    uri = job.spec.output.uri
    write_progress(s3.client(), uri, run, step="many", percent=900)
    eventually(
        lambda: "progress of bot not understood" in operator.log.read_text(errors="replace"),
        what="the bad report read and ignored",
    )
    write_progress(s3.client(), uri, run, step=3, trainLoss=math.nan, checkpointUri=5)
    status = eventually(
        lambda: (
            (s := status_of(api_client, namespace, "finetunejobs", "bot")).get("progress") and s
        ),
        what="the usable part of a report in status",
    )
    assert status["progress"]["step"] == 3
    assert "trainLoss" not in status["progress"]
    assert "checkpointUri" not in status
    assert not handler_failures(operator, start, namespace)
