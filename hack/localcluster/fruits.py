"""A learnable synthetic task for training tests and the demo: every answer has a fixed format
("Answer: <colour>.") and the colour depends on the fruit in the question."""

from __future__ import annotations

import json
import random
from typing import Any

FRUITS = {
    "apple": "red",
    "banana": "yellow",
    "cherry": "red",
    "grape": "purple",
    "lemon": "yellow",
    "orange": "orange",
}


def fruit_records(count: int = 96, seed: int = 0) -> list[dict[str, Any]]:
    """Chat records of the learnable task."""
    rng = random.Random(seed)
    records = []
    for i in range(count):
        fruit = rng.choice(list(FRUITS))
        records.append(
            {
                "messages": [
                    {"role": "user", "content": f"What color is the {fruit}? ({i})"},
                    {"role": "assistant", "content": f"Answer: {FRUITS[fruit]}."},
                ]
            }
        )
    return records


def jsonl(records: list[dict[str, Any]]) -> bytes:
    return "\n".join(json.dumps(r) for r in records).encode()
