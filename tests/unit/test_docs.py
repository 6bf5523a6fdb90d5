"""The user docs say what the code does: links resolve, and every field, condition, reason
and setting the code defines is written down in the guide of its kind.

The API models and the modules that set conditions are the source; the docs are checked
against them, so adding a spec field, a status field or a failure reason without documenting
it fails here instead of drifting silently.
"""

from __future__ import annotations

import ast
import re
import types
import typing
from pathlib import Path

import pytest
from pydantic import BaseModel

from kubetune.api import (
    Adapter,
    AdapterConditionType,
    AdapterPhase,
    AdapterSpec,
    AdapterStatus,
    Condition,
    FineTuneJob,
    FineTuneJobConditionType,
    FineTuneJobPhase,
    FineTuneJobSpec,
    FineTuneJobStatus,
    InferenceDeployment,
    InferenceDeploymentConditionType,
    InferenceDeploymentPhase,
    InferenceDeploymentSpec,
    InferenceDeploymentStatus,
    KubeObject,
    Reason,
)
from kubetune.crd.columns import PRINTER_COLUMNS

ROOT = Path(__file__).resolve().parents[2]
DOCS = sorted((ROOT / "docs").glob("*.md"))
PAGES = [ROOT / "README.md", ROOT / "helm/kubetune/README.md", *DOCS]
OPERATOR = ROOT / "operator/kubetune"
TRAINER = ROOT / "trainer_image/kubetune_trainer"

# What each kind's guide must cover, and the modules whose reasons that kind can report.
GUIDES: dict[type[KubeObject], tuple[str, list[Path]]] = {
    FineTuneJob: (
        "docs/finetunejob.md",
        [
            OPERATOR / "failures.py",
            OPERATOR / "lifecycle.py",
            OPERATOR / "controllers/finetunejob.py",
            *sorted(TRAINER.rglob("*.py")),
        ],
    ),
    Adapter: (
        "docs/adapter.md",
        [OPERATOR / "controllers/adapter.py", OPERATOR / "storage/s3.py"],
    ),
    InferenceDeployment: (
        "docs/inferencedeployment.md",
        [
            OPERATOR / "controllers/inferencedeployment.py",
            *sorted((OPERATOR / "rollout").glob("*.py")),
        ],
    ),
}
PARTS = {
    FineTuneJob: (FineTuneJobSpec, FineTuneJobStatus, FineTuneJobConditionType, FineTuneJobPhase),
    Adapter: (AdapterSpec, AdapterStatus, AdapterConditionType, AdapterPhase),
    InferenceDeployment: (
        InferenceDeploymentSpec,
        InferenceDeploymentStatus,
        InferenceDeploymentConditionType,
        InferenceDeploymentPhase,
    ),
}

_LINK = re.compile(r"(?<!!)\[[^\]]*\]\(([^)\s]+)(?:\s+\"[^\"]*\")?\)|!\[[^\]]*\]\(([^)\s]+)\)")
_FENCE = re.compile(r"^(```|~~~).*?^\1", re.MULTILINE | re.DOTALL)
_HEADING = re.compile(r"^#{1,6}\s+(.+?)\s*#*\s*$", re.MULTILINE)


# -- helpers (pure, and tested below so that the checks themselves can fail) --------------


def links(markdown: str) -> list[str]:
    """Link and image targets outside code blocks."""
    text = _FENCE.sub("", markdown)
    return [m.group(1) or m.group(2) for m in _LINK.finditer(text)]


def slug(heading: str) -> str:
    """GitHub's anchor for a heading: lowercase, punctuation dropped, spaces to hyphens."""
    text = re.sub(r"`|\*\*|__", "", heading).strip().lower()
    text = re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", text)
    return re.sub(r"[^\w\- ]", "", text).replace(" ", "-")


def anchors(markdown: str) -> set[str]:
    """Every anchor a page's headings define, numbered as GitHub numbers repeats."""
    seen: dict[str, int] = {}
    found = set()
    for heading in _HEADING.findall(_FENCE.sub("", markdown)):
        base = slug(heading)
        count = seen.get(base, 0)
        seen[base] = count + 1
        found.add(base if count == 0 else f"{base}-{count}")
    return found


