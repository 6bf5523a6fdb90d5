"""Turn a pydantic model's JSON schema into a structural OpenAPI v3 schema.

The apiserver accepts only structural schemas: every node has a type, there are no
references, and unions exist only as the int-or-string special case. Pydantic emits JSON
Schema 2020-12 with ``$defs``/``$ref``, ``anyOf`` with ``null`` for optional fields and
numeric ``exclusiveMinimum``. This module inlines, collapses and translates; anything it does
not know how to express is an error rather than a silently looser schema.
"""

from typing import Any

from pydantic import BaseModel
from pydantic.json_schema import GenerateJsonSchema, NoDefault
from pydantic_core import core_schema

VALIDATIONS = "x-kubernetes-validations"
INT_OR_STRING = "x-kubernetes-int-or-string"
PRESERVE_UNKNOWN = "x-kubernetes-preserve-unknown-fields"

# Keywords copied as they are; each one means the same in OpenAPI v3 as in JSON Schema.
_KEPT = frozenset(
    {
        "type",
        "enum",
        "required",
        "minLength",
        "maxLength",
        "pattern",
        "minItems",
        "maxItems",
        "minProperties",
        "maxProperties",
        "x-kubernetes-list-type",
        "x-kubernetes-list-map-keys",
    }
)
_DROPPED = frozenset({"title"})
_FORMATS = frozenset({"date-time"})
# JSON Schema bound keyword -> (OpenAPI v3 keyword, exclusive, CEL operator, wording).
_BOUNDS = {
    "minimum": ("minimum", False, ">=", "greater than or equal to"),
    "exclusiveMinimum": ("minimum", True, ">", "greater than"),
    "maximum": ("maximum", False, "<=", "less than or equal to"),
    "exclusiveMaximum": ("maximum", True, "<", "less than"),
}
_NULL = {"type": "null"}


class SchemaError(ValueError):
    """The model uses a construct that a structural schema cannot express."""


class _CrdJsonSchema(GenerateJsonSchema):
    """Emits defaults for fields with a ``default_factory``, so the apiserver defaults what
    the models default. A nested model's default is written out in full rather than as
    ``{}``: the apiserver validates a default (CEL rules included) before it fills in the
    nested defaults, so ``{}`` would fail rules that read those nested fields."""

    def get_default_value(self, schema: core_schema.WithDefaultSchema) -> Any:
        factory = schema.get("default_factory")
        if factory is None or schema.get("default_factory_takes_data"):
            return super().get_default_value(schema)
        value = factory()  # type: ignore[call-arg]
        if isinstance(value, BaseModel):
            return value.model_dump(mode="json", by_alias=True, exclude_none=True)
        return value if value is not None else NoDefault


def structural_schema(model: type[BaseModel]) -> dict[str, Any]:
    """The structural OpenAPI v3 schema of ``model``, validation side, camelCase names."""
    raw = model.model_json_schema(by_alias=True, schema_generator=_CrdJsonSchema)
    defs = raw.pop("$defs", {})
    return _convert(raw, defs, model.__name__)


def _convert(node: dict[str, Any], defs: dict[str, Any], path: str) -> dict[str, Any]:
    node = _resolve(node, defs, path)
    out: dict[str, Any] = {}
    for key, value in node.items():
        if key == "properties":
            out[key] = {name: _convert(sub, defs, f"{path}.{name}") for name, sub in value.items()}
        elif key == "items":
            out[key] = _convert(value, defs, f"{path}[]")
        elif key == "additionalProperties":
            if isinstance(value, dict):
                out[key] = _convert(value, defs, f"{path}{{}}")
            elif value is True:  # dict[str, Any]: anything goes, so nothing is pruned
                out[PRESERVE_UNKNOWN] = True
            # False (extra="forbid"): nothing to say; the apiserver prunes unknown fields.
        elif key == VALIDATIONS:
            out[key] = [*value, *out.get(key, [])]  # before any rule a bound added
        elif key in _BOUNDS:
            _add_bound(out, key, value)
        elif key == "default":
            if value is not None:
                out[key] = value
        elif key == "format":
            if value not in _FORMATS:
                raise SchemaError(f"{path}: format {value!r} is not supported")
            out[key] = value
        elif key == "description":
            out[key] = " ".join(value.split())  # docstrings arrive with their line breaks
        elif key == "const":
            out["enum"] = [value]
        elif key == "anyOf":
            out[key] = value  # int-or-string branches, already reduced by _resolve
        elif key in _KEPT or key == INT_OR_STRING:
            out[key] = value
        elif key not in _DROPPED:
            raise SchemaError(f"{path}: JSON Schema keyword {key!r} has no structural form")
    if "type" not in out and INT_OR_STRING not in out:
        raise SchemaError(f"{path}: no type")
    return out


def _add_bound(out: dict[str, Any], key: str, value: float) -> None:
    """A numeric bound, as OpenAPI v3 keywords when the apiserver checks it correctly.

    The apiserver compares an integral value (``0``) against a bound truncated to an integer,
    so ``validationSplit: 0`` would fail ``maximum: 0.5, exclusiveMaximum: true``
    (``0 < 0``). A fractional bound therefore becomes a CEL rule, which compares doubles.
    """
    keyword, exclusive, operator, wording = _BOUNDS[key]
    if float(value).is_integer():
        out[keyword] = value
        if exclusive:
            out[f"exclusive{keyword.capitalize()}"] = True
    else:
        rule = {"rule": f"self {operator} {value}", "message": f"must be {wording} {value}"}
        out[VALIDATIONS] = [*out.get(VALIDATIONS, []), rule]


def _resolve(node: dict[str, Any], defs: dict[str, Any], path: str) -> dict[str, Any]:
    """Inline ``$ref`` and collapse ``anyOf`` until neither is left at the top of ``node``."""
    if "$ref" in node:
        name = node["$ref"].removeprefix("#/$defs/")
        if name not in defs:
            raise SchemaError(f"{path}: unresolvable reference {node['$ref']}")
        siblings = {k: v for k, v in node.items() if k != "$ref"}
        return _resolve(_merge(defs[name], siblings), defs, path)
    if "anyOf" in node:
        rest = {k: v for k, v in node.items() if k != "anyOf"}
        branches = [_resolve(b, defs, path) for b in node["anyOf"] if b != _NULL]
        if len(branches) == 1:
            return _merge(branches[0], rest)
        return _merge(_int_or_string(branches, path), rest)
    return node


def _int_or_string(branches: list[dict[str, Any]], path: str) -> dict[str, Any]:
    """The one union a structural schema allows. Constraints of both branches move to the
    top, where each applies only to values of its own type (as for resource.Quantity)."""
    if sorted(b.get("type", "") for b in branches) != ["integer", "string"]:
        raise SchemaError(f"{path}: unions other than int-or-string have no structural form")
    out: dict[str, Any] = {
        INT_OR_STRING: True,
        "anyOf": [{"type": "integer"}, {"type": "string"}],
    }
    for branch in branches:
        out.update((k, v) for k, v in branch.items() if k != "type")
    return out


def _merge(base: dict[str, Any], overlay: dict[str, Any]) -> dict[str, Any]:
    """``overlay`` (what a field says) wins over ``base`` (what its type says), except that
    validation rules of both apply."""
    merged = {**base, **overlay}
    rules = [*base.get(VALIDATIONS, []), *overlay.get(VALIDATIONS, [])]
    if rules:
        merged[VALIDATIONS] = rules
    return merged
