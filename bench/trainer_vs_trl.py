"""Our trainer against a plain TRL SFTTrainer + peft baseline, on CPU, in the same run.

Same random-init Llama (hidden 512, 6 layers by default), same variable-length text records
(log-normal token lengths between 16 and maxSeqLength), same LoRA config (r 16, alpha 32,
all linear layers), same optimizer (AdamW, lr 2e-4, cosine), same effective batch in
sequences (rows: batch 4 x accumulation 2 = 8 rows of at most maxSeqLength tokens per
optimizer step) and the same number of optimizer steps. Without packing the data is exactly
one epoch, so both sides see every example, the longest included (peak memory is comparable).

Each run is a subprocess of its own (peak RSS is that process's), single-threaded by default
so that the two sides share the machine alike; scenarios alternate order across repeats.
Tokens are real (non-pad) tokens trained on. Targets are judged on tokens per CPU-second of
the training loop (what one dedicated core would do; a shared machine's wall clock depends on
its other load); wall-clock tokens/s is reported beside it.

    python bench/trainer_vs_trl.py                     # full run, writes results and plot
    python bench/trainer_vs_trl.py --smoke --out X     # seconds-long check that it works
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path
from typing import Any

from _common import (
    DOCS,
    RESULTS,
    SMALL,
    TINY,
    build_data,
    build_model,
    machine,
    print_table,
    write_json,
)
from bench_compare import TABLE_COLUMNS, compare, plot, run_rounds, summarize, table_rows

MEMORY_TOLERANCE = 0.01


def _arguments() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--smoke", action="store_true", help="tiny model, 2 steps, 1 round")
    parser.add_argument("--steps", type=int, help="optimizer steps per run (default 6)")
    parser.add_argument("--repeats", type=int, help="rounds of the four scenarios (default 2)")
    parser.add_argument("--max-seq-length", type=int, help="default 512")
    parser.add_argument("--threads", type=int, default=1, help="torch threads per run")
    parser.add_argument("--qlora", action="store_true", help="4-bit nf4 base (bitsandbytes)")
    parser.add_argument("--out", type=Path, help="results JSON (default bench/results/)")
    parser.add_argument("--plot", type=Path, help="PNG (default docs/benchmarks/trainer.png)")
    return parser.parse_args()


def main() -> None:
    args = _arguments()
    shape = TINY if args.smoke else SMALL
    steps = args.steps or (2 if args.smoke else 6)
    repeats = args.repeats or (1 if args.smoke else 2)
    max_length = args.max_seq_length or (64 if args.smoke else 512)
    batch, accumulation = (2, 2) if args.smoke else (4, 2)
    suffix = "-qlora" if args.qlora else ""
    out = args.out or RESULTS / f"trainer{suffix}.json"
    png = args.plot or (None if args.smoke else DOCS / f"trainer{suffix}.png")

    with tempfile.TemporaryDirectory(prefix="bench-trainer-") as tmp:
        work = Path(tmp)
        started = time.monotonic()
        model = build_model(work / "model", shape)
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
            "quantization": args.qlora,
            "threads": args.threads,
        }
        runs = run_rounds(job, work, repeats=repeats, timeout=1800)

    summary = summarize(runs)
    rows = compare(
        summary,
        speed="tokensPerCpuSecond",
        memory="peakRssBytes",
        memory_tolerance=MEMORY_TOLERANCE,
    )
    unit = "tok/CPU-s"
    print_table(
        f"trainer vs TRL on CPU ({'QLoRA 4-bit' if args.qlora else 'LoRA fp32'}), medians of "
        f"{repeats} rounds",
        [c.format(unit=unit) for c in TABLE_COLUMNS],
        table_rows(rows, unit),
    )
    print_table(
        "per scenario (medians)",
        ["scenario", "tok/s wall", "tok/CPU-s", "s/step", "padding", "peak RSS MiB", "setup s"],
        [
            [
                name,
                f"{s['tokensPerSecond']:.1f}",
                f"{s['tokensPerCpuSecond']:.1f}",
                f"{s['stepSeconds']:.2f}",
                f"{s['paddingShare']:.0%}",
                f"{s['peakRssBytes'] / 2**20:.0f}",
                f"{s['setupSeconds']:.1f}",
            ]
            for name, s in summary.items()
        ],
    )
    write_json(
        out,
        {
            "benchmark": "trainer",
            "method": "qlora" if args.qlora else "lora",
            "smoke": args.smoke,
            "machine": machine(),
            "model": model,
            "data": data,
            "config": {
                **{k: v for k, v in job.items() if k not in ("model_dir", "data_path")},
                "effectiveBatch": f"{batch * accumulation} rows of <= {max_length} tokens",
                "repeats": repeats,
                "lora": {"r": 16, "alpha": 32, "dropout": 0.05, "targetModules": "all-linear"},
                "optimizer": "adamw_torch, lr 2e-4, cosine, warmup 3%",
                "memoryTolerance": MEMORY_TOLERANCE,
            },
            "scenarios": summary,
            "comparisons": rows,
            "runs": runs,
        },
    )
    print(f"results: {out}")
    if png is not None:
        plot(
            summary,
            png,
            title=f"kubetune trainer vs TRL SFTTrainer, CPU, {shape.describe()}",
            speeds=[
                ("tokensPerCpuSecond", "tokens per CPU-second (targets)"),
                ("tokensPerSecond", "tokens per second, wall clock"),
            ],
            memory=("peakRssBytes", "peak RSS, MiB"),
        )
        print(f"plot: {png}")


if __name__ == "__main__":
    main()
