import pytest

from localcluster.nodes import GPU_RESOURCE, KWOK_LABEL, NodePool, build_nodes


def test_default_pools_give_two_eight_gpu_nodes_and_a_cpu_node() -> None:
    nodes = {n["metadata"]["name"]: n for n in build_nodes()}
    assert sorted(nodes) == ["kwok-cpu-0", "kwok-gpu-0", "kwok-gpu-1"]
    assert nodes["kwok-gpu-1"]["status"]["allocatable"][GPU_RESOURCE] == "8"
    assert GPU_RESOURCE not in nodes["kwok-cpu-0"]["status"]["capacity"]


@pytest.mark.parametrize("pool", [NodePool("a", count=1, gpus=2), NodePool("b", count=3)])
def test_every_node_is_managed_by_kwok_and_capacity_equals_allocatable(pool: NodePool) -> None:
    nodes = build_nodes((pool,))
    assert len(nodes) == pool.count
    for node in nodes:
        assert node["metadata"]["labels"][KWOK_LABEL[0]] == KWOK_LABEL[1]
        assert node["status"]["capacity"] == node["status"]["allocatable"]
        assert node["status"]["capacity"] is not node["status"]["allocatable"]
