"""examples/argocd: the waves put the CRDs before the custom resources, every path and
value the Applications name exists and is valid, and the suspend action survives selfHeal."""

from __future__ import annotations

import fnmatch
from pathlib import Path
from typing import Any

import pytest
import yaml

from support.helm import KUBE_VERSION, helm

pytestmark = pytest.mark.unit

REPO = Path(__file__).resolve().parents[3]
EXAMPLES = REPO / "examples" / "argocd"
WAVE = "argocd.argoproj.io/sync-wave"


def load(path: Path) -> dict[str, Any]:
    return yaml.safe_load(path.read_text())


def wave(obj: dict[str, Any]) -> int:
    return int(obj["metadata"].get("annotations", {}).get(WAVE, "0"))


def children() -> list[dict[str, Any]]:
    """What the root Application syncs."""
    root = load(EXAMPLES / "root.yaml")
    return [load(p) for p in sorted((REPO / root["spec"]["source"]["path"]).glob("*.yaml"))]


def applications() -> dict[str, dict[str, Any]]:
    return {o["metadata"]["name"]: o for o in children() if o["kind"] == "Application"}


def synced_files(app: dict[str, Any]) -> list[Path]:
    """The files a directory Application applies (its include pattern, brace alternatives)."""
    source = app["spec"]["source"]
    include = source.get("directory", {}).get("include", "*.yaml")
    patterns = include.strip("{}").split(",")
    directory = REPO / source["path"]
    return [
        p for p in sorted(directory.iterdir()) if any(fnmatch.fnmatch(p.name, g) for g in patterns)
    ]


def test_crds_sync_before_custom_resources() -> None:
    apps = applications()
    chart = [a for a in apps.values() if a["spec"]["source"]["path"] == "helm/kubetune"]
    workloads = [a for a in apps.values() if "directory" in a["spec"]["source"]]
    assert len(chart) == 1
    assert workloads
    for app in workloads:
        kinds = {load(p)["kind"] for p in synced_files(app)}
        assert kinds == {"FineTuneJob", "InferenceDeployment"}
        assert wave(chart[0]) < wave(app)


def test_watched_namespaces_exist_before_the_chart_grants_roles_in_them() -> None:
    (chart,) = [a for a in applications().values() if a["metadata"]["name"] == "kubetune"]
    created = {o["metadata"]["name"]: wave(o) for o in children() if o["kind"] == "Namespace"}
    for namespace in chart["spec"]["source"]["helm"]["valuesObject"]["watchNamespaces"]:
        assert created[namespace] < wave(chart)


def test_chart_values_are_valid(tmp_path: Path) -> None:
    (chart,) = [a for a in applications().values() if a["metadata"]["name"] == "kubetune"]
    values = tmp_path / "values.yaml"
    values.write_text(yaml.safe_dump(chart["spec"]["source"]["helm"]["valuesObject"]))
    rendered = helm(
        "template", "kubetune", str(REPO / chart["spec"]["source"]["path"]),
        "--namespace", chart["spec"]["destination"]["namespace"],
        "--kube-version", KUBE_VERSION, "-f", str(values),
    ).stdout  # fmt: skip
    roles = [d for d in yaml.safe_load_all(rendered) if d and d["kind"] == "Role"]
    assert {r["metadata"]["namespace"] for r in roles} == {"ml-team", "kubetune-system"}


def test_suspend_is_not_reverted_by_self_heal() -> None:
    (team,) = [a for a in applications().values() if "directory" in a["spec"]["source"]]
    assert {
        "group": "kubetune.io",
        "kind": "FineTuneJob",
        "jsonPointers": ["/spec/suspend"],
    } in team["spec"]["ignoreDifferences"]
    assert "RespectIgnoreDifferences=true" in team["spec"]["syncPolicy"]["syncOptions"]


def test_every_application_points_into_this_repository() -> None:
    for app in [load(EXAMPLES / "root.yaml"), *applications().values()]:
        assert (REPO / app["spec"]["source"]["path"]).is_dir()
        assert app["metadata"]["namespace"] == "argocd"
