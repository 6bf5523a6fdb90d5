"""Packed examples do not see each other: the model computes the same as it would for each alone."""

from __future__ import annotations

import pytest
import torch

from kubetune.api import LoraConfig, Precision
from kubetune_trainer.datasets.packing import Collator, pack, plan_bins, unpacked
from kubetune_trainer.datasets.tokenization import IGNORE_INDEX, TokenizedExample
from kubetune_trainer.modeling import load_model
from kubetune_trainer.sources import ModelRef


@pytest.fixture(scope="module")
def model(tiny_model):
    """The model as the trainer sets it up (LoRA on top; the adapter starts as a no-op)."""
    loaded = load_model(
        ModelRef(str(tiny_model)),
        lora=LoraConfig(),
        quantization=None,
        precision=Precision.FP32,
        gradient_checkpointing=False,
        device="cpu",
    )
    return loaded.eval()


def example(ids: list[int]) -> TokenizedExample:
    return TokenizedExample(ids, list(ids))


EXAMPLES = [example([5, 17, 33, 41, 9]), example([7, 8, 101, 250]), example([300, 12, 13])]


@pytest.mark.parametrize(
    ("lengths", "capacity", "bins"),
    [
        ([5, 4, 3], 12, [[0, 1, 2]]),
        ([6, 6, 6], 12, [[0, 1], [2]]),
        ([7, 5, 3, 2], 8, [[0], [1, 2], [3]]),
        ([2, 7, 3, 5], 8, [[1], [3, 2], [0]]),
        ([20], 8, [[0]]),
    ],
)
def test_best_fit_decreasing_bins(lengths, capacity, bins):
    assert plan_bins(lengths, capacity) == bins


def test_every_packed_row_fits_and_every_example_is_used_once():
    examples = [example(list(range(1, n + 1))) for n in (3, 9, 4, 7, 1, 8, 2, 6, 5, 10)]

    rows = pack(examples, 12)

    assert all(len(r["input_ids"]) <= 12 for r in rows)
    assert sum(len(r["input_ids"]) for r in rows) == sum(len(e) for e in examples)
    starts = sum(r["position_ids"].count(0) for r in rows)
    assert starts == len(examples)


def test_positions_restart_and_first_labels_are_masked_per_example():
    row = pack(EXAMPLES, 16)[0]

    assert row["position_ids"] == [0, 1, 2, 3, 4, 0, 1, 2, 3, 0, 1, 2]
    assert [i for i, label in enumerate(row["labels"]) if label == IGNORE_INDEX] == [0, 5, 9]


def test_packed_logits_equal_each_example_alone(model):
    batch = Collator(pad_token_id=3)(pack(EXAMPLES, 16))
    assert "attention_mask" not in batch

    with torch.no_grad():
        packed = model(input_ids=batch["input_ids"], position_ids=batch["position_ids"]).logits[0]
        alone = [model(input_ids=torch.tensor([e.input_ids])).logits[0] for e in EXAMPLES]

    torch.testing.assert_close(packed, torch.cat(alone), rtol=1e-4, atol=1e-5)


def test_naive_concatenation_would_leak_between_examples(model):
    """The control: without restarted positions the later examples' logits change."""
    ids = torch.tensor([[token for e in EXAMPLES for token in e.input_ids]])

    with torch.no_grad():
        naive = model(input_ids=ids).logits[0]
        alone = torch.cat(
            [model(input_ids=torch.tensor([e.input_ids])).logits[0] for e in EXAMPLES]
        )

    assert not torch.allclose(naive[5:], alone[5:], atol=1e-3)


def test_packed_loss_equals_the_token_weighted_loss_of_the_examples(model):
    batch = Collator(pad_token_id=3)(pack(EXAMPLES, 16) + pack(EXAMPLES[:1], 16))

    with torch.no_grad():
        packed = model(**batch).loss
        losses = [
            (
                model(input_ids=torch.tensor([e.input_ids]), labels=torch.tensor([e.labels])).loss,
                len(e) - 1,
            )
            for e in EXAMPLES
        ]
    tokens = sum(n for _, n in losses) + len(EXAMPLES[0]) - 1
    expected = (sum(loss * n for loss, n in losses) + losses[0][0] * losses[0][1]) / tokens

    torch.testing.assert_close(packed, expected, rtol=1e-4, atol=1e-5)


def test_unpacked_rows_are_padded_with_an_attention_mask():
    batch = Collator(pad_token_id=3)(unpacked(EXAMPLES[1:]))

    assert batch["input_ids"].tolist() == [[7, 8, 101, 250], [300, 12, 13, 3]]
    assert batch["attention_mask"].tolist() == [[1, 1, 1, 1], [1, 1, 1, 0]]
    assert batch["labels"][1, 3].item() == IGNORE_INDEX
