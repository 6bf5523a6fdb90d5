"""Test doubles for the node agent's pure parts: a pod factory and in-memory Sources."""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from typing import Any


@dataclass
class FakeSources:
    """ConfigMaps and Secrets by (namespace, name); tokens name what they were issued for."""

    config_maps: dict[tuple[str, str], dict[str, bytes]] = field(default_factory=dict)
    secrets: dict[tuple[str, str], dict[str, bytes]] = field(default_factory=dict)

    def config_map(self, namespace: str, name: str) -> dict[str, bytes] | None:
        return self.config_maps.get((namespace, name))

    def secret(self, namespace: str, name: str) -> dict[str, bytes] | None:
        return self.secrets.get((namespace, name))

    def token(
        self,
        namespace: str,
        service_account: str,
        audience: str,
        seconds: int,
        pod: tuple[str, str] | None = None,
    ) -> str:
        return f"token:{namespace}:{service_account}:{audience}:{seconds}"


def make_pod(**spec: Any) -> dict[str, Any]:
    """A pod bound to the agent's node, with ``spec`` fields overriding a one-container spec."""
    pod: dict[str, Any] = {
        "metadata": {
            "name": "trainer-0",
            "namespace": "team-a",
            "uid": "0b7e5c1e-uid",
            "resourceVersion": "7",
            "labels": {"app": "trainer", "kubetune.io/run": "r1"},
            "annotations": {"note": "hello"},
        },
        "spec": {
            "nodeName": "local-agent-0",
            "serviceAccountName": "trainer",
            "restartPolicy": "Never",
            "containers": [{"name": "main", "image": "ignored", "command": ["true"]}],
        },
        "status": {
            "phase": "Pending",
            "qosClass": "BestEffort",
            "conditions": [
                {
                    "type": "PodScheduled",
                    "status": "True",
                    "lastTransitionTime": "2026-01-01T00:00:00Z",
                    "lastProbeTime": None,
                }
            ],
        },
    }
    pod["spec"].update(copy.deepcopy(spec))
    return pod
