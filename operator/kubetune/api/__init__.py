"""The kubetune API: pydantic models for FineTuneJob, Adapter and InferenceDeployment.

These models are the single source of the API. The CRDs in ``crds/`` are generated from
them (``python -m kubetune.crd generate``), and the operator and the trainer parse every
object with them, so a spec the apiserver accepts is a spec the code accepts.

    job = FineTuneJob.model_validate(body)          # body as read from the apiserver
    job.spec.lora.r                                 # snake_case in Python
    job.model_dump(mode="json", exclude_none=True)  # camelCase on the wire
"""

from kubetune.api._base import Condition, KubeModel, KubeObject, Rule, SecretKeyRef, SecretRef
from kubetune.api._shared import (
    ComputeResources,
    LoraConfig,
    ModelIdentity,
    ModelSource,
    S3Access,
    TaintEffect,
    Toleration,
    TolerationOperator,
)
from kubetune.api.adapter import (
    Adapter,
    AdapterMetrics,
    AdapterPhase,
    AdapterSource,
    AdapterSpec,
    AdapterStatus,
    DatasetLineage,
    DeletionPolicy,
)
from kubetune.api.conditions import (
    AdapterConditionType,
    ConditionStatus,
    FineTuneJobConditionType,
    InferenceDeploymentConditionType,
    Reason,
)
from kubetune.api.finetunejob import (
    AdapterTarget,
    DatasetFormat,
    DatasetSpec,
    DatasetStatus,
    FineTuneJob,
    FineTuneJobPhase,
    FineTuneJobSpec,
    FineTuneJobStatus,
    Method,
    OutputSpec,
    Progress,
    TrainingResources,
)
from kubetune.api.inferencedeployment import (
    AdapterSelector,
    AnalysisSpec,
    AnalysisStatus,
    CanaryStatus,
    CanaryStep,
    InferenceDeployment,
    InferenceDeploymentPhase,
    InferenceDeploymentSpec,
    InferenceDeploymentStatus,
    ResolvedAdapter,
    RevisionStatus,
    RolloutSpec,
    RuntimeSpec,
    RuntimeType,
    ServedAdapter,
)
from kubetune.api.training import (
    DEFAULT_EPOCHS,
    ComputeDtype,
    EarlyStopping,
    Optimizer,
    Precision,
    QuantizationConfig,
    QuantType,
    Scheduler,
    TrainingConfig,
)

KINDS: tuple[type[KubeObject], ...] = (FineTuneJob, Adapter, InferenceDeployment)
"""Every kind the API defines, in the order their CRDs are generated."""

__all__ = [
    "DEFAULT_EPOCHS",
    "KINDS",
    "Adapter",
    "AdapterConditionType",
    "AdapterMetrics",
    "AdapterPhase",
    "AdapterSelector",
    "AdapterSource",
    "AdapterSpec",
    "AdapterStatus",
    "AdapterTarget",
    "AnalysisSpec",
    "AnalysisStatus",
    "CanaryStatus",
    "CanaryStep",
    "ComputeDtype",
    "ComputeResources",
    "Condition",
    "ConditionStatus",
    "DatasetFormat",
    "DatasetLineage",
    "DatasetSpec",
    "DatasetStatus",
    "DeletionPolicy",
    "EarlyStopping",
    "FineTuneJob",
    "FineTuneJobConditionType",
    "FineTuneJobPhase",
    "FineTuneJobSpec",
    "FineTuneJobStatus",
    "InferenceDeployment",
    "InferenceDeploymentConditionType",
    "InferenceDeploymentPhase",
    "InferenceDeploymentSpec",
    "InferenceDeploymentStatus",
    "KubeModel",
    "KubeObject",
    "LoraConfig",
    "Method",
    "ModelIdentity",
    "ModelSource",
    "Optimizer",
    "OutputSpec",
    "Precision",
    "Progress",
    "QuantType",
    "QuantizationConfig",
    "Reason",
    "ResolvedAdapter",
    "RevisionStatus",
    "RolloutSpec",
    "Rule",
    "RuntimeSpec",
    "RuntimeType",
    "S3Access",
    "Scheduler",
    "SecretKeyRef",
    "SecretRef",
    "ServedAdapter",
    "TaintEffect",
    "Toleration",
    "TolerationOperator",
    "TrainingConfig",
    "TrainingResources",
]
