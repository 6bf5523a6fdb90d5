"""Batch examples, optionally packing several into one sequence without letting them mix.

Packing puts short examples side by side in one ``maxSeqLength`` row so that no compute is
spent on padding. Examples must not see each other: position ids restart at 0 for every
example and no attention mask is passed, which is how transformers recognises packed rows
(varlen flash attention on GPUs; a block-diagonal causal mask for SDPA and eager attention).
The first label of every example is masked too, so no token is trained to predict the
start of the next, unrelated example.

Unpacked rows are drawn in length-grouped order instead (see :class:`LengthGroupedOrder`), so
that a batch's rows are of similar length and little of it is padding.
"""

from __future__ import annotations

import bisect
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from kubetune_trainer.datasets.tokenization import IGNORE_INDEX, TokenizedExample

Features = dict[str, list[int]]


def plan_bins(lengths: Sequence[int], capacity: int) -> list[list[int]]:
    """Best-fit decreasing bin packing of example indices; deterministic for equal input."""
    order = sorted(range(len(lengths)), key=lambda i: (-lengths[i], i))
    bins: list[list[int]] = []
    free: list[tuple[int, int]] = []  # (remaining capacity, bin index), kept sorted
    for index in order:
        size = min(lengths[index], capacity)
        slot = bisect.bisect_left(free, (size, -1))
        if slot < len(free):
            remaining, bin_index = free.pop(slot)
        else:
            remaining, bin_index = capacity, len(bins)
            bins.append([])
        bins[bin_index].append(index)
        bisect.insort(free, (remaining - size, bin_index))
    return bins


def pack(examples: Sequence[TokenizedExample], max_length: int) -> list[Features]:
    """Rows of packed examples with per-example position ids and masked first labels."""
    rows = []
    for indices in plan_bins([len(e) for e in examples], max_length):
        row: Features = {"input_ids": [], "labels": [], "position_ids": []}
        for index in sorted(indices):
            example = examples[index].truncated(max_length)
            row["input_ids"] += example.input_ids
            row["labels"] += [IGNORE_INDEX, *example.labels[1:]]
            row["position_ids"] += list(range(len(example)))
        rows.append(row)
    return rows


def unpacked(examples: Sequence[TokenizedExample]) -> list[Features]:
    """One row per example."""
    return [{"input_ids": list(e.input_ids), "labels": list(e.labels)} for e in examples]


class LengthGroupedOrder:
    """Batches of rows of similar length, in an order drawn from the seed and the epoch.

    Rows are shuffled, cut into mega-batches of ``MEGA_BATCHES`` batches, sorted by length
    inside each and cut into batches of ``batch_size``; the batches are then shuffled (so
    training does not drift from long to short examples), the longest first (so running out
    of memory happens at once). Drawn from the seed and the epoch only, a run resumed in a
    later epoch draws the same batches as an uninterrupted one. (transformers' own sampler
    draws from the global RNG and, on small datasets, groups within only 4x the batch.)
    """

    MEGA_BATCHES = 50

    def __init__(self, lengths: Sequence[int], batch_size: int, seed: int) -> None:
        self.lengths, self.batch_size, self.seed = list(lengths), batch_size, seed
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        """Called by accelerate's data loader at the start of every epoch."""
        self.epoch = epoch

    def __len__(self) -> int:
        return len(self.lengths)

    def __iter__(self) -> Iterator[int]:
        import torch

        generator = torch.Generator().manual_seed(self.seed + self.epoch)
        order = torch.randperm(len(self.lengths), generator=generator).tolist()
        mega, size = self.batch_size * self.MEGA_BATCHES, self.batch_size
        batches = []
        for start in range(0, len(order), mega):
            group = sorted(order[start : start + mega], key=lambda i: -self.lengths[i])
            batches += [group[i : i + size] for i in range(0, len(group), size)]
        if not batches:
            return iter(())
        batches = [batches[i] for i in torch.randperm(len(batches), generator=generator)]
        longest = max(range(len(batches)), key=lambda b: self.lengths[batches[b][0]])
        batches.insert(0, batches.pop(longest))
        return iter([index for batch in batches for index in batch])


@dataclass(frozen=True)
class Collator:
    """Pads a batch to its longest row.

    Packed rows are padded with a run of positions of their own (seen as one more, ignored,
    sequence); unpacked rows get an attention mask instead.
    """

    pad_token_id: int

    def __call__(self, features: list[Features]) -> dict[str, Any]:
        import torch

        width = max(len(f["input_ids"]) for f in features)
        packed = "position_ids" in features[0]
        batch: dict[str, list[list[int]]] = {"input_ids": [], "labels": []}
        batch["position_ids" if packed else "attention_mask"] = []
        for feature in features:
            pad = width - len(feature["input_ids"])
            batch["input_ids"].append(feature["input_ids"] + [self.pad_token_id] * pad)
            batch["labels"].append(feature["labels"] + [IGNORE_INDEX] * pad)
            if packed:
                batch["position_ids"].append(feature["position_ids"] + list(range(pad)))
            else:
                batch["attention_mask"].append([1] * len(feature["input_ids"]) + [0] * pad)
        return {key: torch.tensor(value, dtype=torch.long) for key, value in batch.items()}
