"""Suspend, resume, deadlines, cancellation and the failures of a training run."""

from __future__ import annotations

from typing import Any

import pytest
from kubernetes import client

from localcluster import S3Info
from support.factories import s3_finetunejob
from support.polling import eventually
from support.resources import (
    conditions,
    create,
    patch_spec,
    phase_is,
    read_job,
    status_of,
    validation_summary,
)
from support.trainerside import finish_pod, running_pod

pytestmark = pytest.mark.usefixtures("operator", "s3_secret")
NAME = "support-bot"


def _start_training(api: client.ApiClient, namespace: str, body: dict[str, Any]) -> client.V1Pod:
    """Apply, pass validation, and return the Running training pod."""
    create(api, namespace, "finetunejobs", body)
    finish_pod(api, running_pod(api, namespace, f"{NAME}-validate"), 0, validation_summary())
    pod = running_pod(api, namespace, f"{NAME}-train")
    eventually(lambda: phase_is(api, namespace, NAME, "Running"), what="Running")
    return pod


def _gone(fn: Any) -> bool:
    try:
        fn()
    except client.ApiException as exc:
        return exc.status == 404
    return False


def test_suspend_stops_pods_and_resume_restarts_them(
    api_client: client.ApiClient, namespace: str, bucket: str, s3: S3Info
) -> None:
    first = _start_training(api_client, namespace, s3_finetunejob(NAME, bucket, s3.endpoint))
    core = client.CoreV1Api(api_client)

    patch_spec(api_client, namespace, "finetunejobs", NAME, {"suspend": True})
    status = eventually(lambda: phase_is(api_client, namespace, NAME, "Suspended"))
    assert conditions(status)["Suspended"]["status"] == "True"
    assert read_job(api_client, namespace, f"{NAME}-train").spec.suspend is True
    eventually(
        lambda: _gone(lambda: core.read_namespaced_pod(first.metadata.name, namespace)),
        what="training pod deleted on suspend",
    )

    patch_spec(api_client, namespace, "finetunejobs", NAME, {"suspend": False})
    status = eventually(lambda: phase_is(api_client, namespace, NAME, "Running"))
    assert conditions(status)["Suspended"]["status"] == "False"
    second = running_pod(api_client, namespace, f"{NAME}-train")
    assert second.metadata.uid != first.metadata.uid
    assert read_job(api_client, namespace, f"{NAME}-train").spec.suspend is False


def test_deadline_fails_with_deadline_exceeded(
    api_client: client.ApiClient, namespace: str, bucket: str, s3: S3Info
) -> None:
    body = s3_finetunejob(NAME, bucket, s3.endpoint, activeDeadlineSeconds=2)
    create(api_client, namespace, "finetunejobs", body)
    finish_pod(
        api_client, running_pod(api_client, namespace, f"{NAME}-validate"), 0, validation_summary()
    )
    running_pod(api_client, namespace, f"{NAME}-train")
    # Not waiting for Running: on a loaded machine the 2 s can pass before the operator
    # writes that phase, and the job goes from Pending to Failed.
    status = eventually(lambda: phase_is(api_client, namespace, NAME, "Failed"), what="Failed")
    assert conditions(status)["Failed"]["reason"] == "DeadlineExceeded"


def test_deleting_the_job_cancels_training(
    api_client: client.ApiClient, namespace: str, bucket: str, s3: S3Info
) -> None:
    _start_training(api_client, namespace, s3_finetunejob(NAME, bucket, s3.endpoint))
    client.CustomObjectsApi(api_client).delete_namespaced_custom_object(
        "kubetune.io", "v1alpha1", namespace, "finetunejobs", NAME
    )
    eventually(
        lambda: _gone(lambda: read_job(api_client, namespace, f"{NAME}-train")),
        what="training Job garbage-collected",
    )
    pods = client.CoreV1Api(api_client).list_namespaced_pod(
        namespace, label_selector=f"job-name={NAME}-train"
    )
    assert all(p.metadata.deletion_timestamp for p in pods.items)


def test_out_of_memory_in_training(
    api_client: client.ApiClient, namespace: str, bucket: str, s3: S3Info
) -> None:
    body = s3_finetunejob(NAME, bucket, s3.endpoint, backoffLimit=0)
    pod = _start_training(api_client, namespace, body)
    finish_pod(api_client, pod, 137, reason="OOMKilled")
    status = eventually(lambda: phase_is(api_client, namespace, NAME, "Failed"), what="Failed")
    failed = conditions(status)["Failed"]
    assert failed["reason"] == "OutOfMemory"
    assert "resources.memory" in failed["message"]


