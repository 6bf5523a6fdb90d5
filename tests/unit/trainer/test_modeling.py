"""The spec's quantization and LoRA fields map one to one onto bitsandbytes and PEFT."""

from __future__ import annotations

import pytest
import torch

from kubetune.api import LoraConfig, Precision, QuantizationConfig
from kubetune_trainer.modeling import lora_config, quantization_config, resolve_precision


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        (
            {},
            {
                "load_in_4bit": True,
                "bnb_4bit_quant_type": "nf4",
                "bnb_4bit_use_double_quant": True,
                "bnb_4bit_compute_dtype": torch.bfloat16,
            },
        ),
        (
            {"type": "fp4", "doubleQuant": False, "computeDtype": "float16"},
            {
                "load_in_4bit": True,
                "bnb_4bit_quant_type": "fp4",
                "bnb_4bit_use_double_quant": False,
                "bnb_4bit_compute_dtype": torch.float16,
            },
        ),
        ({"bits": 8}, {"load_in_8bit": True, "load_in_4bit": False}),
    ],
)
def test_quantization(spec, expected):
    config = quantization_config(QuantizationConfig.model_validate(spec))

    assert {key: getattr(config, key) for key in expected} == expected


@pytest.mark.parametrize(
    ("modules", "expected"),
    [
        (["all-linear"], "all-linear"),
        (["q_proj", "v_proj"], {"q_proj", "v_proj"}),
    ],
)
def test_lora(modules, expected):
    config = lora_config(
        LoraConfig(r=8, alpha=16, dropout=0.1, target_modules=modules, use_rslora=True)
    )

    assert (config.r, config.lora_alpha, config.lora_dropout) == (8, 16, 0.1)
    assert config.target_modules == expected
    assert config.use_rslora is True
    assert config.task_type == "CAUSAL_LM"


def test_auto_precision_is_fp32_without_a_gpu():
    if torch.cuda.is_available():
        pytest.skip("decides by the GPU's capabilities")
    assert resolve_precision(Precision.AUTO) == Precision.FP32
    assert resolve_precision(Precision.BF16) == Precision.BF16
