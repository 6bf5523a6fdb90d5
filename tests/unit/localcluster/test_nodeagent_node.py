"""The node agent's Node and the environment its containers inherit."""

from __future__ import annotations

from pathlib import Path

from localcluster.nodeagent import (
    AGENT_TAINT,
    AgentSettings,
    build_node,
    build_node_status,
    inherited_env,
)
from localcluster.nodes import GPU_RESOURCE, KWOK_LABEL, POOL_LABEL

SETTINGS = AgentSettings(root=Path("/agent"), cpu="4", memory="8Gi")


def test_node_is_tainted_in_the_local_pool_and_not_managed_by_kwok() -> None:
    node = build_node(SETTINGS)
    labels = node["metadata"]["labels"]
    assert node["metadata"]["name"] == "local-agent-0"
    assert labels[POOL_LABEL] == "local"
    assert labels["kubernetes.io/hostname"] == "local-agent-0"
    assert KWOK_LABEL[0] not in labels
    assert node["spec"]["taints"] == [
        {"key": "kubetune.io/local-agent", "value": "true", "effect": "NoSchedule"}
    ]
    assert AGENT_TAINT in node["spec"]["taints"]


def test_node_status_advertises_one_gpu_and_a_ready_heartbeat() -> None:
    status = build_node_status(SETTINGS, ready_since="T0", heartbeat="T1")["status"]
    assert status["capacity"] == {"cpu": "4", "memory": "8Gi", "pods": "110", GPU_RESOURCE: "1"}
    assert status["allocatable"] == status["capacity"]
    ready = next(c for c in status["conditions"] if c["type"] == "Ready")
    assert (ready["status"], ready["lastHeartbeatTime"], ready["lastTransitionTime"]) == (
        "True",
        "T1",
        "T0",
    )
    assert {"type": "InternalIP", "address": "127.0.0.1"} in status["addresses"]


def test_containers_do_not_inherit_the_agents_credentials() -> None:
    environ = {
        "PATH": "/venv/bin:/usr/bin",
        "HOME": "/root",
        "HF_HOME": "/cache/hf",
        "KUBECONFIG": "/admin.kubeconfig",
        "AWS_SECRET_ACCESS_KEY": "admin",
        "KUBERNETES_SERVICE_HOST": "10.0.0.1",
    }
    assert inherited_env(environ) == {
        "PATH": "/venv/bin:/usr/bin",
        "HOME": "/root",
        "HF_HOME": "/cache/hf",
    }
