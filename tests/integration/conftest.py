"""Fixtures for tests against the real apiserver with the generated kubetune CRDs."""

from __future__ import annotations

import secrets
from collections.abc import Iterator

import pytest
from kubernetes import client


@pytest.fixture(scope="module")
def shared_namespace(api_client: client.ApiClient) -> Iterator[str]:
    """One namespace for a module's many create calls whose objects never clash by name."""
    core = client.CoreV1Api(api_client)
    name = f"kt-crd-{secrets.token_hex(4)}"
    core.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name=name)))
    yield name
    core.delete_namespace(name)
