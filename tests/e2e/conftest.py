"""Real runs: a node agent that trains for real, a tiny model, a namespace per test.

The control plane is the session's; each test runs its own operator in its own namespace,
outside the session operator's ``kt-*``.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from pathlib import Path

import pytest
from kubernetes import client

from localcluster import Cluster, processes
from support.agent import Agent, node_ready, start_agent
from support.polling import eventually
from support.resources import fresh_namespace
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


@pytest.fixture
def run_namespace(api_client: client.ApiClient) -> Iterator[str]:
    """A namespace of the test's own (outside the session operator's ``kt-*``)."""
    with fresh_namespace(api_client, "e2e") as name:
        yield name
