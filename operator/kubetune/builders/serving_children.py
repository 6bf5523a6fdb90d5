"""Which objects serve an InferenceDeployment: one builder per runtime, chosen from a
mapping (a new runtime registers its builder here instead of growing an ``if`` chain)."""

from __future__ import annotations

from collections.abc import Callable, Mapping

from kubetune.api import (
    Adapter,
    InferenceDeployment,
    InferenceDeploymentStatus,
    RuntimeType,
    TrafficRouting,
)
from kubetune.builders.serving import Children, build_kubetune_children
from kubetune.builders.serving_vllm import build_vllm_children
from kubetune.settings import Settings

ChildrenBuilder = Callable[
    [
        InferenceDeployment,
        InferenceDeploymentStatus,
        Mapping[str, Adapter],
        Settings,
        TrafficRouting,
    ],
    Children,
]

BUILDERS: dict[RuntimeType, ChildrenBuilder] = {
    RuntimeType.KUBETUNE: build_kubetune_children,
    RuntimeType.VLLM: build_vllm_children,
}


def build_children(
    infd: InferenceDeployment,
    status: InferenceDeploymentStatus,
    adapters: Mapping[str, Adapter],
    settings: Settings,
    routing: TrafficRouting,
) -> Children:
    """Everything that serves ``infd`` in the state ``status`` describes; nothing until a
    stable adapter set exists."""
    if status.stable is None:
        return Children()
    return BUILDERS[infd.spec.runtime.type](infd, status, adapters, settings, routing)
