"""Fixtures for tests against the real apiserver with the generated kubetune CRDs."""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml
from kubernetes import client
from support.polling import eventually

CRDS = Path(__file__).resolve().parents[2] / "crds"
FIELD_MANAGER = "kubetune-tests"


def _established(ext: client.ApiextensionsV1Api, name: str) -> bool:
    conditions = ext.read_custom_resource_definition(name).status.conditions or []
    return any(c.type == "Established" and c.status == "True" for c in conditions)


@pytest.fixture(scope="session")
def kubetune_crds(api_client: client.ApiClient) -> list[str]:
    """Every CRD in crds/, server-side applied and Established; their names.

    Fails rather than skips when crds/ is empty: tests that need the CRDs must not pass
    vacuously.
    """
    ext = client.ApiextensionsV1Api(api_client)
    manifests = [yaml.safe_load(p.read_text()) for p in sorted(CRDS.glob("*.kubetune.io.yaml"))]
    assert len(manifests) == 3, (
        f"expected three CRDs in {CRDS}; run python -m kubetune.crd generate"
    )
    for manifest in manifests:
        ext.patch_custom_resource_definition(
            manifest["metadata"]["name"],
            manifest,
            field_manager=FIELD_MANAGER,
            force=True,
            _content_type="application/apply-patch+yaml",
        )
    names = [m["metadata"]["name"] for m in manifests]
    for name in names:
        eventually(lambda name=name: _established(ext, name), what=f"CRD {name} Established")
    return names


@pytest.fixture(scope="module")
def shared_namespace(api_client: client.ApiClient) -> Iterator[str]:
    """One namespace for a module's many create calls whose objects never clash by name."""
    core = client.CoreV1Api(api_client)
    name = f"kt-crd-{secrets.token_hex(4)}"
    core.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name=name)))
    yield name
    core.delete_namespace(name)
