"""FineTuneJob: train a LoRA or QLoRA adapter on a base model and a dataset.

A FineTuneJob is the record of one training run, like a batch Job: what defines the run
(base model, data, method, hyperparameters, where the artifact goes) is immutable once
created; what only affects scheduling (resources, image, suspend, deadlines) may change.
"""

from datetime import datetime
from enum import StrEnum
from typing import ClassVar, Literal

from pydantic import Field

from kubetune.api._base import (
    Conditions,
    FieldReason,
    KubeModel,
    KubeObject,
    Rule,
    immutable,
)
from kubetune.api._shared import ComputeResources, LoraConfig, ModelSource, S3Access
from kubetune.api._types import (
    DatasetUri,
    DnsLabel,
    Image,
    Metric,
    ObjectName,
    S3Uri,
    Sha256Hex,
    ShortObjectName,
)
from kubetune.api.training import QuantizationConfig, TrainingConfig


class Method(StrEnum):
    """How the base model is adapted."""

    QLORA = "qlora"  # LoRA on a 4- or 8-bit quantized base model
    LORA = "lora"  # LoRA on the base model in its compute dtype


class DatasetFormat(StrEnum):
    """The record layout of a JSONL, JSON or Parquet dataset."""

    AUTO = "auto"  # detected from the records
    CHAT = "chat"  # OpenAI {"messages": [{"role": ..., "content": ...}, ...]}
    INSTRUCTION = "instruction"  # Alpaca {"instruction": ..., "input": ..., "output": ...}
    COMPLETION = "completion"  # {"prompt": ..., "completion": ...}
    TEXT = "text"  # {"text": ...}: plain text, loss on every token


class OverLength(StrEnum):
    """What validation does with a record longer than training.maxSeqLength tokens."""

    TRUNCATE = "truncate"  # keep it, cut to maxSeqLength (reported as a warning)
    REJECT = "reject"  # report it as an error: the dataset is invalid


class DatasetSpec(S3Access):
    """The training data, validated on CPU before any GPU is requested."""

    rules = (
        Rule(
            cel="!has(self.evalUri) || self.validationSplit == 0.0",
            message="validationSplit must be 0 when evalUri is set",
            holds=lambda s: s.eval_uri is None or s.validation_split == 0,
            field_path=".validationSplit",
            reason=FieldReason.FORBIDDEN,
        ),
    )

    uri: DatasetUri = Field(
        description="Training data: s3://bucket/key (a .jsonl or .parquet file, or a prefix of "
        "shards) or pvc://claim/path."
    )
    format: DatasetFormat = Field(
        DatasetFormat.AUTO,
        description="Record layout: chat (OpenAI messages), instruction (Alpaca instruction/"
        "input/output), completion (prompt/completion), text, or auto to detect it.",
    )
    over_length: OverLength = Field(
        OverLength.TRUNCATE,
        description="Records longer than training.maxSeqLength tokens: truncate them "
        "(a warning) or reject them (the dataset is invalid).",
    )
    validation_split: float = Field(
        0.0,
        ge=0,
        lt=0.5,
        description="Fraction of the training data held out for evaluation, in [0, 0.5).",
    )
    eval_uri: DatasetUri | None = Field(
        None, description="Separate evaluation data, instead of a validationSplit."
    )
    sha256: Sha256Hex | None = Field(
        None,
        description="Expected SHA-256 of the training data; the job fails with "
        "DigestMismatch when the data differs.",
    )

    @property
    def has_eval_data(self) -> bool:
        """Whether evaluation can run: a separate eval set or a held-out split."""
        return self.eval_uri is not None or self.validation_split > 0


class TrainingResources(ComputeResources):
    """Compute for the training pods."""

    nodes: int = Field(1, ge=1, le=64, description="Pods (nodes) the training is spread over.")


class OutputSpec(S3Access):
    """Where checkpoints and the final adapter are written."""

    uri: S3Uri = Field(
        description="S3 prefix for artifacts, e.g. s3://adapters/support-bot/. Each run writes "
        "under its own immutable sub-prefix."
    )


