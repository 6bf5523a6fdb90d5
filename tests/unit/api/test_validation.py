"""The models accept every valid object and reject every invalid one, naming the field.

The tables live in support.apiobjects; tests/integration/test_crds.py runs the same ones
against the apiserver.
"""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import ValidationError

from kubetune.api import Adapter, FineTuneJob, InferenceDeployment, KubeObject
from support.apiobjects import INVALID, VALID, Invalid, Valid, example

pytestmark = pytest.mark.unit

KIND: dict[str, type[KubeObject]] = {
    "FineTuneJob": FineTuneJob,
    "Adapter": Adapter,
    "InferenceDeployment": InferenceDeployment,
}


def k8s_path(loc: tuple[int | str, ...]) -> str:
    """A pydantic error location written as the apiserver writes field paths."""
    path = ""
    for part in loc:
        path += f"[{part}]" if isinstance(part, int) else f".{part}"
    return path.lstrip(".")


def errors(exc: ValidationError) -> list[str]:
    return [f"{k8s_path(e['loc'])}: {e['msg']}" for e in exc.errors()]


@pytest.mark.parametrize("case", VALID, ids=lambda c: c.id)
def test_valid_objects_are_accepted(case: Valid) -> None:
    KIND[case.kind].model_validate(case.object())


@pytest.mark.parametrize("case", INVALID, ids=lambda c: c.id)
def test_invalid_objects_are_rejected_naming_the_field(case: Invalid) -> None:
    with pytest.raises(ValidationError) as caught:
        KIND[case.kind].model_validate(case.object())
    found = errors(caught.value)
    assert any(case.field in line for line in found), found


def test_case_ids_are_unique() -> None:
    ids = [c.id for c in (*VALID, *INVALID)]
    assert len(ids) == len(set(ids))


@pytest.mark.parametrize(
    ("kind", "wire"),
    [
        ("FineTuneJob", {"apiVersion": "kubetune.io/v1", "kind": "FineTuneJob"}),
        ("FineTuneJob", {"apiVersion": "kubetune.io/v1alpha1", "kind": "Adapter"}),
    ],
)
def test_foreign_api_version_or_kind_is_rejected(kind: str, wire: dict[str, Any]) -> None:
    with pytest.raises(ValidationError):
        KIND[kind].model_validate({**example(kind), **wire})


@pytest.mark.parametrize(
    ("model", "value", "message"),
    [
        (FineTuneJob, {"spec.lora.targetModules": ["a", "b", "a"]}, "duplicated: a"),
        (InferenceDeployment, {"spec.adapters.1.name": "support-bot"}, "duplicated: support-bot"),
    ],
)
def test_duplicates_are_named(model: type[KubeObject], value: dict[str, Any], message: str) -> None:
    from support.apiobjects import with_changes

    with pytest.raises(ValidationError, match=message):
        model.model_validate(with_changes(example(model.__name__), value))
