"""Real runs under faults: a node agent that trains for real, a tiny model, an S3 gate.

Tests that stop S3 use ``private_s3``, an S3 server of this package's own: the session's
shared server serves every other test and is never stopped. The control plane is shared
(nothing here restarts it); each test runs its own operator in its own namespace.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from pathlib import Path

import pytest
from kubernetes import client

from localcluster import Cluster, S3Info, S3Server, processes
from support.agent import Agent, node_ready, start_agent
from support.polling import eventually
from support.s3gate import S3Gate
from support.tinymodel import build_tiny_model


@pytest.fixture(scope="package")
def agent(
    cluster: Cluster, api_client: client.ApiClient, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Agent]:
    root = tmp_path_factory.mktemp("agent")
    # Progress every second (the trainer's default is 10 s), so that tests see every step.
    running = start_agent(
        cluster,
        root,
        f"local-agent-r{secrets.token_hex(3)}",
        HF_HUB_OFFLINE="1",
        KUBETUNE_PROGRESS_INTERVAL="1",
    )
    try:
        eventually(
            lambda: node_ready(client.CoreV1Api(api_client), running.node), what="agent node"
        )
        yield running
    finally:
        processes.stop(running.pid, running.started)
        client.CoreV1Api(api_client).delete_node(running.node)


@pytest.fixture(scope="package")
def tiny_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_tiny_model(tmp_path_factory.mktemp("tiny") / "model")


@pytest.fixture(scope="package")
def private_s3(tmp_path_factory: pytest.TempPathFactory) -> Iterator[S3Server]:
    """An S3 server these tests may stop and start."""
    server = S3Server(tmp_path_factory.mktemp("private-s3"))
    server.up()
    try:
        yield server
    finally:
        server.down()


@pytest.fixture
def private_bucket(private_s3: S3Server) -> str:
    name = f"rel-{secrets.token_hex(6)}"
    private_s3.info.client().create_bucket(Bucket=name)
    return name  # the server's data goes with it at the end of the package


def gate_in_front_of(s3: S3Info) -> S3Gate:
    return S3Gate(int(s3.endpoint.rsplit(":", 1)[1]))


@pytest.fixture
def run_namespace(api_client: client.ApiClient) -> Iterator[str]:
    """A namespace of the test's own (outside the session operator's ``kt-*``)."""
    core = client.CoreV1Api(api_client)
    name = f"rel-{secrets.token_hex(4)}"
    core.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name=name)))
    eventually(lambda: core.read_namespaced_service_account("default", name))
    yield name
    core.delete_namespace(name)
