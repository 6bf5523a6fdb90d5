"""Unpacked rows are batched by length, in an order fixed by the seed and the epoch alone."""

from __future__ import annotations

import random

import pytest

from kubetune.api import LoraConfig, Precision
from kubetune_trainer import packed_attention
from kubetune_trainer.datasets.packing import LengthGroupedOrder
from kubetune_trainer.datasets.preparing import PreparedDataset
from kubetune_trainer.datasets.tokenization import TokenizedExample
from kubetune_trainer.modeling import load_model
from kubetune_trainer.sources import ModelRef
from kubetune_trainer.training import build_trainer, training_arguments
from support.factories import make_finetunejob

# Long-tailed, like real instruction data: most examples short, a few near the limit.
LENGTHS = [min(256, max(4, round(random.Random(i).lognormvariate(3.3, 0.9)))) for i in range(96)]


def padding_share(order: list[int], batch: int) -> float:
    """The share of padded tokens when rows are batched in ``order`` and padded to the
    longest of each batch."""
    padded = real = 0
    for start in range(0, len(order), batch):
        widths = [LENGTHS[i] for i in order[start : start + batch]]
        padded += max(widths) * len(widths)
        real += sum(widths)
    return 1 - real / padded


def test_the_order_is_a_permutation_fixed_by_seed_and_epoch():
    order = LengthGroupedOrder(LENGTHS, batch_size=4, seed=7)

    first = list(order)
    assert sorted(first) == list(range(len(LENGTHS)))
    assert list(LengthGroupedOrder(LENGTHS, batch_size=4, seed=7)) == first
    order.set_epoch(1)
    second = list(order)
    assert second != first
    resumed = LengthGroupedOrder(LENGTHS, batch_size=4, seed=7)
    resumed.set_epoch(1)
    assert list(resumed) == second
    assert list(LengthGroupedOrder(LENGTHS, batch_size=4, seed=8)) != first


def test_length_grouped_batches_carry_less_padding_than_random_ones():
    grouped = list(LengthGroupedOrder(LENGTHS, batch_size=4, seed=0))
    shuffled = list(range(len(LENGTHS)))
    random.Random(0).shuffle(shuffled)

    assert padding_share(grouped, 4) < 0.25 * padding_share(shuffled, 4)
    widths = [max(LENGTHS[i] for i in grouped[start : start + 4]) for start in range(0, 96, 4)]
    assert widths[0] == max(LENGTHS), "the longest batch comes first"
    assert widths[1:] != sorted(widths[1:], reverse=True), "no drift from long to short"


def trainer_for(tmp_path, tiny_model, tokenizer, *, packing: bool):
    spec = make_finetunejob(
        method="lora",
        training={
            "maxSteps": 2,
            "batchSize": 4,
            "gradientAccumulationSteps": 2,
            "packing": packing,
        },
    ).spec
    examples = [TokenizedExample([5] * n, [5] * n) for n in LENGTHS]
    model = load_model(
        ModelRef(str(tiny_model)),
        lora=LoraConfig(),
        quantization=None,
        precision=Precision.FP32,
        gradient_checkpointing=False,
        device="cpu",
    )
    args = training_arguments(spec, output_dir=tmp_path, has_eval=False, precision=Precision.FP32)
    dataset = PreparedDataset(examples, [], {"valid": True, "sha256": "0" * 64})
    return build_trainer(model, tokenizer, dataset, spec, args, callbacks=[])


def test_the_trainer_draws_unpacked_rows_in_length_grouped_batches(tmp_path, tiny_model, tokenizer):
    trainer = trainer_for(tmp_path, tiny_model, tokenizer, packing=False)

    batches = list(trainer.get_train_dataloader())

    real = sum(int(b["attention_mask"].sum()) for b in batches)
    padded = sum(b["input_ids"].numel() for b in batches)
    expected = list(LengthGroupedOrder(LENGTHS, batch_size=4, seed=42))
    assert 1 - real / padded == pytest.approx(padding_share(expected, 4))
    assert batches[0]["input_ids"].shape[1] == max(LENGTHS), "the longest batch comes first"


def test_the_trainer_draws_packed_rows_at_random(tmp_path, tiny_model, tokenizer):
    trainer = trainer_for(tmp_path, tiny_model, tokenizer, packing=True)

    assert not isinstance(trainer._get_train_sampler(), LengthGroupedOrder)


def test_only_packed_rows_on_cpu_get_per_example_attention(tmp_path, tiny_model, tokenizer):
    packed = trainer_for(tmp_path / "packed", tiny_model, tokenizer, packing=True)
    plain = trainer_for(tmp_path / "plain", tiny_model, tokenizer, packing=False)

    assert packed.model.get_base_model().config._attn_implementation == packed_attention.NAME
    assert plain.model.get_base_model().config._attn_implementation == "sdpa"
