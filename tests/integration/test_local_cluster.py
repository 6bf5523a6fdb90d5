"""The local cluster is a real one: scheduling, controllers, admission, GC, RBAC and S3."""

from __future__ import annotations

import hashlib
import os
import secrets

import pytest
from kubernetes import client
from kubernetes.client.rest import ApiException

from localcluster import Cluster, S3Info
from localcluster.nodes import GPU_PRODUCT_LABEL, GPU_RESOURCE
from support.polling import eventually

GPU_NODES = "kubetune.io/pool=gpu"


def _container(gpus: int = 1) -> client.V1Container:
    return client.V1Container(
        name="main",
        image="example.com/worker:1",
        resources=client.V1ResourceRequirements(limits={GPU_RESOURCE: str(gpus)}),
    )


def test_gpu_nodes_are_ready_with_gpu_allocatable(api_client: client.ApiClient) -> None:
    nodes = client.CoreV1Api(api_client).list_node(label_selector=GPU_NODES).items
    assert len(nodes) == 2
    for node in nodes:
        ready = {c.type: c.status for c in node.status.conditions}["Ready"]
        assert ready == "True", node.metadata.name
        assert node.status.allocatable[GPU_RESOURCE] == "8"
        assert node.metadata.labels[GPU_PRODUCT_LABEL].startswith("NVIDIA-")


def test_deployment_pods_are_scheduled_on_gpu_nodes_and_become_ready(
    api_client: client.ApiClient, namespace: str
) -> None:
    apps, core = client.AppsV1Api(api_client), client.CoreV1Api(api_client)
    labels = {"app": "gpu-workload"}
    apps.create_namespaced_deployment(
        namespace,
        client.V1Deployment(
            metadata=client.V1ObjectMeta(name="gpu-workload"),
            spec=client.V1DeploymentSpec(
                replicas=3,
                selector=client.V1LabelSelector(match_labels=labels),
                template=client.V1PodTemplateSpec(
                    metadata=client.V1ObjectMeta(labels=labels),
                    spec=client.V1PodSpec(containers=[_container(gpus=4)]),
                ),
            ),
        ),
    )
    eventually(
        lambda: (
            apps.read_namespaced_deployment("gpu-workload", namespace).status.ready_replicas == 3
        ),
        what="3 ready replicas",
    )
    pods = core.list_namespaced_pod(namespace, label_selector="app=gpu-workload").items
    gpu_nodes = {n.metadata.name for n in core.list_node(label_selector=GPU_NODES).items}
    assert {p.status.phase for p in pods} == {"Running"}
    assert all(p.spec.node_name in gpu_nodes for p in pods)
    # 3 pods x 4 GPUs do not fit on one 8-GPU node: the scheduler really accounted for GPUs.
    assert len({p.spec.node_name for p in pods}) == 2


def test_pod_that_fits_nowhere_stays_pending(api_client: client.ApiClient, namespace: str) -> None:
    core = client.CoreV1Api(api_client)
    core.create_namespaced_pod(
        namespace,
        client.V1Pod(
            metadata=client.V1ObjectMeta(name="too-big"),
            spec=client.V1PodSpec(containers=[_container(gpus=9)]),
        ),
    )

    def unschedulable() -> bool:
        conditions = core.read_namespaced_pod("too-big", namespace).status.conditions or []
        return any(c.type == "PodScheduled" and c.reason == "Unschedulable" for c in conditions)

    eventually(unschedulable, what="Unschedulable condition")
    assert core.read_namespaced_pod("too-big", namespace).spec.node_name is None


def _run_job(api_client: client.ApiClient, namespace: str, name: str) -> client.V1Pod:
    client.BatchV1Api(api_client).create_namespaced_job(
        namespace,
        client.V1Job(
            metadata=client.V1ObjectMeta(name=name),
            spec=client.V1JobSpec(
                backoff_limit=0,
                template=client.V1PodTemplateSpec(
                    spec=client.V1PodSpec(restart_policy="Never", containers=[_container()])
                ),
            ),
        ),
    )
    core = client.CoreV1Api(api_client)

    def running_pod() -> client.V1Pod | None:
        pods = core.list_namespaced_pod(namespace, label_selector=f"job-name={name}").items
        return next((p for p in pods if p.status.phase == "Running"), None)

    return eventually(running_pod, what=f"a Running pod of job {name}")


def _finish(api_client: client.ApiClient, pod: client.V1Pod, annotations: dict[str, str]) -> None:
    client.CoreV1Api(api_client).patch_namespaced_pod(
        pod.metadata.name, pod.metadata.namespace, {"metadata": {"annotations": annotations}}
    )


def _job_condition(api_client: client.ApiClient, namespace: str, name: str, kind: str) -> bool:
    job = client.BatchV1Api(api_client).read_namespaced_job(name, namespace)
    return any(c.type == kind and c.status == "True" for c in job.status.conditions or [])


def test_job_pod_driven_to_succeeded_completes_the_job(
    api_client: client.ApiClient, namespace: str
) -> None:
    pod = _run_job(api_client, namespace, "trains")
    _finish(api_client, pod, {"kwok.kubetune.io/exit-code": "0"})
    eventually(lambda: _job_condition(api_client, namespace, "trains", "Complete"), what="Complete")
    finished = client.CoreV1Api(api_client).read_namespaced_pod(pod.metadata.name, namespace)
    assert finished.status.phase == "Succeeded"
    assert finished.status.container_statuses[0].state.terminated.exit_code == 0


