"""Training hyperparameters: the part of a FineTuneJob the trainer turns into a TRL
SFTConfig, a PEFT LoraConfig and a bitsandbytes BitsAndBytesConfig.

Names follow those libraries (camelCased) so that users of TRL or Axolotl recognise them.
"""

from enum import StrEnum
from typing import Literal

from pydantic import Field

from kubetune.api._base import FieldReason, KubeModel, Rule

DEFAULT_EPOCHS = 3


class QuantType(StrEnum):
    """The 4-bit data type of bitsandbytes."""

    NF4 = "nf4"
    FP4 = "fp4"


class ComputeDtype(StrEnum):
    """The dtype matrix multiplications run in."""

    BFLOAT16 = "bfloat16"
    FLOAT16 = "float16"
    FLOAT32 = "float32"


class Scheduler(StrEnum):
    """Learning-rate schedules, named as in transformers' SchedulerType."""

    LINEAR = "linear"
    COSINE = "cosine"
    COSINE_WITH_RESTARTS = "cosine_with_restarts"
    POLYNOMIAL = "polynomial"
    CONSTANT = "constant"
    CONSTANT_WITH_WARMUP = "constant_with_warmup"


class Optimizer(StrEnum):
    """Optimizers, named as in transformers' OptimizerNames."""

    ADAMW_TORCH = "adamw_torch"
    ADAMW_TORCH_FUSED = "adamw_torch_fused"
    ADAMW_8BIT = "adamw_8bit"
    PAGED_ADAMW_8BIT = "paged_adamw_8bit"
    PAGED_ADAMW_32BIT = "paged_adamw_32bit"
    ADAFACTOR = "adafactor"
    SGD = "sgd"


class Precision(StrEnum):
    """Mixed-precision mode for training."""

    AUTO = "auto"  # bf16 where the GPU supports it, else fp16 on GPU, fp32 on CPU
    BF16 = "bf16"
    FP16 = "fp16"
    FP32 = "fp32"


class QuantizationConfig(KubeModel):
    """How the base model is quantized for QLoRA (bitsandbytes)."""

    rules = (
        Rule(
            cel="!has(self.type) || self.bits == 4",
            message="type (nf4 or fp4) is only valid with bits 4",
            holds=lambda s: s.type is None or s.bits == 4,
            field_path=".type",
            reason=FieldReason.FORBIDDEN,
        ),
    )

    bits: Literal[4, 8] = Field(4, description="Bits per weight of the base model: 4 or 8.")
    type: QuantType | None = Field(
        None, description="4-bit data type, nf4 or fp4; only with bits 4. Unset: nf4."
    )
    double_quant: bool = Field(
        True, description="Also quantize the quantization constants (saves ~0.4 bit/param)."
    )
    compute_dtype: ComputeDtype = Field(
        ComputeDtype.BFLOAT16, description="Dtype of the matrix multiplications."
    )

    @property
    def effective_type(self) -> QuantType | None:
        """The 4-bit data type the trainer uses: nf4 unless set; none for 8 bits."""
        if self.bits != 4:
            return None
        return self.type or QuantType.NF4


class EarlyStopping(KubeModel):
    """Stop when the evaluation loss stops improving."""

    patience: int = Field(
        3, ge=1, le=100, description="Evaluations without improvement before stopping."
    )
    threshold: float = Field(
        0.0, ge=0, le=1, description="Minimum decrease of the eval loss that counts."
    )


class TrainingConfig(KubeModel):
    """Trainer hyperparameters, named after TRL's SFTConfig."""

    rules = (
        Rule(
            cel="!(has(self.epochs) && has(self.maxSteps))",
            message="epochs and maxSteps are mutually exclusive; set one",
            holds=lambda s: s.epochs is None or s.max_steps is None,
            field_path=".maxSteps",
            reason=FieldReason.FORBIDDEN,
        ),
    )

    epochs: int | None = Field(
        None,
        ge=1,
        le=1000,
        description=f"Passes over the training data. Unset (and no maxSteps): {DEFAULT_EPOCHS}.",
    )
    max_steps: int | None = Field(
        None, ge=1, le=10_000_000, description="Optimizer steps to train for, instead of epochs."
    )
    learning_rate: float = Field(2.0e-4, gt=0, lt=1, description="Peak learning rate, in (0, 1).")
    scheduler: Scheduler = Field(Scheduler.COSINE, description="Learning-rate schedule.")
    warmup_ratio: float = Field(
        0.03, ge=0, lt=1, description="Fraction of the steps spent warming up the learning rate."
    )
    weight_decay: float = Field(0.0, ge=0, le=1, description="AdamW weight decay.")
    max_grad_norm: float = Field(
        1.0, gt=0, le=1000, description="Gradient clipping by global norm."
    )
    optimizer: Optimizer = Field(Optimizer.ADAMW_TORCH, description="Optimizer.")
    batch_size: int = Field(4, ge=1, le=1024, description="Sequences per GPU per step.")
    gradient_accumulation_steps: int = Field(
        4,
        ge=1,
        le=1024,
        description="Steps whose gradients are summed before an optimizer step; the "
        "effective batch is batchSize x gradientAccumulationSteps x GPUs.",
    )
    max_seq_length: int = Field(
        2048, ge=16, le=131_072, description="Longer sequences are truncated to this many tokens."
    )
    packing: bool = Field(
        False, description="Pack several short sequences into each maxSeqLength window."
    )
    gradient_checkpointing: bool = Field(
        True, description="Recompute activations in the backward pass: less memory, ~20% slower."
    )
    precision: Precision = Field(Precision.AUTO, description="Mixed-precision mode.")
    seed: int = Field(42, ge=0, le=4_294_967_295, description="Random seed.")
    logging_steps: int = Field(
        10, ge=1, le=100_000, description="Steps between progress reports in status.progress."
    )
    eval_steps: int | None = Field(
        None,
        ge=1,
        le=10_000_000,
        description="Steps between evaluations. Unset: evaluate at the end of each epoch.",
    )
    save_steps: int | None = Field(
        None,
        ge=1,
        le=10_000_000,
        description="Steps between checkpoints streamed to S3. Unset: at the end of each epoch.",
    )
    early_stopping: EarlyStopping | None = Field(
        None, description="Stop when the eval loss stops improving; needs evaluation data."
    )

    @property
    def effective_epochs(self) -> int | None:
        """Epochs the trainer runs; None when training is bounded by maxSteps instead."""
        if self.max_steps is not None:
            return None
        return self.epochs or DEFAULT_EPOCHS
