import dataclasses

import pytest

from localcluster.tools import TOOLS, tool_key


def test_every_tool_has_a_pinned_consumer_module() -> None:
    for tool in TOOLS.values():
        go_mod = (tool.module_dir / "go.mod").read_text()
        assert (tool.module_dir / "go.sum").stat().st_size > 0
        for package in tool.packages:
            assert f"\t{package}\n" in go_mod or f"tool {package}\n" in go_mod, package


def test_kubernetes_staging_modules_are_all_replaced_by_published_versions() -> None:
    go_mod = (TOOLS["kubernetes"].module_dir / "go.mod").read_text()
    assert "k8s.io/kubernetes v1.37.2" in go_mod
    replaced = [line for line in go_mod.splitlines() if "=>" in line]
    assert len(replaced) >= 30
    assert all(line.strip().endswith("v0.37.2") for line in replaced)


@pytest.mark.parametrize(
    "change",
    [
        {"packages": ("example.com/other",)},
        {"ldflags": ("-X main.version=2",)},
    ],
)
def test_cache_key_changes_with_what_is_built(change: dict) -> None:
    tool = TOOLS["kwok"]
    assert tool_key(tool, "go1.26.8") != tool_key(dataclasses.replace(tool, **change), "go1.26.8")


def test_cache_key_changes_with_go_version_and_is_stable() -> None:
    tool = TOOLS["etcd"]
    assert tool_key(tool, "go1.26.8") == tool_key(tool, "go1.26.8")
    assert tool_key(tool, "go1.26.8") != tool_key(tool, "go1.27.3")
    assert tool_key(tool, "go1.26.8").startswith("etcd-")


def test_binaries_are_named_as_users_expect() -> None:
    assert TOOLS["etcd"].binaries == ("server",)
    assert TOOLS["kubernetes"].binaries == (
        "kube-apiserver",
        "kube-controller-manager",
        "kube-scheduler",
        "kubectl",
    )
