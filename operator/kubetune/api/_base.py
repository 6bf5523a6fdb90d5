"""The base every API model derives from, and the machinery that keeps the models and the
CRD schemas saying the same thing.

A cross-field rule is written once as a :class:`Rule`: a CEL expression the apiserver
evaluates (emitted into the schema as ``x-kubernetes-validations``), a Python predicate the
models evaluate, and one message for both. Rules that need the old object (immutability)
exist only in CEL, because a model sees one object at a time.
"""

from collections.abc import Callable, Hashable
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Annotated, Any, ClassVar, Self

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, model_validator
from pydantic.alias_generators import to_camel

from kubetune.api._types import ObjectName, SecretKey
from kubetune.api.conditions import ConditionStatus

VALIDATIONS = "x-kubernetes-validations"


class FieldReason(StrEnum):
    """The error kinds an ``x-kubernetes-validations`` rule may report."""

    INVALID = "FieldValueInvalid"
    FORBIDDEN = "FieldValueForbidden"
    REQUIRED = "FieldValueRequired"
    DUPLICATE = "FieldValueDuplicate"


@dataclass(frozen=True)
class Rule:
    """A rule over several fields of one model, enforced by the apiserver and the model.

    ``holds`` is the Python twin of ``cel``; ``None`` marks a transition rule (one that reads
    ``oldSelf``), which only the apiserver can evaluate. ``field_path`` (relative to the
    model, e.g. ``.quantization``) makes the apiserver report the error at that field.
    """

    cel: str
    message: str
    holds: Callable[[Any], bool] | None
    field_path: str | None = None
    reason: FieldReason | None = None

    def to_schema(self) -> dict[str, str]:
        """The rule as one entry of ``x-kubernetes-validations``."""
        entry = {"rule": self.cel, "message": self.message}
        if self.field_path is not None:
            entry["fieldPath"] = self.field_path
        if self.reason is not None:
            entry["reason"] = self.reason.value
        return entry


def immutable(field: str) -> dict[str, Any]:
    """Schema extra for a field that cannot change once set: a CEL transition rule."""
    return {VALIDATIONS: [{"rule": "self == oldSelf", "message": f"{field} is immutable"}]}


def _add_rules(schema: dict[str, Any], cls: type[Any]) -> None:
    rules: tuple[Rule, ...] = getattr(cls, "rules", ())
    if rules:
        schema[VALIDATIONS] = [*schema.get(VALIDATIONS, []), *(r.to_schema() for r in rules)]


class KubeModel(BaseModel):
    """camelCase on the wire, snake_case in Python; unknown fields are errors."""

    model_config = ConfigDict(
        alias_generator=to_camel,
        validate_by_name=True,
        validate_by_alias=True,
        serialize_by_alias=True,
        extra="forbid",
        json_schema_extra=_add_rules,
    )

    rules: ClassVar[tuple[Rule, ...]] = ()

    @classmethod
    def model_validate_known(cls, data: dict[str, Any]) -> Self:
        """Parse ``data`` ignoring keys the model does not know, by name or by alias: for
        reports from other processes (the trainer) that may carry more than the API keeps."""
        known = {name for name in cls.model_fields} | {
            f.alias for f in cls.model_fields.values() if f.alias
        }
        return cls.model_validate({k: v for k, v in data.items() if k in known})

    @model_validator(mode="after")
    def _check_rules(self) -> Self:
        broken = [r.message for r in self.rules if r.holds is not None and not r.holds(self)]
        if broken:
            raise ValueError("; ".join(broken))
        return self


def unique(key: str | None = None) -> AfterValidator:
    """A validator for lists whose items (or whose items' ``key``) must not repeat; the
    apiserver enforces the same through ``listType: set`` or ``listType: map``."""

    def check(items: list[Any]) -> list[Any]:
        keys: list[Hashable] = [item if key is None else getattr(item, key) for item in items]
        duplicates = sorted({str(k) for k in keys if keys.count(k) > 1})
        if duplicates:
            what = "entries" if key is None else f"{to_camel(key)} values"
            raise ValueError(f"{what} must be unique; duplicated: {', '.join(duplicates)}")
        return items

    return AfterValidator(check)


def list_set() -> dict[str, Any]:
    """Schema extra for a list of unique scalars, merged by value."""
    return {"x-kubernetes-list-type": "set"}


def list_map(key: str) -> dict[str, Any]:
    """Schema extra for a list of objects merged by ``key``, like containers by name."""
    return {"x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": [to_camel(key)]}


class SecretRef(KubeModel):
    """A Secret in the object's own namespace; there is no namespace field on purpose, so a
    user cannot make the operator read another namespace's Secret."""

    name: ObjectName = Field(
        description="Name of the Secret, in the same namespace as this object."
    )


class SecretKeyRef(SecretRef):
    """One key of a Secret in the object's own namespace."""

    key: SecretKey = Field(description="Key within the Secret whose value is used.")


class Condition(KubeModel):
    """One observation of an aspect of the object's state, as metav1.Condition."""

    type: str = Field(
        pattern=r"^([a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*/)?"
        r"(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])$",
        max_length=316,
        description="Type of condition in CamelCase, e.g. Validated, Ready, Available.",
    )
    status: ConditionStatus = Field(description="Status of the condition: True, False or Unknown.")
    reason: str = Field(
        pattern=r"^[A-Za-z]([A-Za-z0-9_,:]*[A-Za-z0-9_])?$",
        min_length=1,
        max_length=1024,
        description="Machine-readable reason for the last transition, in CamelCase.",
    )
    message: str = Field(
        "", max_length=32768, description="Human-readable details about the last transition."
    )
    last_transition_time: datetime = Field(
        description="When the condition last changed from one status to another."
    )
    observed_generation: int | None = Field(
        None, ge=0, description="The .metadata.generation the condition was set for."
    )


Conditions = Annotated[
    list[Condition], unique("type"), Field(max_length=32, json_schema_extra=list_map("type"))
]
"""Conditions of an object, at most one per type."""


class KubeObject(KubeModel):
    """A whole custom resource as the apiserver returns it.

    ``metadata`` stays a plain dict: the apiserver owns its schema, and the models must not
    reject or drop anything it adds (managedFields, ownerReferences, ...).
    """

    plural: ClassVar[str]
    short_names: ClassVar[tuple[str, ...]]

    api_version: str = Field(description="The API version of this object.")
    kind: str = Field(description="The kind of this object.")
    metadata: dict[str, Any] = Field(default_factory=dict, description="Standard object metadata.")
