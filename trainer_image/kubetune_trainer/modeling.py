"""Load the tokenizer and the base model, quantize it for QLoRA, and wrap it with LoRA.

The spec's fields map one to one onto bitsandbytes' ``BitsAndBytesConfig`` and PEFT's
``LoraConfig``. Whatever the method, the model is set up so that packed batches stay
separate: ``use_cache`` is off, because transformers only derives per-example attention from
position ids when no KV cache is in play. LoRA dropout is PEFT's, drawn more cheaply on CPU
(:mod:`kubetune_trainer.lora_dropout`).
"""

from __future__ import annotations

from typing import Any

from kubetune.api import (
    ComputeDtype,
    LoraConfig,
    Precision,
    QuantizationConfig,
    Reason,
)
from kubetune_trainer.datasets.tokenization import ensure_chat_template
from kubetune_trainer.errors import TrainerError
from kubetune_trainer.sources import ModelRef

_DTYPES = {
    ComputeDtype.BFLOAT16: "bfloat16",
    ComputeDtype.FLOAT16: "float16",
    ComputeDtype.FLOAT32: "float32",
}


def resolve_precision(precision: Precision) -> Precision:
    """``auto``: bf16 on GPUs that support it, fp16 on other GPUs, fp32 on CPU."""
    import torch

    if precision != Precision.AUTO:
        return precision
    if not torch.cuda.is_available():
        return Precision.FP32
    return Precision.BF16 if torch.cuda.is_bf16_supported() else Precision.FP16


def load_tokenizer(ref: ModelRef) -> Any:
    """The base model's fast tokenizer, with a pad token and a chat template."""
    from transformers import AutoTokenizer

    try:
        tokenizer = AutoTokenizer.from_pretrained(
            ref.location, revision=ref.revision, token=ref.token
        )
    except (OSError, ValueError) as exc:
        raise TrainerError(
            Reason.BASE_MODEL_NOT_FOUND, f"cannot load the tokenizer of {ref.location}: {exc}"
        ) from exc
    if not tokenizer.is_fast:
        raise TrainerError(
            Reason.BASE_MODEL_NOT_FOUND, f"{ref.location} has no fast tokenizer (tokenizer.json)"
        )
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    ensure_chat_template(tokenizer)
    return tokenizer


def quantization_config(quantization: QuantizationConfig) -> Any:
    """bitsandbytes settings: 4-bit (nf4/fp4, double quantization) or 8-bit."""
    import torch
    from transformers import BitsAndBytesConfig

    if quantization.bits == 8:
        return BitsAndBytesConfig(load_in_8bit=True)
    return BitsAndBytesConfig(
        load_in_4bit=True,
        bnb_4bit_quant_type=str(quantization.effective_type),
        bnb_4bit_use_double_quant=quantization.double_quant,
        bnb_4bit_compute_dtype=getattr(torch, _DTYPES[quantization.compute_dtype]),
    )


def lora_config(lora: LoraConfig) -> Any:
    """PEFT's LoraConfig for causal language modelling."""
    from peft import LoraConfig as PeftLoraConfig

    modules = lora.target_modules
    return PeftLoraConfig(
        r=lora.r,
        lora_alpha=lora.alpha,
        lora_dropout=lora.dropout,
        target_modules="all-linear" if modules == ["all-linear"] else list(modules),
        use_rslora=lora.use_rslora,
        use_dora=lora.use_dora,
        bias="none",
        task_type="CAUSAL_LM",
    )


def load_model(
    ref: ModelRef,
    *,
    lora: LoraConfig,
    quantization: QuantizationConfig | None,
    precision: Precision,
    gradient_checkpointing: bool,
    device: Any,
) -> Any:
    """The base model (quantized when asked) with trainable LoRA layers on top."""
    import torch
    from peft import get_peft_model, prepare_model_for_kbit_training
    from transformers import AutoModelForCausalLM

    from kubetune_trainer import lora_dropout

    kwargs: dict[str, Any] = {"revision": ref.revision, "token": ref.token}
    if quantization is not None:
        kwargs["quantization_config"] = quantization_config(quantization)
        kwargs["device_map"] = {"": device}
        kwargs["dtype"] = getattr(torch, _DTYPES[quantization.compute_dtype])
    else:
        kwargs["dtype"] = {Precision.BF16: torch.bfloat16, Precision.FP16: torch.float16}.get(
            precision, torch.float32
        )
    try:
        model = AutoModelForCausalLM.from_pretrained(ref.location, **kwargs)
    except (OSError, ValueError) as exc:
        raise TrainerError(
            Reason.BASE_MODEL_NOT_FOUND, f"cannot load the model {ref.location}: {exc}"
        ) from exc
    model.config.use_cache = False
    if quantization is not None:
        model = prepare_model_for_kbit_training(
            model,
            use_gradient_checkpointing=gradient_checkpointing,
            gradient_checkpointing_kwargs={"use_reentrant": False},
        )
    model = get_peft_model(model, lora_config(lora))
    lora_dropout.install(model)
    return model
