"""The kubetune API: pydantic models for FineTuneJob, Adapter and InferenceDeployment.

These models are the single source of the API. The CRDs in ``crds/`` are generated from
them (``python -m kubetune.crd generate``), and the operator and the trainer parse every
object with them, so a spec the apiserver accepts is a spec the code accepts.

    job = FineTuneJob.model_validate(body)          # body as read from the apiserver
    job.spec.lora.r                                 # snake_case in Python
    job.model_dump(mode="json", exclude_none=True)  # camelCase on the wire

Importing the package builds no model: each name is imported from its module on first use
(PEP 562), so a process that needs a few of them (a serving pod's adapter pull, the trainer's
S3 access) does not pay for building every kind's pydantic models at start-up.
"""

from __future__ import annotations

import importlib
from typing import Any

_MODULES: dict[str, tuple[str, ...]] = {
    "_base": (
        "Condition",
        "KubeModel",
        "KubeObject",
        "Rule",
        "SecretKeyRef",
        "SecretRef",
    ),
    "_shared": (
        "ComputeResources",
        "LoraConfig",
        "ModelIdentity",
        "ModelSource",
        "S3Access",
        "TaintEffect",
        "Toleration",
        "TolerationOperator",
    ),
    "adapter": (
        "Adapter",
        "AdapterMetrics",
        "AdapterPhase",
        "AdapterSource",
        "AdapterSpec",
        "AdapterStatus",
        "DatasetLineage",
        "DeletionPolicy",
    ),
    "conditions": (
        "AdapterConditionType",
        "ConditionStatus",
        "FineTuneJobConditionType",
        "InferenceDeploymentConditionType",
        "Reason",
    ),
    "finetunejob": (
        "AdapterTarget",
        "DatasetFormat",
        "DatasetSpec",
        "DatasetStatus",
        "FineTuneJob",
        "FineTuneJobPhase",
        "FineTuneJobSpec",
        "FineTuneJobStatus",
        "Method",
        "OutputSpec",
        "OverLength",
        "Progress",
        "TrainingResources",
    ),
    "inferencedeployment": (
        "AdapterSelector",
        "AnalysisResult",
        "AnalysisSpec",
        "AnalysisStatus",
        "CanaryStatus",
        "CanaryStep",
        "EvalGate",
        "GatewayRef",
        "InferenceDeployment",
        "InferenceDeploymentPhase",
        "InferenceDeploymentSpec",
        "InferenceDeploymentStatus",
        "ResolvedAdapter",
        "RevisionStatus",
        "RolloutSpec",
        "RuntimeSpec",
        "RuntimeType",
        "ServedAdapter",
        "TrafficRouting",
    ),
    "training": (
        "DEFAULT_EPOCHS",
        "ComputeDtype",
        "EarlyStopping",
        "Optimizer",
        "Precision",
        "QuantizationConfig",
        "QuantType",
        "Scheduler",
        "TrainingConfig",
    ),
}
"""Where each name of the API lives."""
_HOME = {name: module for module, names in _MODULES.items() for name in names}

__all__ = sorted([*_HOME, "KINDS"])


def __getattr__(name: str) -> Any:
    """Import a name of the API from its module on first use, then keep it here."""
    if name == "KINDS":
        value: Any = (
            __getattr__("FineTuneJob"),
            __getattr__("Adapter"),
            __getattr__("InferenceDeployment"),
        )
    elif name in _HOME:
        value = getattr(importlib.import_module(f"kubetune.api.{_HOME[name]}"), name)
    else:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})
