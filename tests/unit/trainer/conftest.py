"""A tiny model and tokenizer, built once per session for the trainer's unit tests."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from support.tinymodel import build_tiny_model


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A directory with a random-init tiny Llama model and its tokenizer."""
    return build_tiny_model(tmp_path_factory.mktemp("tiny-model"))


@pytest.fixture(scope="session")
def tokenizer(tiny_model: Path) -> Any:
    """The tiny model's tokenizer (fast, with a Llama-3-style chat template)."""
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(tiny_model)
