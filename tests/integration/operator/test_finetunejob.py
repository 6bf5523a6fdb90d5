"""A FineTuneJob from apply to a Ready Adapter, on the real control plane and S3."""

from __future__ import annotations

import time
from typing import Any

import pytest
from kubernetes import client

from kubetune import artifacts
from kubetune.api import FineTuneJob
from localcluster import S3Info
from support.factories import s3_finetunejob
from support.operator import OperatorProcess
from support.polling import eventually
from support.resources import (
    GROUP,
    VERSION,
    conditions,
    create,
    get,
    phase_is,
    read_job,
    status_of,
    validation_summary,
)
from support.trainerside import finish_pod, publish_artifact, running_pod, write_progress


@pytest.fixture
def ftj_spec(bucket: str, s3: S3Info, s3_secret: str) -> dict[str, Any]:
    return s3_finetunejob("support-bot", bucket, s3.endpoint)


def test_apply_to_ready_adapter(
    api_client: client.ApiClient,
    namespace: str,
    operator: OperatorProcess,
    s3: S3Info,
    bucket: str,
    ftj_spec: dict[str, Any],
) -> None:
    applied = time.monotonic()
    create(api_client, namespace, "finetunejobs", ftj_spec)

    # Validation runs first, on CPU: no GPU is requested before the data is known good.
    validation = eventually(
        lambda: read_job(api_client, namespace, "support-bot-validate"),
        timeout=5,
        what="validation Job within 5 s",
    )
    assert time.monotonic() - applied < 5
    vpod = validation.spec.template.spec
    assert "nvidia.com/gpu" not in (vpod.containers[0].resources.limits or {})
    assert vpod.containers[0].args[:1] == ["validate"]
    assert vpod.automount_service_account_token is False
    assert eventually(lambda: phase_is(api_client, namespace, "support-bot", "Validating"))
    finish_pod(
        api_client,
        running_pod(api_client, namespace, "support-bot-validate"),
        0,
        validation_summary(),
    )

    training = eventually(
        lambda: read_job(api_client, namespace, "support-bot-train"), what="training Job"
    )
    _assert_training_pod_spec(training, namespace)
    status = eventually(lambda: phase_is(api_client, namespace, "support-bot", "Running"))
    assert status["dataset"] == {
        "sha256": "b" * 64,
        "format": "chat",
        "records": 90,
        "evalRecords": 10,
    }
    by_type = conditions(status)
    assert by_type["Validated"]["status"] == "True"
    assert by_type["Running"]["status"] == "True"
    assert (by_type["Admitted"]["status"], by_type["Admitted"]["reason"]) == ("True", "Admitted")
    assert status["jobName"] == "support-bot-train"

    job = FineTuneJob.model_validate(get(api_client, namespace, "finetunejobs", "support-bot"))
    run = artifacts.run_id(job.spec)
    output = job.spec.output.uri
    s3_client = s3.client()
    write_progress(
        s3_client,
        output,
        run,
        step=10,
        totalSteps=20,
        percent=50,
        epoch=0.5,
        trainLoss=1.25,
        tokensPerSecond=812.5,
        etaSeconds=30,
    )
    progress = eventually(
        lambda: status_of(api_client, namespace, "finetunejobs", "support-bot").get("progress"),
        what="progress in status",
    )
    assert (progress["step"], progress["totalSteps"], progress["trainLoss"]) == (10, 20, 1.25)

    files = {"adapter_config.json": b'{"r": 8}', "adapter_model.safetensors": b"\x00" * 4096}
    uri, digest = publish_artifact(s3_client, output, run, files)
    finish_pod(
        api_client,
        running_pod(api_client, namespace, "support-bot-train"),
        0,
        {"phase": "Succeeded", "reason": "Completed", "message": "done"},
    )

    status = eventually(
        lambda: phase_is(api_client, namespace, "support-bot", "Succeeded"), what="Succeeded"
    )
    status = eventually(
        lambda: (
            status_of(api_client, namespace, "finetunejobs", "support-bot").get("adapterRef")
            and status_of(api_client, namespace, "finetunejobs", "support-bot")
        ),
        what="adapterRef",
    )
    assert status["adapterRef"] == "support-bot-v1"
    assert status["artifactUri"] == uri
    assert status["attempts"] == 1
    adapter = eventually(
        lambda: (
            status_of(api_client, namespace, "adapters", "support-bot-v1").get("phase") == "Ready"
            and get(api_client, namespace, "adapters", "support-bot-v1")
        ),
        what="Adapter Ready",
    )
    assert adapter["spec"]["digest"] == digest
    assert adapter["spec"]["source"]["fineTuneJob"] == "support-bot"
    assert adapter["spec"]["metrics"]["evalLoss"] == 0.42
    assert adapter["status"]["sizeBytes"] == sum(len(d) for d in files.values())
    assert adapter["status"]["files"] == 2

    def reasons() -> set[str]:
        events = client.CoreV1Api(api_client).list_namespaced_event(
            namespace, field_selector="involvedObject.name=support-bot"
        )
        return {e.reason for e in events.items}

    # Events are posted asynchronously, after the status they describe.
    eventually(
        lambda: {"ValidatingDataset", "JobCreated", "Training", "Completed"} <= reasons(),
        what="an Event for every transition",
    )


