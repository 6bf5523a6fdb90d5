"""A node agent process for tests: pods scheduled onto its node run as local processes."""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from kubernetes import client

import localcluster
from localcluster import Cluster, processes
from localcluster.nodeagent import AGENT_TAINT
from localcluster.nodeagent_pods import pod_dir

TAINT_KEY = AGENT_TAINT["key"]


@dataclass
class Agent:
    """A running node agent: its node, its directory and its process."""

    node: str
    root: Path
    pid: int
    started: int

    def pod_dir(self, pod: client.V1Pod) -> Path:
        meta = pod.metadata
        return pod_dir(
            self.root,
            {"metadata": {"namespace": meta.namespace, "name": meta.name, "uid": meta.uid}},
        )

    def spec(self, *containers: dict[str, Any], **fields: Any) -> dict[str, Any]:
        """A pod spec that lands on this agent's node through the scheduler."""
        return {
            "nodeSelector": {"kubernetes.io/hostname": self.node},
            "tolerations": [{"key": TAINT_KEY, "operator": "Exists", "effect": "NoSchedule"}],
            "terminationGracePeriodSeconds": 5,
            "containers": list(containers),
            **fields,
        }


def start_agent(cluster: Cluster, root: Path, node: str, **env: str) -> Agent:
    """An agent whose pods run this Python environment's commands (kubetune-train, ...)."""
    hack = Path(localcluster.__file__).resolve().parents[1]
    pythonpath = os.pathsep.join(filter(None, [str(hack), os.environ.get("PYTHONPATH")]))
    path = os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "")])
    argv = [sys.executable, "-m", "localcluster.nodeagent"]
    argv += ["--kubeconfig", str(cluster.info.kubeconfig), "--dir", str(root), "--node", node]
    pid, started = processes.spawn(
        argv, log=root / "agent.log", env={"PYTHONPATH": pythonpath, "PATH": path, **env}
    )
    return Agent(node=node, root=root, pid=pid, started=started)


def node_ready(core: client.CoreV1Api, name: str) -> bool:
    """Ready, and the node controller has lifted its not-ready taint (pods can schedule)."""
    node = core.read_node(name)
    ready = any(c.type == "Ready" and c.status == "True" for c in node.status.conditions or [])
    return ready and all(t.key != "node.kubernetes.io/not-ready" for t in node.spec.taints or [])
