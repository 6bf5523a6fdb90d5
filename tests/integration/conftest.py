"""Fixtures for tests against the real apiserver with the generated kubetune CRDs."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from kubernetes import client

from support.resources import fresh_namespace


@pytest.fixture(scope="module")
def shared_namespace(api_client: client.ApiClient) -> Iterator[str]:
    """One namespace for a module's many create calls whose objects never clash by name."""
    with fresh_namespace(api_client, "kt-crd") as name:
        yield name
