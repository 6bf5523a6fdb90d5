"""The simulated nodes of the local cluster: a GPU pool and a CPU pool.

kwok manages every node labelled ``type=kwok``; a node without that label is left alone, so a
later node agent can run real processes for pods scheduled onto its own node.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

KWOK_LABEL = ("type", "kwok")
GPU_RESOURCE = "nvidia.com/gpu"
GPU_PRODUCT_LABEL = "nvidia.com/gpu.product"
POOL_LABEL = "kubetune.io/pool"


@dataclass(frozen=True)
class NodePool:
    """``count`` identical simulated nodes."""

    name: str
    count: int
    cpu: str = "64"
    memory: str = "512Gi"
    gpus: int = 0
    gpu_product: str = "NVIDIA-H100-80GB-HBM3"


DEFAULT_POOLS: tuple[NodePool, ...] = (
    NodePool("gpu", count=2, cpu="96", memory="1Ti", gpus=8),
    NodePool("cpu", count=1),
)


def build_nodes(pools: tuple[NodePool, ...] = DEFAULT_POOLS) -> list[dict[str, Any]]:
    """Node manifests with capacity in status (the apiserver keeps status on node creation)."""
    nodes = []
    for pool in pools:
        for index in range(pool.count):
            name = f"kwok-{pool.name}-{index}"
            resources = {
                "cpu": pool.cpu,
                "memory": pool.memory,
                "pods": "110",
                "ephemeral-storage": "1Ti",
            }
            labels = {
                KWOK_LABEL[0]: KWOK_LABEL[1],
                POOL_LABEL: pool.name,
                "kubernetes.io/hostname": name,
                "kubernetes.io/os": "linux",
                "kubernetes.io/arch": "amd64",
            }
            if pool.gpus:
                resources[GPU_RESOURCE] = str(pool.gpus)
                labels[GPU_PRODUCT_LABEL] = pool.gpu_product
                labels["nvidia.com/gpu.count"] = str(pool.gpus)
            nodes.append(
                {
                    "apiVersion": "v1",
                    "kind": "Node",
                    "metadata": {
                        "name": name,
                        "labels": labels,
                        "annotations": {"kwok.x-k8s.io/node": "fake"},
                    },
                    "status": {"capacity": resources, "allocatable": dict(resources)},
                }
            )
    return nodes