def broken_links(page: Path) -> list[str]:
    """Relative links of ``page`` whose file (or heading anchor) does not exist."""
    broken = []
    for target in links(page.read_text()):
        if re.match(r"^[a-z][a-z0-9+.-]*:", target):  # https:, mailto:, ...
            continue
        path, _, anchor = target.partition("#")
        file = (page.parent / path).resolve() if path else page
        missing_anchor = bool(anchor) and file.suffix == ".md" and file.exists()
        if not file.exists() or (missing_anchor and anchor not in anchors(file.read_text())):
            broken.append(target)
    return broken


def _models(annotation: object) -> list[type[BaseModel]]:
    """The pydantic models inside a field's type (through Optional, list, dict, Annotated)."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return [annotation]
    origin = typing.get_origin(annotation)
    if origin is typing.Annotated:
        return _models(typing.get_args(annotation)[0])
    if origin in (typing.Union, types.UnionType, list, dict, tuple):
        return [m for arg in typing.get_args(annotation) for m in _models(arg)]
    return []


def field_paths(model: type[BaseModel], prefix: str = "") -> list[str]:
    """Dotted camelCase paths of every field, nested models included; a condition's own
    fields are the standard metav1.Condition and are not repeated per kind."""
    paths = []
    for name, info in model.model_fields.items():
        path = f"{prefix}{info.alias or name}"
        paths.append(path)
        for nested in _models(info.annotation):
            if nested is not Condition:
                paths.extend(field_paths(nested, f"{path}."))
    return paths


def reasons_used(files: list[Path]) -> set[str]:
    """Values of every ``Reason.X`` the modules report: every reference except those that
    only test a reason (``exc.reason == Reason.NOT_FOUND``)."""
    used = set()
    for file in files:
        tree = ast.parse(file.read_text())
        tested = {
            id(operand)
            for node in ast.walk(tree)
            if isinstance(node, ast.Compare)
            for operand in (node.left, *node.comparators)
        }
        for node in ast.walk(tree):
            if (
                isinstance(node, ast.Attribute)
                and isinstance(node.value, ast.Name)
                and node.value.id == "Reason"
                and id(node) not in tested
            ):
                used.add(Reason[node.attr].value)
    return used


def mentioned(text: str, code: str) -> bool:
    """Whether ``code`` appears in backticks, alone or after ``spec.``."""
    return f"`{code}`" in text or f"`spec.{code}`" in text


def _guide(kind: type[KubeObject]) -> str:
    return (ROOT / GUIDES[kind][0]).read_text()


# -- the docs ------------------------------------------------------------------------------


@pytest.mark.parametrize("page", PAGES, ids=lambda p: str(p.relative_to(ROOT)))
def test_relative_links_resolve(page: Path) -> None:
    assert broken_links(page) == []


def test_every_doc_is_linked_from_the_readme() -> None:
    readme = set(links((ROOT / "README.md").read_text()))
    unlinked = [d.name for d in DOCS if f"docs/{d.name}" not in {t.split("#")[0] for t in readme}]
    assert unlinked == []


def test_every_example_is_in_the_readme() -> None:
    readme = (ROOT / "README.md").read_text()
    examples = [
        f"examples/{p.name}/" if p.is_dir() else f"examples/{p.name}"
        for p in sorted((ROOT / "examples").iterdir())
    ]
    assert [e for e in examples if f"`{e}`" not in readme] == []


@pytest.mark.parametrize("kind", list(GUIDES), ids=lambda k: k.__name__)
def test_every_spec_and_status_field_is_in_its_guide(kind: type[KubeObject]) -> None:
    spec, status, _, _ = PARTS[kind]
    text = _guide(kind)
    missing = [p for p in field_paths(spec) if not mentioned(text, p)]
    missing += [f"status.{p}" for p in field_paths(status) if not mentioned(text, f"status.{p}")]
    assert missing == [], f"document these fields in {GUIDES[kind][0]}"


@pytest.mark.parametrize("kind", list(GUIDES), ids=lambda k: k.__name__)
def test_every_reason_the_kind_reports_is_in_its_guide(kind: type[KubeObject]) -> None:
    path, sources = GUIDES[kind]
    text = _guide(kind)
    assert sorted(r for r in reasons_used(sources) if not mentioned(text, r)) == [], path


@pytest.mark.parametrize("kind", list(GUIDES), ids=lambda k: k.__name__)
def test_every_condition_type_and_phase_is_in_its_guide(kind: type[KubeObject]) -> None:
    _, _, conditions, phases = PARTS[kind]
    text = _guide(kind)
    assert [c.value for c in conditions if not mentioned(text, c.value)] == []
    assert [p.value for p in phases if not mentioned(text, p.value)] == []


def test_permanent_failures_are_the_trainers() -> None:
    """The guide's list of failures that are not retried is the trainer's."""
    from kubetune_trainer.errors import PERMANENT

    paragraph = re.search(r"Permanent failures \(([^)]*)\)", _guide(FineTuneJob))
    assert paragraph is not None
    assert set(re.findall(r"`(\w+)`", paragraph.group(1))) == {r.value for r in PERMANENT}


def test_every_reason_is_documented_somewhere() -> None:
    text = "".join(p.read_text() for p in DOCS)
    assert [r.value for r in Reason if not mentioned(text, r.value)] == []


@pytest.mark.parametrize("kind", list(GUIDES), ids=lambda k: k.__name__)
def test_guide_shows_the_printer_columns(kind: type[KubeObject]) -> None:
    """The guide's sample `kubectl get` output has the columns the CRD really prints."""
    header = ["NAME"] + [c["name"].upper() for c in PRINTER_COLUMNS[kind] if "priority" not in c]
    pattern = r"\s+".join(re.escape(h) for h in header)
    assert re.search(pattern, _guide(kind)), " ".join(header)


