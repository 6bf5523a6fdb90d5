"""Per-example attention over packed rows: the same outputs and gradients as transformers'
block-diagonal masked SDPA, and no example sees another."""

from __future__ import annotations

import pytest
import torch
from transformers import AutoConfig

from kubetune.api import LoraConfig, Precision
from kubetune_trainer import packed_attention
from kubetune_trainer.datasets.packing import Collator, pack
from kubetune_trainer.datasets.tokenization import TokenizedExample
from kubetune_trainer.modeling import load_model
from kubetune_trainer.packed_attention import packed_sdpa, segments, supports
from kubetune_trainer.sources import ModelRef

HEADS, KV_HEADS, DIM = 4, 2, 8
# Rows of example lengths: around the batch widths (16, 32, 64, 96), single tokens, a row that
# is one example, an example wider than any batch width below the row's (100), and rows ending
# in the collator's padding run (positions 0.. again, one more example as far as attention goes).
ROWS = [[15, 16, 17, 1, 15, 36], [100], [33, 3, 20, 8, 36], [1, 1, 1, 65, 32]]
WIDTH = 100


def position_ids(rows: list[list[int]]) -> torch.Tensor:
    return torch.tensor([[i for n in row for i in range(n)] for row in rows])


def masked_sdpa(query, key, value, rows):
    """What transformers computes for packed rows on CPU: a block-diagonal causal mask over
    the whole row, key/value heads repeated."""
    example = torch.tensor([[j for j, n in enumerate(row) for _ in range(n)] for row in rows])
    same = example[:, None, :, None] == example[:, None, None, :]
    mask = same & torch.ones(WIDTH, WIDTH, dtype=torch.bool).tril()
    repeat = HEADS // KV_HEADS
    out = torch.nn.functional.scaled_dot_product_attention(
        query, key.repeat_interleave(repeat, 1), value.repeat_interleave(repeat, 1), mask
    )
    return out.transpose(1, 2)


def inputs(seed: int = 0) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(seed)
    shapes = [(len(ROWS), h, WIDTH, DIM) for h in (HEADS, KV_HEADS, KV_HEADS)]
    return tuple(torch.randn(s, generator=generator, requires_grad=True) for s in shapes)


def test_examples_are_found_from_restarting_positions():
    assert segments(position_ids([[3, 2], [5]])) == [(0, 3), (3, 2), (5, 5)]
    assert segments(torch.tensor([[0, 1, 0, 1, 2], [5, 6, 7, 0, 1]])) == [
        (0, 2),
        (2, 3),
        (5, 3),
        (8, 2),
    ]


def test_outputs_and_gradients_equal_the_masked_row_attention():
    query, key, value = inputs()
    upstream = torch.randn(len(ROWS), WIDTH, HEADS, DIM)

    ours = packed_sdpa(query, key, value, position_ids(ROWS), scale=None)
    reference = masked_sdpa(query, key, value, ROWS)
    ours_grads = torch.autograd.grad(ours, (query, key, value), upstream)
    reference_grads = torch.autograd.grad(reference, (query, key, value), upstream)

    assert ours.shape == (len(ROWS), WIDTH, HEADS, DIM)
    torch.testing.assert_close(ours, reference, rtol=1e-5, atol=1e-5)
    for mine, theirs in zip(ours_grads, reference_grads, strict=True):
        torch.testing.assert_close(mine, theirs, rtol=1e-5, atol=1e-5)


def test_no_example_sees_another():
    """Changing every key and value outside one example leaves its outputs exactly as they
    were, and its outputs have no gradient with respect to any other token."""
    query, key, value = inputs()
    ids = position_ids(ROWS)
    start, size = 15, 16  # the second example of the first row
    inside = torch.zeros(len(ROWS), WIDTH, dtype=torch.bool)
    inside[0, start : start + size] = True

    out = packed_sdpa(query, key, value, ids, scale=None)
    noise = torch.randn_like(key) * (~inside)[:, None, :, None]
    changed = packed_sdpa(query, key + noise, value + noise, ids, scale=None)
    grads = torch.autograd.grad(out[inside].sum(), (query, key, value))

    assert torch.equal(out[inside], changed[inside])
    assert not torch.equal(out[~inside], changed[~inside])
    for grad in grads:
        assert grad.transpose(1, 2)[~inside].abs().max() == 0
        assert grad.transpose(1, 2)[inside].abs().max() > 0


def test_one_example_per_row_is_plain_causal_attention():
    query, key, value = inputs(1)
    plain = torch.nn.functional.scaled_dot_product_attention(
        query, key, value, is_causal=True, enable_gqa=True
    )

    ours = packed_sdpa(query, key, value, torch.arange(WIDTH)[None], scale=None)

    torch.testing.assert_close(ours, plain.transpose(1, 2))


@pytest.fixture(scope="module")
def models(tiny_model):
    """The trainer's model twice: transformers' SDPA, and per-example attention."""

    def loaded():
        return load_model(
            ModelRef(str(tiny_model)),
            lora=LoraConfig(dropout=0.0),
            quantization=None,
            precision=Precision.FP32,
            gradient_checkpointing=False,
            device="cpu",
        ).eval()

    sdpa, ours = loaded(), loaded()
    assert packed_attention.enable(ours)
    return sdpa, ours


EXAMPLES = [TokenizedExample(ids, list(ids)) for ids in ([5, 17, 33, 41, 9], [7, 8, 101], [300])]


def test_a_packed_model_computes_the_same_loss_and_logits(models):
    sdpa, ours = models
    batch = Collator(pad_token_id=3)(pack(EXAMPLES, 12) + pack(EXAMPLES[1:], 12))

    with torch.no_grad():
        expected, got = sdpa(**batch), ours(**batch)

    torch.testing.assert_close(got.logits, expected.logits, rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(got.loss, expected.loss, rtol=1e-5, atol=1e-6)


def test_a_padding_mask_is_still_honoured(models):
    """Left padding, so that the real tokens would see the padding were it not masked."""
    sdpa, ours = models
    batch = {
        "input_ids": torch.tensor([[3, 3, 7, 8, 101], [5, 17, 33, 41, 9]]),
        "attention_mask": torch.tensor([[0, 0, 1, 1, 1], [1, 1, 1, 1, 1]]),
    }

    with torch.no_grad():
        expected, got = sdpa(**batch), ours(**batch)
        unmasked = ours(input_ids=batch["input_ids"])

    real = batch["attention_mask"].bool()
    torch.testing.assert_close(got.logits[real], expected.logits[real], rtol=1e-4, atol=1e-5)
    assert not torch.allclose(unmasked.logits[0, 2:], expected.logits[0, 2:], atol=1e-3)


@pytest.mark.parametrize(
    ("model_type", "settings", "supported"),
    [
        ("llama", {}, True),
        ("qwen2", {"use_sliding_window": False, "sliding_window": 4096}, True),
        ("mistral", {"sliding_window": 4096}, False),
        ("mistral", {"sliding_window": None}, True),
        ("gemma2", {}, False),
    ],
)
def test_only_plain_causal_architectures_are_switched(model_type, settings, supported):
    assert supports(AutoConfig.for_model(model_type, **settings)) is supported
