"""LoRA dropout: the cheaper mask has PEFT's distribution and behaves like nn.Dropout."""

from __future__ import annotations

import pytest
import torch
from torch import nn
from torch.utils.checkpoint import checkpoint

from kubetune.api import LoraConfig, Precision
from kubetune_trainer.lora_dropout import LoraDropout, install, quantized
from kubetune_trainer.modeling import load_model
from kubetune_trainer.sources import ModelRef

P = 0.05


def dropout(p: float = P) -> LoraDropout:
    return LoraDropout(p).train()


@pytest.mark.parametrize("p", [0.05, 0.1, 0.3, 0.5, 1e-3])
def test_p_is_kept_to_within_eight_millionths(p):
    assert abs(quantized(p) - p) < 8e-6


def test_drop_rate_is_p_in_every_lane_and_kept_values_are_scaled():
    """4M elements: the rate is p within 5 standard deviations, in each of the four 16-bit
    lanes of a draw (a draw whose top bit were never set would drop none in one lane)."""
    torch.manual_seed(0)
    x = torch.rand(2**20, 4) + 1

    out = dropout()(x)

    dropped = out == 0
    sigma = (P * (1 - P) / dropped.numel()) ** 0.5
    assert abs(dropped.float().mean().item() - quantized(P)) < 5 * sigma
    for lane in dropped.float().mean(dim=0).tolist():
        assert abs(lane - quantized(P)) < 5 * 2 * sigma
    torch.testing.assert_close(out[~dropped], x[~dropped] / (1 - quantized(P)))


def test_expected_output_is_the_input():
    torch.manual_seed(1)
    x = torch.full((4096, 1024), 3.0)

    mean = dropout()(x).mean().item()

    assert mean == pytest.approx(3.0, abs=3.0 * 5 * (P / (1 - P) / x.numel()) ** 0.5)


def test_gradient_goes_through_the_kept_elements_only():
    torch.manual_seed(2)
    x = torch.rand(64, 128, requires_grad=True)
    upstream = torch.randn(64, 128)

    out = dropout()(x)
    (grad,) = torch.autograd.grad(out, x, upstream)

    kept = out != 0
    torch.testing.assert_close(grad, torch.where(kept, upstream / (1 - quantized(P)), 0.0))


def test_the_mask_follows_torch_seed():
    x = torch.rand(256, 256) + 1
    torch.manual_seed(3)
    first = dropout()(x)
    torch.manual_seed(3)
    again = dropout()(x)
    other = dropout()(x)

    assert torch.equal(first, again)
    assert not torch.equal(first, other)


def test_checkpointed_recompute_draws_the_same_mask():
    """Gradient checkpointing re-runs the forward pass in backward; a different mask there
    would give a gradient for a mask the loss never saw."""
    layer = nn.Linear(64, 64)
    drop = dropout()
    x = torch.rand(32, 64, requires_grad=True)

    def block(inputs: torch.Tensor) -> torch.Tensor:
        return torch.tanh(layer(drop(inputs)))

    torch.manual_seed(4)
    (plain,) = torch.autograd.grad(block(x).sum(), x)
    torch.manual_seed(4)
    (recomputed,) = torch.autograd.grad(checkpoint(block, x, use_reentrant=False).sum(), x)

    torch.testing.assert_close(recomputed, plain)


def test_eval_mode_and_zero_p_leave_the_input_alone():
    x = torch.rand(32, 32)

    assert torch.equal(LoraDropout(P).eval()(x), x)
    assert torch.equal(dropout(0.0)(x), x)


def test_the_trainers_model_gets_it_on_every_adapted_module(tiny_model):
    model = load_model(
        ModelRef(str(tiny_model)),
        lora=LoraConfig(dropout=0.1),
        quantization=None,
        precision=Precision.FP32,
        gradient_checkpointing=False,
        device="cpu",
    )

    adapted = [
        m for m in model.modules() if isinstance(getattr(m, "lora_dropout", None), nn.ModuleDict)
    ]
    dropouts = [d for m in adapted for d in m.lora_dropout.values()]
    assert adapted
    assert all(type(d) is LoraDropout and d.p == 0.1 for d in dropouts)
    assert install(model) == 0  # nothing left to swap
