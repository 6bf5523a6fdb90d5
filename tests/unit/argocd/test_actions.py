"""The Argo CD resource actions: which are offered when, and what each does to the object."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from kubetune.api import FineTuneJob, InferenceDeployment
from support.apiobjects import minimal, with_changes
from support.argocd import act, action_names, discover

pytestmark = pytest.mark.unit

ROLLOUT_ACTION = "kubetune.io/rollout-action"


def finetunejob(phase: str | None, *, suspend: bool | None = None) -> dict[str, Any]:
    obj = minimal("FineTuneJob", "demo")
    if suspend is not None:
        obj["spec"]["suspend"] = suspend
    if phase is not None:
        obj["status"] = {"phase": phase, "observedGeneration": 1}
    return obj


def inferencedeployment(*, canary: bool, annotations: dict[str, str] | None = None) -> dict:
    obj = minimal("InferenceDeployment", "demo")
    if annotations is not None:
        obj["metadata"]["annotations"] = annotations
    status: dict[str, Any] = {"phase": "Healthy", "stable": {"revision": "support-bot-v3"}}
    if canary:
        status.update(phase="Progressing", canary={"revision": "support-bot-v4", "weight": 10})
    obj["status"] = status
    return obj


def enabled(actions: dict[str, dict[str, Any]]) -> set[str]:
    return {name for name, action in actions.items() if not action["disabled"]}


@pytest.mark.parametrize(
    ("obj", "offered"),
    [
        (finetunejob(None), {"suspend"}),
        (finetunejob("Running"), {"suspend"}),
        (finetunejob("Queued", suspend=False), {"suspend"}),
        (finetunejob("Suspended", suspend=True), {"resume"}),
        # Suspended in Git but not yet by the operator: resuming is what makes sense.
        (finetunejob("Running", suspend=True), {"resume"}),
        (finetunejob("Succeeded"), set()),
        (finetunejob("Failed"), set()),
        (inferencedeployment(canary=True), {"promote", "abort"}),
        (inferencedeployment(canary=False), set()),
    ],
    ids=[
        "ftj-new",
        "ftj-running",
        "ftj-queued",
        "ftj-suspended",
        "ftj-suspend-pending",
        "ftj-succeeded",
        "ftj-failed",
        "infd-canary",
        "infd-no-canary",
    ],
)
def test_discovery_offers_what_applies(obj: dict, offered: set[str]) -> None:
    actions = discover(obj)
    assert enabled(actions) == offered
    names = {"FineTuneJob": {"suspend", "resume"}, "InferenceDeployment": {"promote", "abort"}}
    assert set(actions) == names[obj["kind"]]  # disabled ones are listed too, greyed out
    assert all(a["displayName"] and a["iconClass"].startswith("fa ") for a in actions.values())


@pytest.mark.parametrize("kind", ["FineTuneJob", "InferenceDeployment"])
def test_every_discovered_action_has_a_definition(kind: str) -> None:
    obj = finetunejob(None) if kind == "FineTuneJob" else inferencedeployment(canary=True)
    assert sorted(action_names(kind)) == sorted(discover(obj))


@pytest.mark.parametrize(
    ("action", "before", "after"),
    [
        ("suspend", None, True),
        ("suspend", False, True),
        ("resume", True, False),
    ],
)
def test_suspend_and_resume_set_spec_suspend(action: str, before: bool | None, after: bool) -> None:
    obj = finetunejob("Running", suspend=before)
    result = act(action, obj)
    assert result == with_changes(obj, {"spec.suspend": after})
    FineTuneJob.model_validate(result)


@pytest.mark.parametrize("action", ["promote", "abort"])
@pytest.mark.parametrize(
    "annotations",
    [None, {}, {"team": "ml"}, {ROLLOUT_ACTION: "abort"}],
    ids=["no-annotations", "empty", "others-kept", "replaces-pending"],
)
def test_rollout_actions_annotate_and_leave_the_spec(
    action: str, annotations: dict[str, str] | None
) -> None:
    obj = inferencedeployment(canary=True, annotations=copy.deepcopy(annotations))
    result = act(action, obj)
    expected = copy.deepcopy(obj)
    expected["metadata"]["annotations"] = {**(annotations or {}), ROLLOUT_ACTION: action}
    assert result == expected
    InferenceDeployment.model_validate(result)
