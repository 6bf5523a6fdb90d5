"""JSON Schema -> structural schema, on small models that each exercise one translation."""

from __future__ import annotations

from typing import Annotated, Any, Literal

import pytest
from pydantic import BaseModel, Field

from kubetune.api import KubeModel, Rule
from kubetune.crd import SchemaError, structural_schema

pytestmark = pytest.mark.unit


class Inner(KubeModel):
    """Inner docstring,
    over two lines."""

    rules = (Rule(cel="self.a > 0", message="a must be positive", holds=lambda s: s.a > 0),)

    a: int = Field(1, description="A number.")


class Outer(KubeModel):
    optional_text: str | None = Field(None, max_length=5, description="Text.")
    rate: float = Field(0.5, gt=0, lt=1, description="Open interval.")
    inner: Inner = Field(
        default_factory=Inner,
        description="Field description wins.",
        json_schema_extra={"x-kubernetes-validations": [{"rule": "self == oldSelf"}]},
    )
    maybe_inner: Inner | None = Field(None, description="Optional object.")
    items: list[Inner] = Field(default_factory=list, max_length=3, description="A list.")
    labels: dict[str, str] | None = Field(None, max_length=4, description="A map.")
    quantity: Annotated[int, Field(ge=0)] | Annotated[str, Field(pattern="^[0-9]+m$")] = Field(
        1, description="Int or string."
    )
    bits: Literal[4, 8] = Field(4, description="An integer enum.")
    split: float = Field(
        0.0,
        ge=0,
        lt=0.5,
        description="Fractional bound.",
        json_schema_extra={"x-kubernetes-validations": [{"rule": "true", "message": "m"}]},
    )


OUTER = structural_schema(Outer)
PROPS = OUTER["properties"]


@pytest.mark.parametrize(
    ("prop", "expected"),
    [
        ("optionalText", {"type": "string", "maxLength": 5, "description": "Text."}),
        (
            "rate",
            {
                "type": "number",
                "default": 0.5,
                "minimum": 0,
                "exclusiveMinimum": True,
                "maximum": 1,
                "exclusiveMaximum": True,
                "description": "Open interval.",
            },
        ),
        (
            "quantity",
            {
                "x-kubernetes-int-or-string": True,
                "anyOf": [{"type": "integer"}, {"type": "string"}],
                "minimum": 0,
                "pattern": "^[0-9]+m$",
                "default": 1,
                "description": "Int or string.",
            },
        ),
        (
            "bits",
            {"type": "integer", "enum": [4, 8], "default": 4, "description": "An integer enum."},
        ),
        (
            "labels",
            {
                "type": "object",
                "additionalProperties": {"type": "string"},
                "maxProperties": 4,
                "description": "A map.",
            },
        ),
    ],
)
def test_scalar_translations(prop: str, expected: dict[str, Any]) -> None:
    assert PROPS[prop] == expected


def test_reference_is_inlined_with_both_descriptions_resolved_and_rules_merged() -> None:
    inner = PROPS["inner"]
    assert inner["type"] == "object"
    assert inner["description"] == "Field description wins."
    assert inner["default"] == {"a": 1}
    assert [r["rule"] for r in inner["x-kubernetes-validations"]] == [
        "self.a > 0",
        "self == oldSelf",
    ]
    assert inner["properties"]["a"] == {"type": "integer", "default": 1, "description": "A number."}


def test_optional_object_is_its_type_without_null() -> None:
    maybe = PROPS["maybeInner"]
    assert "anyOf" not in maybe
    assert maybe["type"] == "object"
    assert "default" not in maybe


def test_list_default_and_items() -> None:
    items = PROPS["items"]
    assert items["default"] == []
    assert items["maxItems"] == 3
    assert items["items"]["description"] == "Inner docstring, over two lines."


def test_required_and_no_closed_object_marker() -> None:
    assert "required" not in OUTER  # every field has a default
    assert "additionalProperties" not in OUTER
    assert "title" not in OUTER


class Plain(BaseModel):
    anything: dict[str, Any]


def test_free_form_map_preserves_unknown_fields() -> None:
    assert structural_schema(Plain)["properties"]["anything"] == {
        "type": "object",
        "x-kubernetes-preserve-unknown-fields": True,
    }


class BadUnion(BaseModel):
    value: int | list[int]


class BadFormat(BaseModel):
    value: bytes


class BadTuple(BaseModel):
    value: tuple[int, str]


@pytest.mark.parametrize(
    ("model", "message"),
    [
        (BadUnion, "unions other than int-or-string"),
        (BadFormat, "format 'binary'"),
        (BadTuple, "'prefixItems'"),
    ],
)
def test_inexpressible_constructs_are_errors(model: type[BaseModel], message: str) -> None:
    with pytest.raises(SchemaError, match=message):
        structural_schema(model)
