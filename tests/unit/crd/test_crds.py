"""The generated CRDs: structural, bounded for CEL cost, carrying the rules, and in sync
with crds/ (the staleness check CI runs)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from kubetune.api import KINDS, Adapter, FineTuneJob, InferenceDeployment, KubeObject
from kubetune.crd import build_crd, diff_all, render_all, write_all
from kubetune.crd.__main__ import DEFAULT_DIRS, main

pytestmark = pytest.mark.unit

REPO = Path(__file__).resolve().parents[3]
CRDS = {kind: build_crd(kind) for kind in KINDS}


def root(kind: type[KubeObject]) -> dict[str, Any]:
    return CRDS[kind]["spec"]["versions"][0]["schema"]["openAPIV3Schema"]


def walk(node: dict[str, Any], path: str = "") -> Iterator[tuple[str, dict[str, Any]]]:
    """Every schema node with its path (``.spec.lora``, ``.spec.adapters[]``)."""
    yield path, node
    for name, sub in node.get("properties", {}).items():
        yield from walk(sub, f"{path}.{name}")
    if "items" in node:
        yield from walk(node["items"], f"{path}[]")
    if isinstance(node.get("additionalProperties"), dict):
        yield from walk(node["additionalProperties"], f"{path}{{}}")


def lookup(node: dict[str, Any], path: str) -> dict[str, Any]:
    """The schema node at a JSONPath-like ``path`` relative to ``node``."""
    for name in path.strip(".").split("."):
        node = node["properties"][name]
    return node


def structural_problems(path: str, node: dict[str, Any]) -> list[str]:
    problems = [
        f"keyword {k}"
        for k in {"$ref", "$defs", "allOf", "oneOf", "not", "const", "title"} & node.keys()
    ]
    if node.get("x-kubernetes-int-or-string"):
        if "type" in node or node["anyOf"] != [{"type": "integer"}, {"type": "string"}]:
            problems.append("malformed int-or-string")
    elif "anyOf" in node or node.get("type") not in {
        "object",
        "array",
        "string",
        "integer",
        "number",
        "boolean",
    }:
        problems.append("no single type")
    is_object = node.get("type") == "object" and path != ".metadata"
    if is_object and not {"properties", "additionalProperties"} & node.keys():
        problems.append("object without properties")
    if node.get("type") == "array" and "items" not in node:
        problems.append("array without items")
    if any(node.get(b, True) is not True for b in ("exclusiveMinimum", "exclusiveMaximum")):
        problems.append("numeric exclusive bound")
    if "x-kubernetes-preserve-unknown-fields" in node:
        problems.append("preserves unknown fields")
    is_field = path not in ("", ".metadata") and not path.endswith(("[]", "{}"))
    if is_field and not node.get("description"):
        problems.append("no description")
    return problems


def cost_problems(path: str, node: dict[str, Any]) -> list[str]:
    """CEL cost is estimated from declared sizes; an unbounded spec value makes the
    apiserver reject rules over it."""
    if not path.startswith(".spec"):
        return []
    problems = []
    is_string = node.get("type") == "string" or node.get("x-kubernetes-int-or-string")
    if is_string and not {"maxLength", "enum"} & node.keys():
        problems.append("string without maxLength")
    if node.get("type") == "array" and "maxItems" not in node:
        problems.append("array without maxItems")
    if "additionalProperties" in node and "maxProperties" not in node:
        problems.append("map without maxProperties")
    return problems


def rule_problems(path: str, node: dict[str, Any]) -> list[str]:
    problems = []
    for rule in node.get("x-kubernetes-validations", []):
        if not rule.get("rule") or not rule.get("message"):
            problems.append(f"rule without rule or message: {rule}")
        if not set(rule) <= {"rule", "message", "fieldPath", "reason"}:
            problems.append(f"unknown keys in {rule}")
        if "fieldPath" in rule:
            try:
                lookup(node, rule["fieldPath"])
            except KeyError:
                problems.append(f"fieldPath {rule['fieldPath']} does not resolve")
        if "oldSelf" in rule["rule"] and path.endswith("[]"):
            problems.append("transition rule inside a list")
    return problems


@pytest.mark.parametrize("check", [structural_problems, cost_problems, rule_problems])
@pytest.mark.parametrize("kind", KINDS, ids=lambda k: k.__name__)
def test_schema_nodes(kind: type[KubeObject], check: Any) -> None:
    found = [f"{path or '.'}: {p}" for path, node in walk(root(kind)) for p in check(path, node)]
    assert found == []


@pytest.mark.parametrize(
    ("node", "check", "problem"),
    [
        ({"anyOf": [{"type": "string"}, {"type": "null"}]}, structural_problems, "no single type"),
        ({"type": "object", "description": "x"}, structural_problems, "object without properties"),
        ({"type": "string", "description": "x"}, cost_problems, "string without maxLength"),
        ({"type": "array", "items": {}}, cost_problems, "array without maxItems"),
        (
            {
                "type": "object",
                "x-kubernetes-validations": [{"rule": "x", "message": "m", "fieldPath": ".nope"}],
                "properties": {},
            },
            rule_problems,
            "fieldPath .nope does not resolve",
        ),
    ],
)
def test_schema_checks_catch_problems(node: dict[str, Any], check: Any, problem: str) -> None:
    assert problem in " ".join(check(".spec.x", node))


@pytest.mark.parametrize(
    ("kind", "path", "rule"),
    [
        (FineTuneJob, ".spec", "self.method != 'lora' || !has(self.quantization)"),
        (FineTuneJob, ".spec", "self.method != 'qlora' || self.resources.gpus >= 1"),
        (FineTuneJob, ".spec", "has(self.quantization) == has(oldSelf.quantization)"),
        (FineTuneJob, ".spec.quantization", "!has(self.type) || self.bits == 4"),
        (FineTuneJob, ".spec.training", "!(has(self.epochs) && has(self.maxSteps))"),
        (FineTuneJob, ".spec.dataset", "!has(self.evalUri) || self.validationSplit == 0.0"),
        (FineTuneJob, ".spec.lora", "size(self.targetModules) == 1"),
        (InferenceDeployment, ".spec.rollout", "self.steps.map(s, s.weight).isSorted()"),
        (InferenceDeployment, ".spec.adapters[]", "has(self.adapterRef) != has(self.selector)"),
        *(
            (FineTuneJob, f".spec.{field}", "self == oldSelf")
            for field in (
                "baseModel",
                "dataset",
                "method",
                "lora",
                "quantization",
                "training",
                "output",
                "adapter",
            )
        ),
        (Adapter, ".spec", "self == oldSelf"),
    ],
)
def test_cel_rules_are_attached(kind: type[KubeObject], path: str, rule: str) -> None:
    node = dict(walk(root(kind)))[path]
    assert any(rule in r["rule"] for r in node["x-kubernetes-validations"])


@pytest.mark.parametrize("kind", KINDS, ids=lambda k: k.__name__)
def test_names_and_subresources(kind: type[KubeObject]) -> None:
    spec = CRDS[kind]["spec"]
    assert CRDS[kind]["metadata"]["name"] == f"{kind.plural}.kubetune.io"
    assert spec["names"]["categories"] == ["kubetune"]
    assert spec["names"]["shortNames"] == list(kind.short_names)
    assert spec["scope"] == "Namespaced"
    (version,) = spec["versions"]
    assert version["subresources"]["status"] == {}
    assert root(kind)["required"] == ["spec"]
    assert root(kind)["properties"]["metadata"] == {"type": "object"}


def test_inference_deployment_scales() -> None:
    scale = CRDS[InferenceDeployment]["spec"]["versions"][0]["subresources"]["scale"]
    for key in ("specReplicasPath", "statusReplicasPath", "labelSelectorPath"):
        lookup(root(InferenceDeployment), scale[key])


@pytest.mark.parametrize(
    ("kind", "columns"),
    [
        (FineTuneJob, ["Phase", "Progress", "Loss", "Eval Loss", "Adapter", "Base", "Age"]),
        (Adapter, ["Phase", "Base", "Size", "Eval Loss", "Age"]),
        (InferenceDeployment, ["Phase", "Stable", "Canary", "Weight", "Ready", "Age"]),
    ],
)
def test_printer_columns_point_at_fields(kind: type[KubeObject], columns: list[str]) -> None:
    printed = CRDS[kind]["spec"]["versions"][0]["additionalPrinterColumns"]
    assert [c["name"] for c in printed] == columns
    for column in printed:
        if column["jsonPath"] != ".metadata.creationTimestamp":
            field = lookup(root(kind), column["jsonPath"])
            assert field["type"] == column["type"]


@pytest.mark.parametrize("directory", DEFAULT_DIRS, ids=str)
def test_crds_directory_is_up_to_date(directory: Path) -> None:
    """The staleness check, for crds/ and the Helm chart's copy: fails when a model changed
    and `generate` was not run, or when a CRD was edited by hand."""
    assert diff_all(REPO / directory) == "", "run: python -m kubetune.crd generate"


def test_generate_writes_and_checks_every_copy(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(tmp_path)
    assert main(["generate"]) == 0
    for directory in DEFAULT_DIRS:
        assert diff_all(directory) == ""
    chart_copy = DEFAULT_DIRS[1] / "adapters.kubetune.io.yaml"
    chart_copy.write_text(chart_copy.read_text() + "# edited\n")
    assert main(["generate", "--check"]) == 1
    assert f"{DEFAULT_DIRS[1]} is stale" in capsys.readouterr().err


def test_rendered_yaml_loads_back_to_the_manifests() -> None:
    rendered = render_all()
    assert {yaml.safe_load(text)["metadata"]["name"] for text in rendered.values()} == {
        CRDS[k]["metadata"]["name"] for k in KINDS
    }
    for kind in KINDS:
        assert yaml.safe_load(rendered[f"{kind.plural}.kubetune.io.yaml"]) == CRDS[kind]


@pytest.mark.parametrize(
    ("damage", "expected"),
    [
        ("edit", "+  group: kubetune.io"),
        ("delete", "/dev/null"),
        ("extra", "old.kubetune.io.yaml"),
    ],
)
def test_check_fails_with_a_diff_when_stale(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], damage: str, expected: str
) -> None:
    write_all(tmp_path)
    assert main(["generate", "--check", "--dir", str(tmp_path)]) == 0
    victim = tmp_path / "adapters.kubetune.io.yaml"
    if damage == "edit":
        victim.write_text(victim.read_text().replace("group: kubetune.io", "group: other.io"))
    elif damage == "delete":
        victim.unlink()
    else:
        (tmp_path / "old.kubetune.io.yaml").write_text("kind: CustomResourceDefinition\n")
    assert main(["generate", "--check", "--dir", str(tmp_path)]) == 1
    out, err = capsys.readouterr()
    assert expected in out
    assert "stale" in err
    assert main(["generate", "--dir", str(tmp_path)]) == 0
    assert main(["generate", "--check", "--dir", str(tmp_path)]) == 0
