"""The public surface of kubetune.api and the behaviour the operator and trainer rely on."""

from __future__ import annotations

import inspect
from enum import StrEnum
from typing import Any

import pytest

import kubetune.api
from kubetune.api import (
    KINDS,
    FineTuneJob,
    KubeModel,
    LoraConfig,
    Method,
    Progress,
    QuantizationConfig,
    QuantType,
    Rule,
    TrainingConfig,
)
from kubetune.api.constants import API_VERSION
from support.apiobjects import example, minimal

pytestmark = pytest.mark.unit


def is_subset(part: Any, whole: Any) -> bool:
    """Whether every field ``part`` sets has the same value in ``whole``."""
    if isinstance(part, dict):
        return isinstance(whole, dict) and all(
            k in whole and is_subset(v, whole[k]) for k, v in part.items()
        )
    if isinstance(part, list):
        return (
            isinstance(whole, list)
            and len(part) == len(whole)
            and all(is_subset(a, b) for a, b in zip(part, whole, strict=True))
        )
    return bool(part == whole)


def test_all_is_complete() -> None:
    exported = kubetune.api.__all__
    assert len(exported) == len(set(exported))
    public = {
        name
        for module in (
            kubetune.api.adapter,
            kubetune.api.finetunejob,
            kubetune.api.training,
            kubetune.api.inferencedeployment,
            kubetune.api.conditions,
        )
        for name, obj in vars(module).items()
        if inspect.isclass(obj)
        and obj.__module__ == module.__name__
        and issubclass(obj, KubeModel | StrEnum)
    }
    assert public <= set(exported)
    assert all(hasattr(kubetune.api, name) for name in exported)


@pytest.mark.parametrize("kind", KINDS, ids=lambda k: k.__name__)
def test_kind_identity(kind: type[kubetune.api.KubeObject]) -> None:
    assert kind.model_fields["api_version"].default == API_VERSION
    assert kind.model_fields["kind"].default == kind.__name__
    assert kind.plural == kind.__name__.lower() + "s"
    assert len(kind.short_names) == 1


@pytest.mark.parametrize("kind", KINDS, ids=lambda k: k.__name__)
def test_dump_keeps_everything_the_example_says(kind: type[kubetune.api.KubeObject]) -> None:
    original = example(kind.__name__)
    dumped = kind.model_validate(original).model_dump(mode="json", exclude_none=True)
    assert is_subset(original, dumped)
    assert kind.model_validate(dumped).model_dump(mode="json", exclude_none=True) == dumped


@pytest.mark.parametrize("kind", KINDS, ids=lambda k: k.__name__)
def test_minimal_object_parses_with_metadata_untouched(
    kind: type[kubetune.api.KubeObject],
) -> None:
    body = minimal(kind.__name__)
    body["metadata"] |= {"uid": "1234", "managedFields": [{"manager": "kubectl"}]}
    parsed = kind.model_validate(body)
    assert parsed.metadata == body["metadata"]
    assert parsed.status is None


def test_python_names_are_accepted_and_wire_names_dumped() -> None:
    lora = LoraConfig(target_modules=["q_proj"], use_rslora=True)
    assert lora.model_dump()["targetModules"] == ["q_proj"]
    assert LoraConfig.model_validate({"useRslora": True}).use_rslora


@pytest.mark.parametrize(
    ("method", "quantization", "expected"),
    [
        (Method.LORA, None, None),
        (Method.QLORA, None, QuantizationConfig(bits=4, type=None)),
        (Method.QLORA, QuantizationConfig(bits=8), QuantizationConfig(bits=8)),
    ],
)
def test_effective_quantization(
    method: Method, quantization: QuantizationConfig | None, expected: QuantizationConfig | None
) -> None:
    body = example("FineTuneJob")["spec"] | {"method": method.value}
    body["quantization"] = quantization.model_dump() if quantization else None
    if method == Method.LORA:
        del body["quantization"]
    spec = FineTuneJob.model_validate({"spec": body}).spec
    assert spec.effective_quantization == expected


@pytest.mark.parametrize(
    ("config", "expected"),
    [
        (QuantizationConfig(), QuantType.NF4),
        (QuantizationConfig(type=QuantType.FP4), QuantType.FP4),
        (QuantizationConfig(bits=8), None),
    ],
)
def test_effective_quant_type(config: QuantizationConfig, expected: QuantType | None) -> None:
    assert config.effective_type == expected


@pytest.mark.parametrize(
    ("config", "expected"),
    [
        (TrainingConfig(), 3),
        (TrainingConfig(epochs=1), 1),
        (TrainingConfig(max_steps=10), None),
    ],
)
def test_effective_epochs(config: TrainingConfig, expected: int | None) -> None:
    assert config.effective_epochs == expected


def all_rules() -> list[tuple[str, Rule]]:
    found = []
    for module in (
        kubetune.api.adapter,
        kubetune.api.finetunejob,
        kubetune.api.training,
        kubetune.api.inferencedeployment,
        kubetune.api._shared,
    ):
        for name, obj in vars(module).items():
            if inspect.isclass(obj) and issubclass(obj, KubeModel) and "rules" in vars(obj):
                found.extend((f"{name}[{i}]", rule) for i, rule in enumerate(obj.rules))
    return found


@pytest.mark.parametrize(("owner", "rule"), all_rules(), ids=[o for o, _ in all_rules()])
def test_rule_messages_name_their_field(owner: str, rule: Rule) -> None:
    if rule.field_path is not None:
        assert rule.field_path.lstrip(".") in rule.message


@pytest.mark.parametrize(("owner", "rule"), all_rules(), ids=[o for o, _ in all_rules()])
def test_only_transition_rules_lack_a_python_twin(owner: str, rule: Rule) -> None:
    assert (rule.holds is None) == ("oldSelf" in rule.cel)


@pytest.mark.parametrize(
    ("reported", "stored"),
    [
        (1.5409238815307618, 1.5409),
        (0.000012345678, 1.2346e-05),
        (2.0, 2.0),
        (1234567.8, 1234600.0),
    ],
)
def test_losses_are_kept_at_five_significant_digits(reported: float, stored: float) -> None:
    """kubectl prints the LOSS column as stored."""
    progress = Progress.model_validate({"trainLoss": reported, "evalLoss": reported})
    assert (progress.train_loss, progress.eval_loss) == (stored, stored)
