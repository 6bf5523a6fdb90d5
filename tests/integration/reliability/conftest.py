"""Fault injection against real parts.

Tests here kill the operator, restart the apiserver or stop S3. A test that restarts a
component gets a control plane or an S3 server of its own (``private_cluster``,
``private_s3``): the session's shared ones serve every other test and are never touched.
Killing the operator needs nothing private: each test runs its own operator in a namespace
the session operator does not watch.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml
from kubernetes import client, config

from localcluster import Cluster, S3Server
from support.polling import eventually
from support.resources import fresh_namespace


@pytest.fixture
def chaos_namespace(api_client: client.ApiClient) -> Iterator[str]:
    with fresh_namespace(api_client, "rel") as name:
        yield name


@pytest.fixture(scope="module")
def private_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    """A control plane of the module's own, for tests that restart its components."""
    own = Cluster(tmp_path_factory.mktemp("private-cluster"))
    own.up()
    try:
        yield own
    finally:
        own.down()


@pytest.fixture(scope="module")
def private_api(private_cluster: Cluster) -> client.ApiClient:
    return config.new_client_from_config(config_file=str(private_cluster.info.kubeconfig))


@pytest.fixture(scope="module")
def private_s3(tmp_path_factory: pytest.TempPathFactory) -> Iterator[S3Server]:
    """An S3 server of the module's own, for tests that stop it."""
    server = S3Server(Path(tmp_path_factory.mktemp("private-s3")))
    server.up()
    try:
        yield server
    finally:
        server.down()


CRDS = Path(__file__).resolve().parents[3] / "crds"


def install_crds(api: client.ApiClient) -> None:
    """The generated kubetune CRDs, applied and Established, on a private control plane."""
    ext = client.ApiextensionsV1Api(api)
    manifests = [yaml.safe_load(p.read_text()) for p in sorted(CRDS.glob("*.kubetune.io.yaml"))]
    assert len(manifests) == 3, f"expected three CRDs in {CRDS}"
    for manifest in manifests:
        ext.create_custom_resource_definition(manifest)
    for manifest in manifests:
        name = manifest["metadata"]["name"]
        eventually(
            lambda name=name: any(
                c.type == "Established" and c.status == "True"
                for c in ext.read_custom_resource_definition(name).status.conditions or []
            ),
            what=f"CRD {name} Established",
        )
