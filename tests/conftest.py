"""Real parts for the whole session: one local control plane and one S3 server.

They start only when a test asks for them (unit tests never do). Set KUBETUNE_TEST_STATE to
the --dir of a running ``hack/cluster up`` to reuse it instead of starting new ones, which
makes repeated local runs fast.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from kubernetes import client, config

from localcluster import Cluster, S3Info, S3Server
from support.polling import eventually
from support.resources import fresh_namespace

_MARKERS = {
    "unit": pytest.mark.unit,
    "integration": pytest.mark.integration,
    "e2e": pytest.mark.e2e,
}


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Mark every test by the folder it lives in (tests/unit, tests/integration, tests/e2e)."""
    for item in items:
        parts = Path(str(item.path)).parts
        for name, mark in _MARKERS.items():
            if name in parts:
                item.add_marker(mark)


def _state_dir() -> Path | None:
    value = os.environ.get("KUBETUNE_TEST_STATE")
    return Path(value).resolve() if value else None


@pytest.fixture(scope="session")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    """The local control plane (etcd, apiserver, controller-manager, scheduler, kwok)."""
    shared = _state_dir()
    if shared is not None:
        yield Cluster(shared / "cluster")
        return
    local = Cluster(tmp_path_factory.mktemp("cluster"))
    local.up()
    try:
        yield local
    finally:
        local.down()


@pytest.fixture(scope="session")
def s3_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[S3Server]:
    """The S3 server process (tests that simulate an outage stop and restart it)."""
    shared = _state_dir()
    if shared is not None:
        yield S3Server(shared / "s3")
        return
    server = S3Server(tmp_path_factory.mktemp("s3"))
    server.up()
    try:
        yield server
    finally:
        server.down()


@pytest.fixture(scope="session")
def s3(s3_server: S3Server) -> S3Info:
    """Endpoint and credentials of the S3 server."""
    return s3_server.info


@pytest.fixture(scope="session")
def api_client(cluster: Cluster) -> client.ApiClient:
    """A Kubernetes API client with the admin credential."""
    return config.new_client_from_config(config_file=str(cluster.info.kubeconfig))


CRDS = Path(__file__).resolve().parents[1] / "crds"
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


@pytest.fixture
def namespace(api_client: client.ApiClient) -> Iterator[str]:
    """A fresh namespace the session operator watches (``kt-*``), deleted after."""
    with fresh_namespace(api_client, "kt") as name:
        yield name


@pytest.fixture
def bucket(s3: S3Info) -> Iterator[str]:
    """A fresh, empty bucket, emptied and deleted after the test."""
    s3_client = s3.client()
    name = f"kt-{secrets.token_hex(6)}"
    s3_client.create_bucket(Bucket=name)
    yield name
    _delete_bucket(s3_client, name)


def _delete_bucket(s3_client: Any, name: str) -> None:
    paginator = s3_client.get_paginator("list_objects_v2")
    for page in paginator.paginate(Bucket=name):
        keys = [{"Key": o["Key"]} for o in page.get("Contents", [])]
        if keys:
            s3_client.delete_objects(Bucket=name, Delete={"Objects": keys})
    s3_client.delete_bucket(Bucket=name)
