"""Adapters that must not become Ready say why, in their status, instead of a traceback.

A manifest is data from a bucket that anyone with write access to it can shape: file names
that climb out of the adapter's prefix (``../``, absolute paths) are refused before a byte
is read, as are a credentials Secret that does not exist and an S3 endpoint that does not
answer (that one is a wait, not a verdict).
"""

from __future__ import annotations

import base64
import hashlib
import json
from typing import Any

from kubernetes import client

from kubetune import artifacts
from localcluster import S3Info
from support.operator import OperatorProcess
from support.polling import eventually
from support.resources import GROUP, VERSION, conditions, create, status_of
from support.trainerside import publish_artifact

ESCAPES = {
    "parent": "../x",
    "absolute": "/etc/passwd",
    "climbing": "a/../../b",
    "sibling-run": "../../other-run/adapter/adapter_model.safetensors",
}


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


def _raw_manifest(s3: S3Info, bucket: str, prefix: str, path: str) -> str:
    """A manifest listing ``path`` as the trainer never would; its digest."""
    data = b"\x01" * 16
    s3.client().put_object(Bucket=bucket, Key=f"{prefix}other-run/adapter/weights", Body=data)
    manifest = {
        "version": 1,
        "run_id": "r",
        "base_model": {"name": "kubetune/tiny-llama", "revision": "main"},
        "lora": {"r": 8},
        "files": [{"path": path, "sha256": hashlib.sha256(data).hexdigest(), "size": 16}],
        "trainer_version": "0.1.0",
        "created_at": "2026-11-29T00:00:00Z",
    }
    body = json.dumps(manifest).encode()
    s3.client().put_object(Bucket=bucket, Key=f"{prefix}manifest.json", Body=body)
    return artifacts.digest(body)


def _verdict(api: client.ApiClient, namespace: str, name: str, phase: str) -> dict[str, Any]:
    return eventually(
        lambda: (s := status_of(api, namespace, "adapters", name)).get("phase") == phase and s,
        what=f"Adapter {name} {phase}",
    )


def test_manifest_paths_outside_the_prefix_are_refused(
    api_client: client.ApiClient,
    namespace: str,
    operator: OperatorProcess,
    s3: S3Info,
    bucket: str,
    s3_secret: str,
) -> None:
    for name, path in ESCAPES.items():
        prefix = f"adapters/{name}/"
        digest = _raw_manifest(s3, bucket, prefix, path)
        create(
            api_client,
            namespace,
            "adapters",
            _adapter(name, f"s3://{bucket}/{prefix}", digest, s3),
        )
    for name, path in ESCAPES.items():
        ready = conditions(_verdict(api_client, namespace, name, "Failed"))["Ready"]
        assert (ready["status"], ready["reason"]) == ("False", "ManifestInvalid")
        assert repr(path) in ready["message"]
        assert "inside the prefix" in ready["message"] or "relative" in ready["message"]


def test_a_missing_secret_and_an_unreachable_store_are_reported(
    api_client: client.ApiClient,
    namespace: str,
    operator: OperatorProcess,
    s3: S3Info,
    bucket: str,
    s3_secret: str,
) -> None:
    uri, digest = publish_artifact(
        s3.client(), f"s3://{bucket}/adapters/", "run1", {"adapter_config.json": b"{}"}
    )
    create(
        api_client,
        namespace,
        "adapters",
        _adapter("no-secret", uri, digest, s3, credentialsSecretRef={"name": "absent"}),
    )
    create(
        api_client,
        namespace,
        "adapters",
        _adapter("no-store", uri, digest, s3, endpoint="http://127.0.0.1:9"),
    )

    ready = conditions(_verdict(api_client, namespace, "no-secret", "Failed"))["Ready"]
    assert (ready["status"], ready["reason"]) == ("False", "SecretNotFound")
    assert "'absent'" in ready["message"]

    waiting = conditions(_verdict(api_client, namespace, "no-store", "Verifying"))
    assert (waiting["Verified"]["status"], waiting["Verified"]["reason"]) == (
        "Unknown",
        "S3Unavailable",
    )


def test_a_secret_that_is_not_text_is_a_refusal_not_a_crash(
    api_client: client.ApiClient,
    namespace: str,
    operator: OperatorProcess,
    s3: S3Info,
    bucket: str,
) -> None:
    binary = base64.b64encode(b"\xff\xfe\x00 not utf-8").decode()
    client.CoreV1Api(api_client).create_namespaced_secret(
        namespace,
        client.V1Secret(
            metadata=client.V1ObjectMeta(name="s3-creds"),
            data={"AWS_ACCESS_KEY_ID": binary, "AWS_SECRET_ACCESS_KEY": binary},
        ),
    )
    uri, digest = publish_artifact(
        s3.client(), f"s3://{bucket}/adapters/", "run1", {"adapter_config.json": b"{}"}
    )
    create(api_client, namespace, "adapters", _adapter("binary", uri, digest, s3))

    ready = conditions(_verdict(api_client, namespace, "binary", "Failed"))["Ready"]
    assert (ready["status"], ready["reason"]) == ("False", "AccessDenied")
