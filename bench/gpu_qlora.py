"""QLoRA on a GPU: our trainer against a plain TRL SFTTrainer + peft baseline, in one call.

The model has Llama-3.2-1B's shape (hidden 2048, 16 layers, 32 heads, 8 kv heads,
intermediate 8192, vocabulary 128256), random-initialised on the GPU (nothing downloaded),
saved in bfloat16 and loaded 4-bit nf4 with double quantization and bfloat16 compute by
both sides. Same data (log-normal lengths up to maxSeqLength), LoRA (r 16, alpha 32, all
linear layers), optimizer, batch (4 rows x 2 accumulation) and optimizer steps; each side
without and with packing, in its own process, rounds alternating order. Measured: time per
optimizer step and tokens/s after the first (warm-up) step, and peak GPU memory of the
training loop (``torch.cuda.max_memory_allocated``). Prints ratios, writes JSON.

    python bench/gpu_qlora.py                          # on a GPU machine (a few minutes)
    python bench/gpu_qlora.py --smoke --out X          # tiny, on CPU, no packing: it runs
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path
from typing import Any

from _common import (
    LLAMA_3_2_1B,
    RESULTS,
    TINY,
    build_data,
    build_model,
    machine,
    print_table,
    write_json,
)
from bench_compare import SCENARIOS, TABLE_COLUMNS, compare, run_rounds, summarize, table_rows


def _arguments() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument(
        "--smoke", action="store_true", help="tiny shape on CPU, 3 steps, no packing"
    )
    parser.add_argument("--steps", type=int, help="optimizer steps per run (default 12)")
    parser.add_argument("--repeats", type=int, help="rounds of the scenarios (default 2)")
    parser.add_argument("--max-seq-length", type=int, help="default 1024")
    parser.add_argument("--out", type=Path, help="results JSON (default bench/results/gpu.json)")
    return parser.parse_args()


def main() -> None:
    import torch

    args = _arguments()
    gpu = torch.cuda.is_available()
    if not gpu and not args.smoke:
        raise SystemExit("no GPU here: run with --smoke to check the script on CPU")
    shape = TINY if args.smoke else LLAMA_3_2_1B
    steps = args.steps or (3 if args.smoke else 12)
    repeats = args.repeats or (1 if args.smoke else 2)
    max_length = args.max_seq_length or (64 if args.smoke else 1024)
    batch, accumulation = (2, 2) if args.smoke else (4, 2)
    out = args.out or RESULTS / "gpu.json"

    with tempfile.TemporaryDirectory(prefix="bench-gpu-") as tmp:
        work = Path(tmp)
        started = time.monotonic()
        model = build_model(
            work / "model",
            shape,
            device="cuda" if gpu else "cpu",
            dtype="bfloat16" if gpu else "float32",
        )
        data = build_data(
            work / "train.jsonl",
            work / "model",
            count=steps * batch * accumulation,
            max_length=max_length,
        )
        print(f"model: {model}\ndata: {data}\nbuilt in {time.monotonic() - started:.1f} s")
        job: dict[str, Any] = {
            "model_dir": str(work / "model"),
            "data_path": str(work / "train.jsonl"),
            "steps": steps,
            "batch_size": batch,
            "gradient_accumulation_steps": accumulation,
            "max_seq_length": max_length,
            "quantization": True,
            "precision": "bf16" if gpu else "fp32",
        }
        # The smoke run proves the QLoRA path (4-bit loading, k-bit preparation) on both
        # sides; packing is the trainer benchmark's smoke run's to prove.
        scenarios = SCENARIOS[:2] if args.smoke else SCENARIOS
        runs = run_rounds(job, work, repeats=repeats, timeout=1200, scenarios=scenarios)

    summary = summarize(runs)
    speed = "steadyTokensPerSecond"
    memory = "peakGpuBytes" if gpu else "peakRssBytes"
    rows = compare(summary, speed=speed, memory=memory, memory_tolerance=0.0)
    print_table(
        f"QLoRA 4-bit nf4, {shape.describe()}, {machine().get('gpu', 'CPU')}, medians of "
        f"{repeats} rounds",
        [c.format(unit="tok/s") for c in TABLE_COLUMNS],
        table_rows(rows, "tok/s"),
    )
    print_table(
        "per scenario (medians, after the first step)",
        ["scenario", "s/step", "tok/s", "padding", "peak GPU MiB", "peak RSS MiB", "setup s"],
        [
            [
                name,
                f"{s['steadyStepSeconds']:.3f}",
                f"{s['steadyTokensPerSecond']:.0f}",
                f"{s['paddingShare']:.0%}",
                f"{s['peakGpuBytes'] / 2**20:.0f}" if s["peakGpuBytes"] else "-",
                f"{s['peakRssBytes'] / 2**20:.0f}",
                f"{s['setupSeconds']:.1f}",
            ]
            for name, s in summary.items()
        ],
    )
    write_json(
        out,
        {
            "benchmark": "gpu-qlora",
            "smoke": args.smoke,
            "machine": machine(),
            "model": model,
            "data": data,
            "config": {
                **{k: v for k, v in job.items() if k not in ("model_dir", "data_path")},
                "effectiveBatch": f"{batch * accumulation} rows of <= {max_length} tokens",
                "repeats": repeats,
                "quantization": "4-bit nf4, double quantization",
                "lora": {"r": 16, "alpha": 32, "dropout": 0.05, "targetModules": "all-linear"},
            },
            "scenarios": summary,
            "comparisons": rows,
            "runs": runs,
        },
    )
    print(f"results: {out}")


if __name__ == "__main__":
    main()