def _assert_training_pod_spec(job: client.V1Job, namespace: str) -> None:
    assert job.metadata.owner_references[0].kind == "FineTuneJob"
    assert job.metadata.owner_references[0].controller is True
    assert job.spec.backoff_limit == 2
    assert job.spec.suspend is False
    assert [r.action for r in job.spec.pod_failure_policy.rules] == ["Ignore", "FailJob"]
    pod = job.spec.template.spec
    assert pod.restart_policy == "Never"
    assert pod.automount_service_account_token is False
    assert pod.enable_service_links is False
    assert pod.security_context.run_as_non_root is True
    assert pod.security_context.seccomp_profile.type == "RuntimeDefault"
    assert pod.node_selector == {"nvidia.com/gpu.product": "NVIDIA-H100-80GB-HBM3"}
    (container,) = pod.containers
    assert container.command == ["kubetune-train"]
    assert container.args == ["train", "--config", "/etc/kubetune/job.yaml"]
    assert container.resources.limits == {"nvidia.com/gpu": "1"}
    assert container.security_context.allow_privilege_escalation is False
    assert container.security_context.read_only_root_filesystem is True
    assert container.security_context.capabilities.drop == ["ALL"]
    assert container.termination_message_policy == "FallbackToLogsOnError"
    env = {e.name: e for e in container.env}
    assert (
        env["KUBETUNE_S3_OUTPUT_AWS_SECRET_ACCESS_KEY"].value_from.secret_key_ref.name == "s3-creds"
    )
    assert env["KUBETUNE_S3_OUTPUT_AWS_SECRET_ACCESS_KEY"].value is None
    assert len(env["KUBETUNE_RUN_ID"].value) == 16
    mounts = {m.mount_path: m for m in container.volume_mounts}
    assert mounts["/etc/kubetune"].read_only is True
    volumes = {v.name: v for v in pod.volumes}
    assert volumes["config"].config_map.name == "support-bot-config"


def test_reapplying_a_finished_run_does_not_retrain(
    api_client: client.ApiClient,
    namespace: str,
    operator: OperatorProcess,
    s3: S3Info,
    bucket: str,
    ftj_spec: dict[str, Any],
) -> None:
    job = FineTuneJob.model_validate(ftj_spec)
    publish_artifact(
        s3.client(),
        job.spec.output.uri,
        artifacts.run_id(job.spec),
        {"adapter_model.safetensors": b"\x01" * 100},
    )
    create(api_client, namespace, "finetunejobs", ftj_spec)
    finish_pod(
        api_client,
        running_pod(api_client, namespace, "support-bot-validate"),
        0,
        validation_summary(),
    )
    status = eventually(lambda: phase_is(api_client, namespace, "support-bot", "Succeeded"))
    succeeded = conditions(status)["Succeeded"]
    assert succeeded["reason"] == "ArtifactExists"
    with pytest.raises(client.ApiException) as missing:
        read_job(api_client, namespace, "support-bot-train")
    assert missing.value.status == 404
    eventually(
        lambda: (
            status_of(api_client, namespace, "adapters", "support-bot-v1").get("phase") == "Ready"
        ),
        what="Adapter Ready",
    )


