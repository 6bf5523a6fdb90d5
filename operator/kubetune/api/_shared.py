"""Spec parts more than one kind uses: model identity, S3 access, LoRA, compute resources.

Sharing them keeps a field meaning one thing everywhere: ``lora.r`` in a FineTuneJob is the
same ``lora.r`` its Adapter records and its InferenceDeployment checks against
``--max-lora-rank``.
"""

from enum import StrEnum
from typing import Annotated

from pydantic import Field

from kubetune.api._base import (
    FieldReason,
    KubeModel,
    Rule,
    SecretKeyRef,
    SecretRef,
    list_set,
    unique,
)
from kubetune.api._types import (
    HfRepoId,
    HttpUrl,
    LabelKey,
    LabelValue,
    ModelUri,
    Quantity,
    Revision,
)

ALL_LINEAR = "all-linear"


class S3Access(KubeModel):
    """How to reach the S3-compatible store behind this object's ``s3://`` URIs."""

    endpoint: HttpUrl | None = Field(
        None,
        description="S3 endpoint URL for S3-compatible stores such as MinIO or Ceph, "
        "e.g. http://minio.storage:9000. Unset: AWS S3 for the region.",
    )
    region: str | None = Field(
        None,
        pattern=r"^[a-z0-9-]+$",
        max_length=32,
        description="S3 region, e.g. eu-west-1. Unset: the SDK's default resolution.",
    )
    credentials_secret_ref: SecretRef | None = Field(
        None,
        description="Secret with keys AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY (and "
        "optionally AWS_SESSION_TOKEN). Unset: ambient credentials such as IRSA or an "
        "instance profile.",
    )


class ModelIdentity(KubeModel):
    """Which base model, exactly: the pair an adapter is only valid against."""

    name: HfRepoId = Field(
        description="Base model id in Hugging Face Hub form, e.g. "
        "meta-llama/Llama-3.1-8B-Instruct. Adapters are matched to base models by it."
    )
    revision: Revision = Field(
        "main",
        description="Revision of the base model: branch, tag or, best, a commit sha.",
    )


class ModelSource(S3Access, ModelIdentity):
    """A base model and where to load its weights from."""

    uri: ModelUri | None = Field(
        None,
        description="Where the weights are loaded from: hf://org/name, s3://bucket/prefix or "
        "pvc://claim/path. Unset: hf://<name> at <revision>.",
    )
    token_secret_ref: SecretKeyRef | None = Field(
        None,
        description="Secret key holding a Hugging Face token, for gated or private models.",
    )


TargetModules = Annotated[
    list[
        Annotated[
            str,
            Field(pattern=r"^([A-Za-z_][A-Za-z0-9_.]*|all-linear)$", min_length=1, max_length=128),
        ]
    ],
    unique(),
    Field(min_length=1, max_length=64, json_schema_extra=list_set()),
]


class LoraConfig(KubeModel):
    """LoRA hyperparameters, as PEFT's LoraConfig names them."""

    rules = (
        Rule(
            cel=f"!self.targetModules.exists(m, m == '{ALL_LINEAR}') "
            "|| size(self.targetModules) == 1",
            message=f"targetModules: {ALL_LINEAR} cannot be combined with module names",
            holds=lambda s: ALL_LINEAR not in s.target_modules or len(s.target_modules) == 1,
            field_path=".targetModules",
        ),
    )

    r: int = Field(16, ge=1, le=512, description="Rank of the LoRA update matrices (1-512).")
    alpha: int = Field(
        32,
        gt=0,
        le=4096,
        description="LoRA scaling factor; updates are scaled by alpha/r (or alpha/sqrt(r) "
        "with useRslora).",
    )
    dropout: float = Field(
        0.05, ge=0, lt=1, description="Dropout probability on the LoRA layers, in [0, 1)."
    )
    target_modules: TargetModules = Field(
        default=[ALL_LINEAR],
        description="Module names to adapt, e.g. [q_proj, v_proj], or [all-linear] for every "
        "linear layer except the output head.",
    )
    use_rslora: bool = Field(
        False, description="Rank-stabilised LoRA: scale by alpha/sqrt(r) instead of alpha/r."
    )
    use_dora: bool = Field(
        False, description="Weight-decomposed LoRA (DoRA); slower, sometimes better."
    )


class TaintEffect(StrEnum):
    """Node taint effects a toleration can match."""

    NO_SCHEDULE = "NoSchedule"
    PREFER_NO_SCHEDULE = "PreferNoSchedule"
    NO_EXECUTE = "NoExecute"


class TolerationOperator(StrEnum):
    """How a toleration matches a taint's value."""

    EXISTS = "Exists"
    EQUAL = "Equal"


class Toleration(KubeModel):
    """A Pod toleration, as in the core API, for tainted GPU nodes."""

    rules = (
        Rule(
            cel="self.operator != 'Exists' || !has(self.value)",
            message="value must be empty when operator is Exists",
            holds=lambda s: s.operator != TolerationOperator.EXISTS or s.value is None,
            field_path=".value",
            reason=FieldReason.FORBIDDEN,
        ),
    )

    key: LabelKey | None = Field(None, description="Taint key; empty matches every key.")
    operator: TolerationOperator = Field(TolerationOperator.EQUAL, description="Exists or Equal.")
    value: LabelValue | None = Field(None, description="Taint value, for operator Equal.")
    effect: TaintEffect | None = Field(None, description="Taint effect; empty matches all.")
    toleration_seconds: int | None = Field(
        None,
        ge=0,
        le=31_536_000,
        description="For NoExecute: how long the pod stays bound after the taint appears.",
    )


class ComputeResources(KubeModel):
    """What each worker pod needs and where it may run."""

    gpus: int = Field(1, ge=0, le=64, description="GPUs per pod (nvidia.com/gpu).")
    gpu_type: LabelValue | None = Field(
        None,
        description="Required value of the nvidia.com/gpu.product node label, e.g. "
        "NVIDIA-H100-80GB-HBM3.",
    )
    cpu: Quantity | None = Field(None, description="CPU request and limit per pod, e.g. 8.")
    memory: Quantity | None = Field(
        None, description="Memory request and limit per pod, e.g. 64Gi."
    )
    node_selector: dict[str, LabelValue] | None = Field(
        None, max_length=32, description="Node labels the pods must match."
    )
    tolerations: list[Toleration] | None = Field(
        None, max_length=32, description="Tolerations for tainted (e.g. GPU) nodes."
    )
