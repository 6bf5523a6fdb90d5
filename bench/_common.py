"""What the benchmarks share: a random-init Llama and variable-length data built locally,
workers run in subprocesses of their own, medians, ratios and the table that shows them.

Nothing is downloaded. The tokenizer is the test suite's locally trained byte-level BPE (with
its chat template); the model is a ``LlamaForCausalLM`` of the asked shape, random-initialised
with a fixed seed, so every run of a benchmark trains the same weights on the same data.
"""

from __future__ import annotations

import json
import math
import os
import platform
import random
import statistics
import subprocess
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
BENCH = ROOT / "bench"
RESULTS = BENCH / "results"
DOCS = ROOT / "docs" / "benchmarks"
PYTHONPATH = [ROOT / p for p in ("hack", "operator", "tests", "trainer_image")] + [BENCH]
sys.path.extend(str(p) for p in PYTHONPATH if str(p) not in sys.path)  # runs from a checkout


def environment() -> dict[str, str]:
    """The environment for worker subprocesses: source roots on the path, offline hub."""
    env = dict(os.environ)
    paths = [str(p) for p in PYTHONPATH]
    if env.get("PYTHONPATH"):
        paths.append(env["PYTHONPATH"])
    env["PYTHONPATH"] = os.pathsep.join(paths)
    env.setdefault("HF_HUB_OFFLINE", "1")
    env.setdefault("TOKENIZERS_PARALLELISM", "false")
    return env


def _tokenizer_builder() -> Any:
    """The test suite's tiny-model builder (it moves to the harness; import either place)."""
    try:
        from localcluster.tinymodel import build_tiny_model
    except ImportError:
        from support.tinymodel import build_tiny_model
    return build_tiny_model


@dataclass(frozen=True)
class Shape:
    """A Llama architecture; ``vocab_size`` None: the tokenizer's own vocabulary."""

    hidden_size: int
    num_layers: int
    num_heads: int
    num_kv_heads: int
    intermediate_size: int
    vocab_size: int | None = None
    max_positions: int = 2048

    def describe(self) -> str:
        return (
            f"Llama, hidden {self.hidden_size}, {self.num_layers} layers, {self.num_heads} "
            f"heads ({self.num_kv_heads} kv), intermediate {self.intermediate_size}"
        )


SMALL = Shape(hidden_size=512, num_layers=6, num_heads=8, num_kv_heads=4, intermediate_size=1024)
TINY = Shape(hidden_size=64, num_layers=2, num_heads=4, num_kv_heads=2, intermediate_size=128)
LLAMA_3_2_1B = Shape(
    hidden_size=2048,
    num_layers=16,
    num_heads=32,
    num_kv_heads=8,
    intermediate_size=8192,
    vocab_size=128256,
    max_positions=8192,
)


def build_model(path: Path, shape: Shape, *, device: str = "cpu", dtype: str = "float32") -> dict:
    """Tokenizer plus a random-init model of ``shape`` in ``path``; returns its description."""
    import torch
    from transformers import AutoTokenizer, LlamaConfig, LlamaForCausalLM

    _tokenizer_builder()(path, vocab_size=2048, max_positions=shape.max_positions)
    tokenizer = AutoTokenizer.from_pretrained(path)
    config = LlamaConfig(
        vocab_size=shape.vocab_size or len(tokenizer),
        hidden_size=shape.hidden_size,
        intermediate_size=shape.intermediate_size,
        num_hidden_layers=shape.num_layers,
        num_attention_heads=shape.num_heads,
        num_key_value_heads=shape.num_kv_heads,
        max_position_embeddings=shape.max_positions,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
        tie_word_embeddings=False,
    )
    torch.manual_seed(0)
    with torch.device(device):
        model = LlamaForCausalLM(config).to(getattr(torch, dtype))
    model.save_pretrained(path)
    parameters = sum(p.numel() for p in model.parameters())
    del model
    return {
        "shape": shape.describe(),
        "vocab": config.vocab_size,
        "tokenizerVocab": len(tokenizer),
        "parameters": parameters,
    }