def test_job_pod_driven_to_failure_carries_reason_and_message(
    api_client: client.ApiClient, namespace: str
) -> None:
    pod = _run_job(api_client, namespace, "ooms")
    _finish(
        api_client,
        pod,
        {
            "kwok.kubetune.io/exit-code": "137",
            "kwok.kubetune.io/reason": "OOMKilled",
            "kwok.kubetune.io/message": '{"reason": "OutOfMemory"}',
        },
    )
    eventually(lambda: _job_condition(api_client, namespace, "ooms", "Failed"), what="Failed")
    failed = client.CoreV1Api(api_client).read_namespaced_pod(pod.metadata.name, namespace)
    terminated = failed.status.container_statuses[0].state.terminated
    assert failed.status.phase == "Failed"
    assert (terminated.exit_code, terminated.reason) == (137, "OOMKilled")
    assert terminated.message == '{"reason": "OutOfMemory"}'


def test_crd_schema_is_enforced_by_the_apiserver(cluster: Cluster, namespace: str) -> None:
    group = f"g{secrets.token_hex(3)}.example.com"
    crd = f"""
apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata: {{name: widgets.{group}}}
spec:
  group: {group}
  scope: Namespaced
  names: {{plural: widgets, singular: widget, kind: Widget}}
  versions:
  - name: v1
    served: true
    storage: true
    schema:
      openAPIV3Schema:
        type: object
        properties:
          spec:
            type: object
            properties:
              size: {{type: integer, minimum: 1, maximum: 10}}
"""
    cluster.kubectl("apply", "-f", "-", input=crd)
    try:
        cluster.kubectl(
            "wait", "--for=condition=Established", f"crd/widgets.{group}", "--timeout=30s"
        )
        bad = f"apiVersion: {group}/v1\nkind: Widget\nmetadata: {{name: w}}\nspec: {{size: 11}}\n"
        result = cluster.kubectl("apply", "-n", namespace, "-f", "-", input=bad, check=False)
        assert result.returncode != 0
        assert "spec.size" in result.stderr
        assert "should be less than or equal to 10" in result.stderr
        good = bad.replace("size: 11", "size: 3")
        cluster.kubectl("apply", "-n", namespace, "-f", "-", input=good)
    finally:
        cluster.kubectl("delete", f"crd/widgets.{group}", "--wait=false")


def test_deleting_an_owner_garbage_collects_what_it_owns(
    api_client: client.ApiClient, namespace: str
) -> None:
    core = client.CoreV1Api(api_client)
    owner = core.create_namespaced_config_map(
        namespace, client.V1ConfigMap(metadata=client.V1ObjectMeta(name="owner"))
    )
    reference = client.V1OwnerReference(
        api_version="v1", kind="ConfigMap", name="owner", uid=owner.metadata.uid
    )
    core.create_namespaced_config_map(
        namespace,
        client.V1ConfigMap(
            metadata=client.V1ObjectMeta(name="owned", owner_references=[reference])
        ),
    )
    core.delete_namespaced_config_map("owner", namespace)

    def collected() -> bool:
        try:
            core.read_namespaced_config_map("owned", namespace)
        except ApiException as exc:
            return exc.status == 404
        return False

    eventually(collected, what="owned ConfigMap garbage-collected")


def test_service_account_without_permissions_is_denied(
    api_client: client.ApiClient, cluster: Cluster, namespace: str
) -> None:
    core = client.CoreV1Api(api_client)
    core.create_namespaced_service_account(
        namespace, client.V1ServiceAccount(metadata=client.V1ObjectMeta(name="nobody"))
    )
    token = core.create_namespaced_service_account_token(
        "nobody",
        namespace,
        client.AuthenticationV1TokenRequest(
            spec=client.V1TokenRequestSpec(audiences=[], expiration_seconds=600)
        ),
    ).status.token
    configuration = client.Configuration()
    configuration.host = cluster.info.server
    configuration.ssl_ca_cert = str(cluster.info.ca_file)
    configuration.api_key = {"authorization": f"Bearer {token}"}
    as_nobody = client.CoreV1Api(client.ApiClient(configuration))
    with pytest.raises(ApiException) as denied:
        as_nobody.list_namespaced_secret(namespace)
    assert denied.value.status == 403
    assert f"system:serviceaccount:{namespace}:nobody" in denied.value.body


def test_multipart_object_round_trips_with_identical_digest(
    s3: S3Info, bucket: str, tmp_path
) -> None:
    from boto3.s3.transfer import TransferConfig

    part = 5 * 1024 * 1024
    payload = os.urandom(3 * part + 12345)
    source, target = tmp_path / "up.bin", tmp_path / "down.bin"
    source.write_bytes(payload)
    transfer = TransferConfig(multipart_threshold=part, multipart_chunksize=part)
    s3_client = s3.client()
    s3_client.upload_file(str(source), bucket, "blobs/up.bin", Config=transfer)
    etag = s3_client.head_object(Bucket=bucket, Key="blobs/up.bin")["ETag"].strip('"')
    assert etag.endswith("-4"), f"expected a 4-part multipart upload, ETag {etag}"
    s3_client.download_file(bucket, "blobs/up.bin", str(target), Config=transfer)
    assert hashlib.sha256(target.read_bytes()).hexdigest() == hashlib.sha256(payload).hexdigest()
