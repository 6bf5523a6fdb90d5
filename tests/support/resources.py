"""Short helpers to create and read kubetune objects in tests."""

from __future__ import annotations

import base64
import secrets
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from kubernetes import client

from localcluster import S3Info
from support.polling import eventually

GROUP, VERSION = "kubetune.io", "v1alpha1"


def new_namespace(api: client.ApiClient, prefix: str, labels: dict[str, str] | None = None) -> str:
    """A new namespace ``<prefix>-<random>``, ready for pods (its default ServiceAccount
    exists). The session operator watches ``kt-*``; other prefixes are for a test's own."""
    core = client.CoreV1Api(api)
    name = f"{prefix}-{secrets.token_hex(4)}"
    core.create_namespace(
        client.V1Namespace(metadata=client.V1ObjectMeta(name=name, labels=labels))
    )
    eventually(
        lambda: core.read_namespaced_service_account("default", name),
        what=f"default ServiceAccount in {name}",
    )
    return name


@contextmanager
def fresh_namespace(api: client.ApiClient, prefix: str) -> Iterator[str]:
    """:func:`new_namespace`, deleted afterwards."""
    name = new_namespace(api, prefix)
    try:
        yield name
    finally:
        client.CoreV1Api(api).delete_namespace(name)


def create(api: client.ApiClient, namespace: str, plural: str, body: dict[str, Any]) -> None:
    client.CustomObjectsApi(api).create_namespaced_custom_object(
        GROUP, VERSION, namespace, plural, body
    )


def get(api: client.ApiClient, namespace: str, plural: str, name: str) -> dict[str, Any]:
    return client.CustomObjectsApi(api).get_namespaced_custom_object(
        GROUP, VERSION, namespace, plural, name
    )


def patch_spec(
    api: client.ApiClient, namespace: str, plural: str, name: str, spec: dict[str, Any]
) -> None:
    client.CustomObjectsApi(api).patch_namespaced_custom_object(
        GROUP, VERSION, namespace, plural, name, {"spec": spec}
    )


def status_of(api: client.ApiClient, namespace: str, plural: str, name: str) -> dict[str, Any]:
    return get(api, namespace, plural, name).get("status") or {}


def phase_is(api: client.ApiClient, namespace: str, name: str, phase: str) -> dict[str, Any] | None:
    """The FineTuneJob's status once it is in ``phase``, else None (for ``eventually``)."""
    status = status_of(api, namespace, "finetunejobs", name)
    return status if status.get("phase") == phase else None


def conditions(status: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {c["type"]: c for c in status.get("conditions") or []}


def read_job(api: client.ApiClient, namespace: str, name: str) -> client.V1Job:
    return client.BatchV1Api(api).read_namespaced_job(name, namespace)


def validation_summary() -> dict[str, Any]:
    """What the trainer's ``validate`` leaves in its termination message for valid data."""
    return {
        "phase": "Validated",
        "reason": "DatasetValid",
        "message": "",
        "dataset": {"sha256": "b" * 64, "format": "chat", "records": 90, "evalRecords": 10},
    }


def make_secret(api: client.ApiClient, namespace: str, s3: S3Info) -> str:
    """A Secret with the S3 credentials, as users create it; its name."""
    data = {"AWS_ACCESS_KEY_ID": s3.access_key, "AWS_SECRET_ACCESS_KEY": s3.secret_key}
    client.CoreV1Api(api).create_namespaced_secret(
        namespace,
        client.V1Secret(
            metadata=client.V1ObjectMeta(name="s3-creds"),
            data={k: base64.b64encode(v.encode()).decode() for k, v in data.items()},
        ),
    )
    return "s3-creds"