def build_data(
    path: Path, model_dir: Path, *, count: int, max_length: int, seed: int = 0
) -> dict[str, Any]:
    """``count`` text records whose token lengths (BOS and EOS included) follow a long tail
    between 16 and ``max_length``: log-normal, median max_length / 8, clipped at the limit.
    The first record is at the limit, as the clipped tail of any sizeable dataset is, so
    that the widest batch (and peak memory) does not depend on the luck of a small sample."""
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    words = sorted({w for w in tokenizer.get_vocab() if w.startswith("Ġ") and w[1:].isalpha()})
    costs = {w: len(tokenizer(" " + w[1:], add_special_tokens=False)["input_ids"]) for w in words}
    singles = [w for w in words if costs[w] == 1]
    rng = random.Random(seed)
    median = max(16.0, max_length / 8)
    lengths = []
    with path.open("w") as handle:
        for index in range(count):
            drawn = round(rng.lognormvariate(math.log(median), 1.0))
            target = max_length if index == 0 else min(max_length, max(16, drawn))
            chosen, used = [], 2  # BOS and EOS
            while used < target:
                word = rng.choice(words if target - used > 1 else singles)
                if used + costs[word] <= target:
                    chosen.append(word[1:])
                    used += costs[word]
            lengths.append(used)
            handle.write(json.dumps({"text": " " + " ".join(chosen)}) + "\n")
    return {
        "records": count,
        "tokens": sum(lengths),
        "meanLength": round(statistics.mean(lengths), 1),
        "medianLength": statistics.median(lengths),
        "maxLength": max(lengths),
        "minLength": min(lengths),
    }


def run_worker(job: dict[str, Any], workdir: Path, name: str, *, timeout: float) -> dict:
    """One ``bench_sft.py`` run in a subprocess of its own (clean memory accounting)."""
    job_path, out_path = workdir / f"{name}.job.json", workdir / f"{name}.out.json"
    job_path.write_text(json.dumps(job))
    out_path.unlink(missing_ok=True)
    completed = subprocess.run(
        [sys.executable, str(BENCH / "bench_sft.py"), str(job_path), str(out_path)],
        env=environment(),
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    if completed.returncode != 0 or not out_path.is_file():
        raise RuntimeError(
            f"worker {name} failed ({completed.returncode}):\n{completed.stderr[-4000:]}"
        )
    return json.loads(out_path.read_text())


def ratio(ours: float, theirs: float) -> float:
    return ours / theirs if theirs else math.inf


def median(values: Sequence[float]) -> float:
    return float(statistics.median(values))


def machine() -> dict[str, Any]:
    """Where the numbers were measured."""
    import torch

    info: dict[str, Any] = {
        "platform": platform.platform(),
        "python": platform.python_version(),
        "cpus": os.cpu_count(),
        "torch": torch.__version__,
        "torchThreads": torch.get_num_threads(),
    }
    try:
        info["cpu"] = next(
            line.split(":", 1)[1].strip()
            for line in Path("/proc/cpuinfo").read_text().splitlines()
            if line.startswith("model name")
        )
    except (OSError, StopIteration):
        info["cpu"] = platform.processor()
    if torch.cuda.is_available():
        info["gpu"] = torch.cuda.get_device_name(0)
    return info


def verdict(value: float, target: float, *, higher_is_better: bool = True) -> str:
    ok = value >= target if higher_is_better else value <= target
    return "PASS" if ok else "FAIL"


def print_table(title: str, columns: Sequence[str], rows: Sequence[Sequence[Any]]) -> None:
    """A table on the terminal (rich when it is installed, plain text otherwise)."""
    try:
        from rich.console import Console
        from rich.table import Table
    except ImportError:
        print(title)
        for row in [columns, *rows]:
            print("  ".join(f"{cell!s:>14}" for cell in row))
        return
    table = Table(title=title)
    for column in columns:
        table.add_column(column, justify="right" if column != columns[0] else "left")
    for row in rows:
        table.add_row(*(str(cell) for cell in row))
    Console(width=160).print(table)


def write_json(path: Path, data: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, indent=2) + "\n")
