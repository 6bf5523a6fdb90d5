"""Adapter deletion: Retain or Delete the artifact, and never while it is being served."""

from __future__ import annotations

from typing import Any

import pytest
from kubernetes import client

from kubetune import artifacts
from localcluster import S3Info
from support.polling import eventually
from support.resources import GROUP, VERSION, create, make_secret, status_of
from support.trainerside import publish_artifact

pytestmark = pytest.mark.usefixtures("operator")
FILES = {"adapter_config.json": b"{}", "adapter_model.safetensors": b"\x05" * 64}


def _adapter(name: str, uri: str, digest: str, s3: S3Info, **spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": "Adapter",
        "metadata": {"name": name},
        "spec": {
            "baseModel": {"name": "kubetune/tiny-llama"},
            "uri": uri,
            "digest": digest,
            "endpoint": s3.endpoint,
            "credentialsSecretRef": {"name": "s3-creds"},
            **spec,
        },
    }


def _ready_adapter(
    api: client.ApiClient, namespace: str, s3: S3Info, bucket: str, **spec: Any
) -> str:
    uri, digest = publish_artifact(s3.client(), f"s3://{bucket}/adapters/", "run1", FILES)
    create(api, namespace, "adapters", _adapter("bot-v1", uri, digest, s3, **spec))
    eventually(
        lambda: status_of(api, namespace, "adapters", "bot-v1").get("phase") == "Ready",
        what="Ready",
    )
    return uri


def _keys(s3: S3Info, bucket: str) -> set[str]:
    return {o["Key"] for o in s3.client().list_objects_v2(Bucket=bucket).get("Contents", [])}


def _delete(api: client.ApiClient, namespace: str, plural: str, name: str) -> None:
    client.CustomObjectsApi(api).delete_namespaced_custom_object(
        GROUP, VERSION, namespace, plural, name
    )


def _gone(api: client.ApiClient, namespace: str, plural: str, name: str) -> bool:
    try:
        client.CustomObjectsApi(api).get_namespaced_custom_object(
            GROUP, VERSION, namespace, plural, name
        )
    except client.ApiException as exc:
        return exc.status == 404
    return False


@pytest.mark.parametrize("policy", ["Retain", "Delete"])
def test_deletion_policy(
    api_client: client.ApiClient,
    namespace: str,
    s3: S3Info,
    bucket: str,
    s3_secret: str,
    policy: str,
) -> None:
    s3.client().put_object(Bucket=bucket, Key="adapters/unrelated.txt", Body=b"keep me")
    uri = _ready_adapter(api_client, namespace, s3, bucket, deletionPolicy=policy)
    artifact_keys = {
        artifacts.join(uri, p).removeprefix(f"s3://{bucket}/") for p in [*FILES, "manifest.json"]
    }
    assert artifact_keys <= _keys(s3, bucket)

    _delete(api_client, namespace, "adapters", "bot-v1")
    eventually(lambda: _gone(api_client, namespace, "adapters", "bot-v1"), what="Adapter deleted")
    remaining = _keys(s3, bucket)
    assert "adapters/unrelated.txt" in remaining
    if policy == "Retain":
        assert artifact_keys <= remaining
    else:
        assert not artifact_keys & remaining


def test_delete_policy_waits_for_its_secret_and_says_why(
    api_client: client.ApiClient, namespace: str, s3: S3Info, bucket: str, s3_secret: str
) -> None:
    uri = _ready_adapter(api_client, namespace, s3, bucket, deletionPolicy="Delete")
    core = client.CoreV1Api(api_client)
    core.delete_namespaced_secret(s3_secret, namespace)
    _delete(api_client, namespace, "adapters", "bot-v1")

    def refused() -> list[str]:
        events = core.list_namespaced_event(
            namespace, field_selector="involvedObject.name=bot-v1"
        ).items
        return [e.message for e in events if e.reason == "SecretNotFound" and e.type == "Warning"]

    message = eventually(refused, what="a SecretNotFound event")[0]
    assert "deletion waits" in message
    assert s3_secret in message
    assert "kubetune.io/cleanup" in message
    assert not _gone(api_client, namespace, "adapters", "bot-v1")
    manifest = artifacts.join(uri, "manifest.json").removeprefix(f"s3://{bucket}/")
    assert manifest in _keys(s3, bucket)  # nothing deleted without the credentials

    make_secret(api_client, namespace, s3)
    eventually(
        lambda: _gone(api_client, namespace, "adapters", "bot-v1"),
        timeout=60,
        what="deleted once its Secret is back",
    )
    assert manifest not in _keys(s3, bucket)


def test_an_adapter_in_service_cannot_be_deleted(
    api_client: client.ApiClient, namespace: str, s3: S3Info, bucket: str, s3_secret: str
) -> None:
    _ready_adapter(api_client, namespace, s3, bucket)
    serving = {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": "InferenceDeployment",
        "metadata": {"name": "support"},
        "spec": {
            "baseModel": {"name": "kubetune/tiny-llama"},
            "runtime": {"type": "kubetune"},
            "adapters": [{"name": "bot", "adapterRef": "bot-v1"}],
        },
    }
    create(api_client, namespace, "inferencedeployments", serving)
    _delete(api_client, namespace, "adapters", "bot-v1")

    def refused() -> bool:
        events = (
            client.CoreV1Api(api_client)
            .list_namespaced_event(namespace, field_selector="involvedObject.name=bot-v1")
            .items
        )
        return any(e.reason == "InUse" and "support" in e.message for e in events)

    eventually(refused, what="an InUse event")
    assert not _gone(api_client, namespace, "adapters", "bot-v1")

    _delete(api_client, namespace, "inferencedeployments", "support")
    eventually(
        lambda: _gone(api_client, namespace, "adapters", "bot-v1"),
        timeout=60,
        what="deleted once nothing serves it",
    )
