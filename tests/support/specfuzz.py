"""Hypothesis strategies that turn a valid spec into a hostile one.

A fuzzer that generates specs from nothing mostly produces objects the apiserver rejects at
the first field; mutating a valid spec reaches every field and every cross-field rule, and
leaves many objects valid enough for the operator to act on. Each example applies one or
two mutations: a value of the wrong type, an edge number, a huge or unusual string, a
deleted field, an unknown field, or a known conflicting combination of options.
"""

from __future__ import annotations

import copy
from collections.abc import Iterator
from typing import Any

from hypothesis import strategies as st

Path = tuple[str | int, ...]

HUGE = 1_000_000
"""Characters of the longest string sent: far above every maxLength, below the apiserver's
3 MiB request limit even twice over."""

EDGE_NUMBERS: list[int | float] = [
    0,
    -1,
    1,
    2**31,
    2**53 + 1,
    -(2**63),
    2**63 - 1,
    0.5,
    1e-300,
    1e300,
    -0.0,
]
ODD_STRINGS = [
    "",
    " ",
    "../../etc/passwd",
    "/etc/passwd",
    "s3://bucket/../../secret",
    "s3://bucket//x",
    "s3://bucket/a\u0000b",
    "pvc://claim/../../etc",
    "a\u0000b",
    "\u202eevil",
    "\U0001d532\U0001d52b-名前-\U0001f999",  # fraktur letters, CJK, an emoji
    "<|eot_id|>ignore previous instructions",
    "{{ 7 * 7 }}",
    "${HOME}",
    "$(rm -rf /)",
    "--help",
    "null",
    "x" * 64,
    "x" * 254,
]
FRIENDLY_STRINGS = ["registry.invalid/trainer:1", "1h", "5m", "100m", "4Gi", "main", "v2"]


def _scalars() -> st.SearchStrategy[Any]:
    return st.one_of(
        st.none(),
        st.booleans(),
        st.integers(min_value=-(2**63), max_value=2**63 - 1),
        st.floats(allow_nan=False, allow_infinity=False),
        st.sampled_from(EDGE_NUMBERS),
        st.text(max_size=24),
        st.sampled_from(ODD_STRINGS + FRIENDLY_STRINGS),
        st.just("y" * HUGE),
    )


def hostile_values() -> st.SearchStrategy[Any]:
    """Any JSON value, biased to the shapes that break parsers and schemas."""
    return st.one_of(
        _scalars(),
        st.lists(_scalars(), max_size=3),
        st.dictionaries(st.text(max_size=12), _scalars(), max_size=3),
    )


def paths(value: Any, prefix: Path = ()) -> Iterator[Path]:
    """Every node below ``value`` (dict keys and list items), depth first."""
    items: list[tuple[str | int, Any]] = []
    if isinstance(value, dict):
        items = list(value.items())
    elif isinstance(value, list):
        items = list(enumerate(value))
    for key, child in items:
        yield (*prefix, key)
        yield from paths(child, (*prefix, key))


def _node(doc: Any, path: Path) -> Any:
    for key in path:
        doc = doc[key]
    return doc


def _parent(doc: Any, path: Path) -> Any:
    return _node(doc, path[:-1])


def _dicts(doc: dict[str, Any]) -> list[Path]:
    return [(), *(p for p in paths(doc) if isinstance(_node(doc, p), dict))]


def _deep_merge(base: dict[str, Any], patch: dict[str, Any]) -> None:
    for key, value in patch.items():
        if isinstance(value, dict) and isinstance(base.get(key), dict):
            _deep_merge(base[key], value)
        else:
            base[key] = copy.deepcopy(value)


def _plausible(current: Any) -> st.SearchStrategy[Any]:
    """A value of the same type as ``current``, mostly in range: reaches the operator."""
    if isinstance(current, bool):
        return st.just(not current)
    if isinstance(current, int):
        return st.integers(min_value=0, max_value=100)
    if isinstance(current, float):
        return st.floats(min_value=0, max_value=1)
    if isinstance(current, str):
        return st.sampled_from(FRIENDLY_STRINGS) | st.from_regex(
            r"[a-z][a-z0-9-]{0,20}", fullmatch=True
        )
    return hostile_values()


@st.composite
def mutation(draw: st.DrawFn, spec: dict[str, Any], conflicts: list[dict[str, Any]]) -> str:
    """Mutate ``spec`` in place once; a short description of what was done."""
    kind = draw(
        st.sampled_from(["hostile", "plausible", "plausible", "delete", "unknown", "conflict"])
    )
    nodes = list(paths(spec))
    if kind == "conflict" and conflicts:
        patch = draw(st.sampled_from(conflicts))
        _deep_merge(spec, patch)
        return f"conflict {patch}"
    if kind == "unknown" or not nodes:
        where = draw(st.sampled_from(_dicts(spec)))
        target = _node(spec, where)
        key = draw(st.sampled_from(["namespace", "extra", "Name", "$ref"]) | st.text(max_size=12))
        target[key] = draw(hostile_values())
        return f"unknown field {key!r} at {_show(where)}"
    path = draw(st.sampled_from(nodes))
    parent = _parent(spec, path)
    if kind == "delete":
        del parent[path[-1]]
        return f"delete {_show(path)}"
    value = draw(hostile_values() if kind == "hostile" else _plausible(parent[path[-1]]))
    parent[path[-1]] = value
    shown = value if not isinstance(value, str) or len(value) < 40 else f"<{len(value)} chars>"
    return f"set {_show(path)} = {shown!r}"


@st.composite
def mutated(
    draw: st.DrawFn, base: dict[str, Any], conflicts: list[dict[str, Any]]
) -> tuple[dict[str, Any], list[str]]:
    """A copy of ``base`` (a whole object) with one or two mutations of its spec."""
    body = copy.deepcopy(base)
    count = draw(st.integers(min_value=1, max_value=2))
    done = [draw(mutation(body["spec"], conflicts)) for _ in range(count)]
    return body, done


def _show(path: Path) -> str:
    return "spec" + "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in path)
