"""The operator under test, plus S3 credentials and factories for its scenarios."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from kubernetes import client

from localcluster import Cluster, S3Info
from support.operator import OperatorProcess
from support.resources import fresh_namespace, make_secret


@pytest.fixture(scope="session")
def operator(
    cluster: Cluster, kubetune_crds: list[str], s3: S3Info, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[OperatorProcess]:
    """One operator for the session's scenarios, watching the per-test namespaces (kt-*);
    tests that kill or duplicate operators run their own in namespaces outside that glob."""
    log = tmp_path_factory.mktemp("operator") / "operator.log"
    process = OperatorProcess(cluster.info.kubeconfig, log, KUBETUNE_NAMESPACES="kt-*").start()
    yield process
    process.stop()


@pytest.fixture
def s3_secret(api_client: client.ApiClient, namespace: str, s3: S3Info) -> str:
    """The S3 credentials Secret in the test namespace; its name."""
    return make_secret(api_client, namespace, s3)


@pytest.fixture
def own_namespace(api_client: client.ApiClient) -> Iterator[str]:
    """A namespace the session operator does not watch, for a test's own operators."""
    with fresh_namespace(api_client, "own") as name:
        yield name
