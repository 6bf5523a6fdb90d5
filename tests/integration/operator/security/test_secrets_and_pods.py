"""Secrets stay references, pods hold no credentials they do not need, namespaces stay apart.

One whole lifecycle (validation, training, Adapter, InferenceDeployment) runs in a namespace
that enforces the Pod Security "restricted" profile, with a random canary as the Hugging Face
token and the S3 server's random secret key in the credentials Secret. Afterwards neither
value, nor its base64 form, may appear anywhere the operator writes or logs.
"""

from __future__ import annotations

import base64
import json
import secrets
from typing import Any

import pytest
from kubernetes import client

from localcluster import S3Info
from support.factories import s3_finetunejob
from support.operator import OperatorProcess
from support.polling import eventually
from support.resources import GROUP, VERSION, conditions, create, get, phase_is, status_of
from support.trainerside import finish_training, pass_validation

RESTRICTED = "pod-security.kubernetes.io/enforce"
KINDS = ("finetunejobs", "adapters", "inferencedeployments")


def _secret(api: client.ApiClient, namespace: str, name: str, data: dict[str, str]) -> None:
    client.CoreV1Api(api).create_namespaced_secret(
        namespace, client.V1Secret(metadata=client.V1ObjectMeta(name=name), string_data=data)
    )


def _serving(name: str, adapter: str, s3: S3Info) -> dict[str, Any]:
    return {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": "InferenceDeployment",
        "metadata": {"name": name},
        "spec": {
            "baseModel": {
                "name": "kubetune/tiny-llama",
                "tokenSecretRef": {"name": "hf-token", "key": "token"},
            },
            "runtime": {"type": "kubetune"},
            "resources": {"gpus": 0, "cpu": "100m", "memory": "256Mi"},
            "adapters": [{"name": "support-bot", "adapterRef": adapter}],
        },
    }


def _everything_written(
    api: client.ApiClient, namespace: str, operator: OperatorProcess
) -> dict[str, str]:
    """Where a leaked value could land, as text: objects, events, logs, metrics."""
    core, batch, apps = client.CoreV1Api(api), client.BatchV1Api(api), client.AppsV1Api(api)
    custom = client.CustomObjectsApi(api)
    dump = api.sanitize_for_serialization
    return {
        "operator log": operator.log.read_text(errors="replace"),
        "operator metrics": operator.metrics(),
        "events": json.dumps(dump(core.list_namespaced_event(namespace))),
        "config maps": json.dumps(dump(core.list_namespaced_config_map(namespace))),
        "jobs": json.dumps(dump(batch.list_namespaced_job(namespace))),
        "pods": json.dumps(dump(core.list_namespaced_pod(namespace))),
        "deployments": json.dumps(dump(apps.list_namespaced_deployment(namespace))),
        "services": json.dumps(dump(core.list_namespaced_service(namespace))),
        **{
            plural: json.dumps(
                custom.list_namespaced_custom_object(GROUP, VERSION, namespace, plural)
            )
            for plural in KINDS
        },
    }


def _assert_locked_down(pod: client.V1Pod) -> None:
    spec = pod.spec
    assert spec.automount_service_account_token is False, pod.metadata.name
    assert spec.security_context.run_as_non_root is True
    assert spec.security_context.seccomp_profile.type == "RuntimeDefault"
    projected = [v.name for v in spec.volumes or [] if v.projected is not None]
    assert not projected, f"{pod.metadata.name} mounts a projected (token) volume: {projected}"
    for container in [*(spec.init_containers or []), *spec.containers]:
        context = container.security_context
        assert context.allow_privilege_escalation is False
        assert context.capabilities.drop == ["ALL"]
        assert context.read_only_root_filesystem is True
        assert not any("serviceaccount" in m.mount_path for m in container.volume_mounts or [])
        for env in container.env or []:
            if any(word in env.name for word in ("SECRET", "TOKEN", "ACCESS_KEY")):
                assert env.value is None, f"{container.name}: {env.name} is a literal"
                assert env.value_from.secret_key_ref is not None


def _pods(api: client.ApiClient, namespace: str, selector: str) -> list[client.V1Pod]:
    return client.CoreV1Api(api).list_namespaced_pod(namespace, label_selector=selector).items


