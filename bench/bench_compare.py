"""Ours against TRL over the four trainer scenarios: run them in alternating order, take
medians, form the ratios the targets are about, and draw them.

Scenarios: each side without packing and with packing. Comparisons: ours vs TRL without
packing; ours with packing vs TRL without (what packing buys a user who would otherwise run
TRL's defaults); ours with packing vs TRL with packing (like for like).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from _common import median, ratio, run_worker, verdict

SCENARIOS = [("ours", False), ("trl", False), ("ours", True), ("trl", True)]


def label(side: str, packing: bool) -> str:
    return f"{side} {'packing' if packing else 'no packing'}"


@dataclass(frozen=True)
class Comparison:
    """One row of the results: ours against a baseline, by which metric, with its target."""

    name: str
    ours: tuple[str, bool]
    baseline: tuple[str, bool]
    speed_target: float


COMPARISONS = [
    Comparison("no packing", ("ours", False), ("trl", False), 1.0),
    Comparison("ours packing vs TRL no packing", ("ours", True), ("trl", False), 1.5),
    Comparison("ours packing vs TRL packing", ("ours", True), ("trl", True), 1.5),
]


def run_rounds(
    job: dict[str, Any],
    workdir: Path,
    *,
    repeats: int,
    timeout: float,
    scenarios: list[tuple[str, bool]] = SCENARIOS,
    log: Callable[[str], None] = print,
) -> list[dict[str, Any]]:
    """Every scenario ``repeats`` times, the order reversed every other round so that drift
    in the machine's load does not favour one side."""
    runs = []
    for round_ in range(repeats):
        order = scenarios if round_ % 2 == 0 else scenarios[::-1]
        for side, packing in order:
            name = f"{side}-{'pack' if packing else 'nopack'}-{round_}"
            started = time.monotonic()
            result = run_worker(
                {**job, "side": side, "packing": packing}, workdir, name, timeout=timeout
            )
            result["round"] = round_
            runs.append(result)
            log(
                f"  {label(side, packing):18} round {round_ + 1}: "
                f"{result['tokens'] / result['train_seconds']:8.1f} tok/s wall, "
                f"{result['tokens'] / result['train_cpu_seconds']:8.1f} tok/CPU-s, "
                f"peak RSS {result['peak_rss_bytes'] / 2**20:7.0f} MiB "
                f"({time.monotonic() - started:.0f} s)"
            )
    return runs


def steady(run: dict[str, Any]) -> tuple[float, float] | None:
    """Tokens per second and seconds per step after the first optimizer step (warm-up:
    allocator, kernels, lazy initialisation); None with fewer than three steps."""
    marks = run.get("step_marks") or []
    if len(marks) < 3:
        return None
    (t0, n0), (t1, n1) = marks[0], marks[-1]
    return (n1 - n0) / (t1 - t0), (t1 - t0) / (len(marks) - 1)


def summarize(runs: list[dict[str, Any]]) -> dict[str, dict[str, float]]:
    """Medians per scenario."""
    summary = {}
    for side, packing in SCENARIOS:
        mine = [r for r in runs if r["side"] == side and r["packing"] == packing]
        if not mine:
            continue
        gpu = [r["peak_gpu_bytes"] for r in mine if r.get("peak_gpu_bytes") is not None]
        warm = [w for w in map(steady, mine) if w is not None]
        summary[label(side, packing)] = {
            "tokensPerSecond": median([r["tokens"] / r["train_seconds"] for r in mine]),
            "tokensPerCpuSecond": median([r["tokens"] / r["train_cpu_seconds"] for r in mine]),
            "stepSeconds": median([r["train_seconds"] / r["steps"] for r in mine]),
            "steadyTokensPerSecond": median([w[0] for w in warm]) if warm else None,
            "steadyStepSeconds": median([w[1] for w in warm]) if warm else None,
            "peakRssBytes": median([r["peak_rss_bytes"] for r in mine]),
            "peakGpuBytes": median(gpu) if gpu else None,
            "paddingShare": median([1 - r["tokens"] / r["padded_tokens"] for r in mine]),
            "tokens": median([r["tokens"] for r in mine]),
            "setupSeconds": median([r["setup_seconds"] for r in mine]),
            "runs": len(mine),
        }
    return summary


def compare(
    summary: dict[str, dict[str, float]], *, speed: str, memory: str, memory_tolerance: float
) -> list[dict[str, Any]]:
    """The comparison rows: speed ratio (by the ``speed`` metric) and memory ratio, each
    with its target and verdict. Memory passes when ours is no higher than the baseline
    (within ``memory_tolerance``, the run-to-run noise of the measure)."""
    rows = []
    for c in COMPARISONS:
        ours, base = summary.get(label(*c.ours)), summary.get(label(*c.baseline))
        if ours is None or base is None:
            continue
        speed_ratio = ratio(ours[speed], base[speed])
        memory_ratio = ratio(ours[memory], base[memory])
        rows.append(
            {
                "comparison": c.name,
                "ours": label(*c.ours),
                "baseline": label(*c.baseline),
                "speedMetric": speed,
                "oursSpeed": ours[speed],
                "baselineSpeed": base[speed],
                "speedRatio": speed_ratio,
                "speedTarget": c.speed_target,
                "speedVerdict": verdict(speed_ratio, c.speed_target),
                "memoryMetric": memory,
                "oursMemory": ours[memory],
                "baselineMemory": base[memory],
                "memoryRatio": memory_ratio,
                "memoryTarget": 1.0,
                "memoryVerdict": verdict(
                    memory_ratio, 1.0 + memory_tolerance, higher_is_better=False
                ),
            }
        )
    return rows


def table_rows(rows: list[dict[str, Any]], speed_unit: str) -> list[list[str]]:
    return [
        [
            r["comparison"],
            f"{r['oursSpeed']:.1f}",
            f"{r['baselineSpeed']:.1f}",
            f"{r['speedRatio']:.2f}x",
            f">= {r['speedTarget']:.1f}x {r['speedVerdict']}",
            f"{r['oursMemory'] / 2**20:.0f}",
            f"{r['baselineMemory'] / 2**20:.0f}",
            f"{r['memoryRatio']:.2f}x",
            f"<= 1.0x {r['memoryVerdict']}",
        ]
        for r in rows
    ]


TABLE_COLUMNS = [
    "comparison",
    "ours {unit}",
    "TRL {unit}",
    "ratio",
    "target",
    "ours peak MiB",
    "TRL peak MiB",
    "ratio",
    "target",
]


def plot(
    summary: dict[str, dict[str, float]],
    path: Path,
    *,
    title: str,
    speeds: list[tuple[str, str]],
    memory: tuple[str, str],
) -> None:
    """Bars per scenario: each speed metric, and peak memory."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = list(summary)
    colors = ["#1f77b4" if n.startswith("ours") else "#ff7f0e" for n in names]
    panels = [*speeds, memory]
    figure, axes = plt.subplots(1, len(panels), figsize=(5 * len(panels), 4.2))
    for axis, (key, caption) in zip(axes, panels, strict=True):
        scale = 2**20 if key.endswith("Bytes") else 1
        values = [(summary[n][key] or 0) / scale for n in names]
        bars = axis.bar(range(len(names)), values, color=colors)
        axis.bar_label(bars, fmt="%.0f", fontsize=8)
        axis.set_xticks(range(len(names)), [n.replace(" ", "\n", 1) for n in names], fontsize=8)
        axis.set_title(caption, fontsize=10)
    figure.suptitle(title, fontsize=11)
    figure.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=110)
    plt.close(figure)