def test_every_operator_setting_is_documented() -> None:
    """Every KUBETUNE_* variable the operator reads appears in the docs or the chart README."""
    settings = (OPERATOR / "settings.py").read_text() + (OPERATOR / "cli.py").read_text()
    names = set(re.findall(r'(?<![.\w])get\("([A-Z_]+)"\)', settings))  # get() adds KUBETUNE_
    names |= {n.removeprefix("KUBETUNE_") for n in re.findall(r'"(KUBETUNE_[A-Z_]+)"', settings)}
    text = "".join(p.read_text() for p in PAGES)
    assert sorted(n for n in names if f"KUBETUNE_{n}" not in text) == []


# -- the checks can fail -------------------------------------------------------------------


def test_a_broken_link_and_a_missing_anchor_are_found(tmp_path: Path) -> None:
    (tmp_path / "other.md").write_text("# Other page\n\n## The `spec` fields\n")
    page = tmp_path / "page.md"
    page.write_text(
        "[ok](other.md) [ok](other.md#the-spec-fields) [web](https://example.com/x)\n"
        "[gone](missing.md) [bad](other.md#nowhere) [self](#top)\n"
        "```\n[not a link](inside-code.md)\n```\n"
    )
    assert broken_links(page) == ["missing.md", "other.md#nowhere", "#top"]


def test_repeated_headings_get_numbered_anchors() -> None:
    assert anchors("## Fields\n## Fields\n### What *to* do?\n") == {
        "fields",
        "fields-1",
        "what-to-do",
    }


def test_an_undocumented_field_is_found() -> None:
    class Inner(BaseModel):
        new_knob: int = 0

    class Spec(BaseModel):
        inner: Inner | None = None
        items: list[Inner] = []

    paths = field_paths(Spec)
    assert paths == ["inner", "inner.new_knob", "items", "items.new_knob"]
    assert not mentioned("`inner` `items`", "inner.new_knob")
    assert mentioned("`spec.inner.new_knob`", "inner.new_knob")


def test_reasons_are_read_from_the_code(tmp_path: Path) -> None:
    module = tmp_path / "m.py"
    module.write_text(
        "def f(exc):\n"
        "    if exc.reason == Reason.NOT_FOUND:\n"
        "        return None\n"
        "    return Reason.OUT_OF_MEMORY, Reason.NAN_LOSS\n"
    )
    assert reasons_used([module]) == {"OutOfMemory", "NaNLoss"}