class AdapterTarget(KubeModel):
    """The Adapter this job produces: one version of an adapter family."""

    name: DnsLabel = Field(
        description="Adapter family (DNS-1123 label), e.g. support-bot; an InferenceDeployment "
        "can follow the family's latest Ready version with selector.family."
    )
    version: ShortObjectName = Field(
        description="Version within the family, e.g. v3. The Adapter object is named "
        "<name>-<version>.",
    )


class FineTuneJobSpec(KubeModel):
    """The desired training run."""

    rules = (
        Rule(
            cel="self.method != 'lora' || !has(self.quantization)",
            message="quantization must not be set when method is lora; use method qlora",
            holds=lambda s: s.method != Method.LORA or s.quantization is None,
            field_path=".quantization",
            reason=FieldReason.FORBIDDEN,
        ),
        Rule(
            cel="self.method != 'qlora' || self.resources.gpus >= 1",
            message="resources.gpus must be at least 1 when method is qlora",
            holds=lambda s: s.method != Method.QLORA or s.resources.gpus >= 1,
            field_path=".resources.gpus",
        ),
        Rule(
            cel="!has(self.training.earlyStopping) || has(self.dataset.evalUri) "
            "|| self.dataset.validationSplit > 0.0",
            message="training.earlyStopping needs evaluation data: set dataset.evalUri or "
            "dataset.validationSplit",
            holds=lambda s: s.training.early_stopping is None or s.dataset.has_eval_data,
            field_path=".training.earlyStopping",
        ),
        Rule(
            cel="!has(self.training.evalSteps) || has(self.dataset.evalUri) "
            "|| self.dataset.validationSplit > 0.0",
            message="training.evalSteps needs evaluation data: set dataset.evalUri or "
            "dataset.validationSplit",
            holds=lambda s: s.training.eval_steps is None or s.dataset.has_eval_data,
            field_path=".training.evalSteps",
        ),
        Rule(
            cel="has(self.quantization) == has(oldSelf.quantization)",
            message="quantization cannot be added or removed",
            holds=None,
            field_path=".quantization",
        ),
    )

    base_model: ModelSource = Field(
        description="The base model to adapt.", json_schema_extra=immutable("baseModel")
    )
    dataset: DatasetSpec = Field(
        description="The training data.", json_schema_extra=immutable("dataset")
    )
    method: Method = Field(
        Method.QLORA,
        description="qlora: LoRA on a quantized base model (needs a GPU); lora: LoRA on the "
        "unquantized model.",
        json_schema_extra=immutable("method"),
    )
    lora: LoraConfig = Field(
        default_factory=LoraConfig,
        description="LoRA hyperparameters.",
        json_schema_extra=immutable("lora"),
    )
    quantization: QuantizationConfig | None = Field(
        None,
        description="Quantization of the base model, for method qlora only. Unset with "
        "qlora: 4-bit nf4, double quantization, bfloat16 compute.",
        json_schema_extra=immutable("quantization"),
    )
    training: TrainingConfig = Field(
        default_factory=TrainingConfig,
        description="Trainer hyperparameters.",
        json_schema_extra=immutable("training"),
    )
    resources: TrainingResources = Field(
        default_factory=TrainingResources, description="Compute for the training pods."
    )
    output: OutputSpec = Field(
        description="Where artifacts are written.", json_schema_extra=immutable("output")
    )
    adapter: AdapterTarget = Field(
        description="The Adapter to create from the result.",
        json_schema_extra=immutable("adapter"),
    )
    image: Image | None = Field(
        None, description="Trainer image override. Unset: the operator's configured image."
    )
    backoff_limit: int = Field(
        2, ge=0, le=20, description="Retries after a failed attempt before the job fails."
    )
    active_deadline_seconds: int | None = Field(
        None,
        ge=1,
        le=2_592_000,
        description="Wall-clock limit for the whole run; exceeding it fails the job with "
        "DeadlineExceeded.",
    )
    suspend: bool = Field(
        False, description="Suspend the run: delete its pods and keep checkpoints, to resume later."
    )
    queue_name: ShortObjectName | None = Field(
        None, description="Kueue LocalQueue to submit to, when Kueue is installed."
    )
    priority_class_name: ObjectName | None = Field(
        None, description="PriorityClass of the training pods."
    )

    @property
    def effective_quantization(self) -> QuantizationConfig | None:
        """The quantization the trainer applies: the configured one, the QLoRA default, or
        none for plain LoRA."""
        if self.method == Method.LORA:
            return None
        return self.quantization or QuantizationConfig()