def test_a_whole_lifecycle_leaks_no_secret_and_passes_restricted_pod_security(
    api_client: client.ApiClient,
    namespace: str,
    operator: OperatorProcess,
    s3: S3Info,
    bucket: str,
    s3_secret: str,
) -> None:
    core = client.CoreV1Api(api_client)
    core.patch_namespace(namespace, {"metadata": {"labels": {RESTRICTED: "restricted"}}})
    canary = "canary-" + secrets.token_urlsafe(24)
    _secret(api_client, namespace, "hf-token", {"token": canary})
    leaks = [canary, s3.secret_key]
    leaks += [base64.b64encode(value.encode()).decode() for value in leaks]

    job = s3_finetunejob("support-bot", bucket, s3.endpoint)
    job["spec"]["baseModel"]["tokenSecretRef"] = {"name": "hf-token", "key": "token"}
    create(api_client, namespace, "finetunejobs", job)
    pass_validation(api_client, namespace, "support-bot")
    finish_training(api_client, s3.client(), namespace, "support-bot")
    eventually(lambda: phase_is(api_client, namespace, "support-bot", "Succeeded"))
    adapter = eventually(
        lambda: status_of(api_client, namespace, "finetunejobs", "support-bot").get("adapterRef")
    )
    eventually(
        lambda: status_of(api_client, namespace, "adapters", adapter).get("phase") == "Ready",
        what="Adapter Ready",
    )
    create(api_client, namespace, "inferencedeployments", _serving("support", adapter, s3))
    serving = eventually(
        lambda: _pods(api_client, namespace, "kubetune.io/inferencedeployment=support"),
        what="serving pods admitted",
    )

    # The real apiserver admitted every pod under "restricted"; each is locked down.
    trained = _pods(api_client, namespace, "kubetune.io/finetunejob=support-bot")
    names = {p.metadata.name.rsplit("-", 1)[0] for p in trained}
    assert names == {"support-bot-validate", "support-bot-train"}
    for pod in [*trained, *serving]:
        _assert_locked_down(pod)

    written = _everything_written(api_client, namespace, operator)
    # The search covers where the values would be: pods name their Secrets, by reference.
    assert '"name": "hf-token"' in written["pods"]
    assert '"name": "s3-creds"' in written["jobs"]
    found = {where for where, text in written.items() for value in leaks if value in text}
    assert not found, f"a secret value was found in: {sorted(found)}"


def test_restricted_is_enforced_in_the_namespace(
    api_client: client.ApiClient, namespace: str
) -> None:
    """The control for the test above: the label does make the apiserver refuse a pod."""
    core = client.CoreV1Api(api_client)
    core.patch_namespace(namespace, {"metadata": {"labels": {RESTRICTED: "restricted"}}})
    pod = client.V1Pod(
        metadata=client.V1ObjectMeta(name="default-context"),
        spec=client.V1PodSpec(containers=[client.V1Container(name="c", image="x:1")]),
    )
    with pytest.raises(client.ApiException) as denied:
        core.create_namespaced_pod(namespace, pod, dry_run="All")
    assert denied.value.status == 403
    assert "violates PodSecurity" in denied.value.body


def test_secret_references_cannot_name_another_namespace(
    api_client: client.ApiClient,
    namespace: str,
    own_namespace: str,
    operator: OperatorProcess,
    s3: S3Info,
    bucket: str,
) -> None:
    # The credentials exist, but only in another namespace.
    _secret(
        api_client,
        own_namespace,
        "s3-creds",
        {"AWS_ACCESS_KEY_ID": s3.access_key, "AWS_SECRET_ACCESS_KEY": s3.secret_key},
    )
    elsewhere = {"name": "s3-creds", "namespace": own_namespace}
    job = s3_finetunejob("reach", bucket, s3.endpoint)
    job["spec"]["output"]["credentialsSecretRef"] = elsewhere

    with pytest.raises(client.ApiException) as strict:
        client.CustomObjectsApi(api_client).create_namespaced_custom_object(
            GROUP, VERSION, namespace, "finetunejobs", job, field_validation="Strict"
        )
    assert strict.value.status in (400, 422)
    message = json.loads(strict.value.body)["message"]
    assert 'unknown field "spec.output.credentialsSecretRef.namespace"' in message

    create(api_client, namespace, "finetunejobs", job)  # the default: pruned, with a warning
    stored = get(api_client, namespace, "finetunejobs", "reach")
    assert stored["spec"]["output"]["credentialsSecretRef"] == {"name": "s3-creds"}
    status = eventually(lambda: phase_is(api_client, namespace, "reach", "Failed"))
    failed = conditions(status)["Failed"]
    assert failed["reason"] == "SecretNotFound"
    assert "s3-creds" in failed["message"]
    assert not client.BatchV1Api(api_client).list_namespaced_job(namespace).items