@pytest.mark.parametrize(
    ("summary", "reason", "kwok_reason", "exit_code"),
    [
        (
            {"phase": "Failed", "reason": "DatasetInvalid", "message": "line 3: empty content"},
            "DatasetInvalid",
            None,
            3,
        ),
        (
            {"phase": "Failed", "reason": "S3AccessDenied", "message": "s3://x denied"},
            "S3AccessDenied",
            None,
            3,
        ),
        (None, "OutOfMemory", "OOMKilled", 137),
    ],
)
def test_validation_failures_carry_the_reason(
    api_client: client.ApiClient,
    namespace: str,
    operator: OperatorProcess,
    ftj_spec: dict[str, Any],
    summary: dict[str, Any] | None,
    reason: str,
    kwok_reason: str | None,
    exit_code: int,
) -> None:
    create(api_client, namespace, "finetunejobs", ftj_spec)

    def failed() -> dict[str, Any] | None:
        # Retryable failures (OOM) get one more validation pod: end each one that runs.
        pods = (
            client.CoreV1Api(api_client)
            .list_namespaced_pod(namespace, label_selector="job-name=support-bot-validate")
            .items
        )
        for pod in pods:
            if pod.status.phase == "Running" and not (pod.metadata.annotations or {}).get(
                "kwok.kubetune.io/exit-code"
            ):
                finish_pod(api_client, pod, exit_code, summary, reason=kwok_reason)
        return phase_is(api_client, namespace, "support-bot", "Failed")

    status = eventually(failed, what=f"Failed with {reason}")
    failed = conditions(status)["Failed"]
    assert failed["reason"] == reason
    if summary:
        assert failed["message"] == summary["message"]
    with pytest.raises(client.ApiException):
        read_job(api_client, namespace, "support-bot-train")


def test_missing_secret_fails_before_any_pod(
    api_client: client.ApiClient,
    namespace: str,
    operator: OperatorProcess,
    bucket: str,
    s3: S3Info,
) -> None:
    create(api_client, namespace, "finetunejobs", s3_finetunejob("no-secret", bucket, s3.endpoint))
    status = eventually(lambda: phase_is(api_client, namespace, "no-secret", "Failed"))
    failed = conditions(status)["Failed"]
    assert failed["reason"] == "SecretNotFound"
    assert "s3-creds" in failed["message"]
    with pytest.raises(client.ApiException):
        read_job(api_client, namespace, "no-secret-validate")


def test_tampered_adapter_fails_with_digest_mismatch(
    api_client: client.ApiClient,
    namespace: str,
    operator: OperatorProcess,
    s3: S3Info,
    bucket: str,
    s3_secret: str,
) -> None:
    s3_client = s3.client()
    uri, digest = publish_artifact(
        s3_client, f"s3://{bucket}/imported/", "run1", {"adapter_model.safetensors": b"\x02" * 512}
    )
    key = artifacts.join(uri, "adapter_model.safetensors").removeprefix(f"s3://{bucket}/")
    s3_client.put_object(Bucket=bucket, Key=key, Body=b"\x03" * 512)
    body = {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": "Adapter",
        "metadata": {"name": "tampered"},
        "spec": {
            "baseModel": {"name": "kubetune/tiny-llama"},
            "uri": uri,
            "digest": digest,
            "endpoint": s3.endpoint,
            "credentialsSecretRef": {"name": s3_secret},
        },
    }
    client.CustomObjectsApi(api_client).create_namespaced_custom_object(
        GROUP, VERSION, namespace, "adapters", body
    )
    status = eventually(
        lambda: (
            (s := status_of(api_client, namespace, "adapters", "tampered")).get("phase") == "Failed"
            and s
        ),
        what="Adapter Failed",
    )
    ready = conditions(status)["Ready"]
    assert ready["reason"] == "DigestMismatch"
    assert "adapter_model.safetensors" in ready["message"]