class FineTuneJobPhase(StrEnum):
    """Where a FineTuneJob is in its life."""

    PENDING = "Pending"
    VALIDATING = "Validating"
    QUEUED = "Queued"
    RUNNING = "Running"
    SUCCEEDED = "Succeeded"
    FAILED = "Failed"
    SUSPENDED = "Suspended"


class Progress(KubeModel):
    """Training progress as last reported by the trainer."""

    step: int = Field(0, ge=0, description="Optimizer steps completed.")
    total_steps: int | None = Field(None, ge=0, description="Optimizer steps planned.")
    percent: int = Field(0, ge=0, le=100, description="step / totalSteps, in percent.")
    epoch: float | None = Field(None, ge=0, description="Fractional epochs completed.")
    train_loss: Metric | None = Field(None, description="Latest training loss.")
    eval_loss: Metric | None = Field(None, description="Latest evaluation loss.")
    learning_rate: float | None = Field(None, ge=0, description="Current learning rate.")
    tokens_per_second: float | None = Field(
        None, ge=0, description="Training throughput across all GPUs."
    )
    eta_seconds: int | None = Field(None, ge=0, description="Estimated seconds to completion.")
    updated_at: datetime | None = Field(None, description="When the trainer last reported.")


class DatasetStatus(KubeModel):
    """What validation found in the dataset."""

    sha256: Sha256Hex | None = Field(None, description="SHA-256 of the training data.")
    format: DatasetFormat | None = Field(None, description="The detected record layout.")
    records: int | None = Field(None, ge=0, description="Records in the training data.")
    eval_records: int | None = Field(None, ge=0, description="Records used for evaluation.")


class FineTuneJobStatus(KubeModel):
    """Observed state of a FineTuneJob; written by the operator only."""

    phase: FineTuneJobPhase = Field(FineTuneJobPhase.PENDING, description="Summary of the state.")
    conditions: Conditions = Field(
        default_factory=list,
        description="Validated, Admitted, Running, Succeeded, Failed, "
        "Suspended, each with a reason.",
    )
    observed_generation: int | None = Field(
        None, ge=0, description="The .metadata.generation this status describes."
    )
    progress: Progress | None = Field(None, description="Training progress.")
    dataset: DatasetStatus | None = Field(None, description="Dataset validation results.")
    attempts: int = Field(0, ge=0, description="Training attempts started so far.")
    start_time: datetime | None = Field(None, description="When training first started.")
    completion_time: datetime | None = Field(None, description="When the run finished.")
    job_name: str | None = Field(None, description="Name of the current training Job.")
    checkpoint_uri: str | None = Field(None, description="URI of the latest checkpoint.")
    artifact_uri: str | None = Field(None, description="URI of the final adapter artifact.")
    adapter_ref: str | None = Field(None, description="Name of the Adapter created from it.")
    gpu_seconds: int | None = Field(None, ge=0, description="GPU time consumed, all attempts.")
    trained_tokens: int | None = Field(None, ge=0, description="Tokens trained on.")


class FineTuneJob(KubeObject):
    """FineTuneJob trains a LoRA or QLoRA adapter on a base model and a dataset and
    publishes it as an Adapter."""

    plural: ClassVar[str] = "finetunejobs"
    short_names: ClassVar[tuple[str, ...]] = ("ftj",)

    api_version: Literal["kubetune.io/v1alpha1"] = Field(
        "kubetune.io/v1alpha1", description="The API version of this object."
    )
    kind: Literal["FineTuneJob"] = Field("FineTuneJob", description="The kind of this object.")
    spec: FineTuneJobSpec = Field(description="The desired training run.")
    status: FineTuneJobStatus | None = Field(
        None, description="Observed state, written by the operator."
    )