def test_permanent_trainer_failure_is_not_retried(
    api_client: client.ApiClient, namespace: str, bucket: str, s3: S3Info
) -> None:
    pod = _start_training(api_client, namespace, s3_finetunejob(NAME, bucket, s3.endpoint))
    finish_pod(
        api_client,
        pod,
        3,
        {"phase": "Failed", "reason": "NaNLoss", "message": "loss is NaN at step 7"},
    )
    status = eventually(lambda: phase_is(api_client, namespace, NAME, "Failed"), what="Failed")
    assert conditions(status)["Failed"]["reason"] == "NaNLoss"
    assert conditions(status)["Failed"]["message"] == "loss is NaN at step 7"
    job = read_job(api_client, namespace, f"{NAME}-train")
    assert (job.status.failed, job.status.active or 0) == (1, 0)


def test_unpullable_image_fails_without_holding_pods(
    api_client: client.ApiClient, namespace: str, bucket: str, s3: S3Info
) -> None:
    body = s3_finetunejob(NAME, bucket, s3.endpoint, image="registry.invalid/kubetune/trainer:nope")
    create(api_client, namespace, "finetunejobs", body)
    status = eventually(lambda: phase_is(api_client, namespace, NAME, "Failed"), what="Failed")
    failed = conditions(status)["Failed"]
    assert failed["reason"] == "ImagePullFailed"
    assert "registry.invalid/kubetune/trainer:nope" in failed["message"]
    eventually(
        lambda: _gone(lambda: read_job(api_client, namespace, f"{NAME}-validate")),
        what="validation Job removed",
    )


def test_evicted_pod_is_retried_and_counted(
    api_client: client.ApiClient, namespace: str, bucket: str, s3: S3Info
) -> None:
    body = s3_finetunejob(NAME, bucket, s3.endpoint, backoffLimit=0)
    pod = _start_training(api_client, namespace, body)
    core = client.CoreV1Api(api_client)
    # The Eviction API (as a node drain uses it) marks the pod DisruptionTarget and deletes it.
    core.create_namespaced_pod_eviction(
        pod.metadata.name,
        namespace,
        client.V1Eviction(
            metadata=client.V1ObjectMeta(name=pod.metadata.name, namespace=namespace)
        ),
    )

    replacement = eventually(
        lambda: (
            (p := running_pod(api_client, namespace, f"{NAME}-train")).metadata.uid
            != pod.metadata.uid
            and p
        ),
        what="a replacement pod despite backoffLimit 0",
    )
    assert replacement.status.phase == "Running"
    eventually(
        lambda: status_of(api_client, namespace, "finetunejobs", NAME).get("attempts") == 2,
        what="attempts counted",
    )
    eventually(lambda: phase_is(api_client, namespace, NAME, "Running"), what="Running again")
    events = core.list_namespaced_event(namespace, field_selector=f"involvedObject.name={NAME}")
    assert "Preempted" in {e.reason for e in events.items}


def test_a_queued_job_waits_for_kueue_to_admit_it(
    api_client: client.ApiClient, namespace: str, bucket: str, s3: S3Info
) -> None:
    create(
        api_client,
        namespace,
        "finetunejobs",
        s3_finetunejob(NAME, bucket, s3.endpoint, queueName="gpus"),
    )
    finish_pod(
        api_client, running_pod(api_client, namespace, f"{NAME}-validate"), 0, validation_summary()
    )
    status = eventually(lambda: phase_is(api_client, namespace, NAME, "Queued"), what="Queued")
    job = eventually(lambda: read_job(api_client, namespace, f"{NAME}-train"))
    assert job.spec.suspend is True
    assert job.metadata.labels["kueue.x-k8s.io/queue-name"] == "gpus"
    assert conditions(status)["Validated"]["status"] == "True"

    # Kueue admits a Job by un-suspending it; the operator must not suspend it again.
    client.BatchV1Api(api_client).patch_namespaced_job(
        f"{NAME}-train", namespace, {"spec": {"suspend": False}}
    )
    eventually(
        lambda: phase_is(api_client, namespace, NAME, "Running"), what="Running once admitted"
    )
    assert read_job(api_client, namespace, f"{NAME}-train").spec.suspend is False
