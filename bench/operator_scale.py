"""The operator at scale: many FineTuneJobs on a local cluster whose GPU nodes kwok simulates.

For each size, in a fresh cluster: first the baseline (the same number of plain batch Jobs,
whose pods the kube-controller-manager's Job controller creates), then kubetune (FineTuneJobs
through their whole lifecycle: validation Job, training Job Running, a progress report, a
hold with the progress timer ticking, the artifact published, Adapter Ready). Both arrive at
the same open-loop rate. Measured: apply -> (validation) Job created latency p50/p99, time
until all are Running, the operator's CPU seconds and peak RSS, and its API requests per job
lifecycle from the apiserver's audit log (the operator runs as the chart's ServiceAccount).

Run (from the repository root):
    PYTHONPATH=hack:operator:tests:bench python bench/operator_scale.py --jobs 100 1000 3000 \\
        --out bench/results/operator_scale.json --plot docs/benchmarks/operator-scale.png
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import signal
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table
from scale_env import start_world
from scale_report import TARGET_AT_JOBS, across_sizes, summarize
from scale_run import run_baseline, run_ours

console = Console()


def run_size(jobs: int, args: argparse.Namespace, workdir: Path) -> dict[str, Any]:
    started, load_before = time.monotonic(), os.getloadavg()
    world = start_world(workdir / f"n{jobs}", jobs, args.controller_qps)
    try:
        baseline = run_baseline(world, jobs, args.rate)
        ours = run_ours(
            world,
            jobs,
            args.rate,
            hold=args.hold,
            progress_interval=args.progress_interval,
            log=workdir / f"operator-n{jobs}.log",
        )
        result = summarize(world, jobs, baseline, ours, hold=args.hold)
    finally:
        world.down()
    result["run"] = {
        "rate_per_s": args.rate,
        "hold_s": args.hold,
        "progress_interval_s": args.progress_interval,
        "controller_qps": args.controller_qps,
        "wall_s": round(time.monotonic() - started, 1),
        "loadavg_before": [round(x, 2) for x in load_before],
        "loadavg_after": [round(x, 2) for x in os.getloadavg()],
        "at": datetime.now(UTC).isoformat(timespec="seconds"),
    }
    return result


def machine() -> dict[str, Any]:
    return {
        "cpus": os.cpu_count(),
        "platform": platform.platform(),
        "python": platform.python_version(),
        "shared": "other jobs run on this machine; see loadavg per size",
    }


def _fmt(value: Any, unit: str = "") -> str:
    return "-" if value is None else f"{value}{unit}"


def print_table(results: list[dict[str, Any]]) -> None:
    table = Table(title="kubetune operator vs the Job controller (same cluster, same run)")
    for column in ("jobs", "metric", "kubetune", "baseline", "ratio"):
        table.add_column(column, justify="right" if column != "metric" else "left")
    for r in results:
        ours, base, ratios = r["ours"], r["baseline"], r["ratios"]
        rows = [
            ("apply->Job p50 ms", ours["latency_ms"]["p50"], base["latency_ms"]["p50"],
             ratios["latency_p50"]),
            ("apply->Job p99 ms", ours["latency_ms"]["p99"], base["latency_ms"]["p99"],
             ratios["latency_p99"]),
            ("all Running s", ours["time_to_all_running_s"], base["time_to_all_running_s"],
             ratios["time_to_all_running"]),
            ("API requests / job", ours["requests_per_job"], base["requests_per_job"],
             ratios["requests_per_job"]),
            ("validated->training Job p99 ms", ours["validated_to_training_job_ms"]["p99"],
             None, None),
            ("lifecycle (to Adapter Ready) s", ours["lifecycle_s"], None, None),
            ("operator CPU s", ours["operator_cpu_seconds"], None, None),
            ("operator peak RSS MB", ours["operator_peak_rss_mb"], None, None),
            ("lists / watches (all; while Running)",
             f"{ours['lists']} / {ours['watches']}; "
             f"{ours['steady_state_lists']} / {ours['steady_state_watches']}", None, None),
            ("load avg (1 min) before/after",
             f"{r['run']['loadavg_before'][0]} / {r['run']['loadavg_after'][0]}", None, None),
        ]  # fmt: skip
        for index, (metric, mine, theirs, ratio) in enumerate(rows):
            table.add_row(
                str(r["jobs"]) if index == 0 else "", metric, _fmt(mine), _fmt(theirs), _fmt(ratio)
            )
        table.add_section()
    console.print(table)
    for r in results:
        marks = "  ".join(
            f"{name}={_fmt(t['value'])} (limit {t['limit']}): {'PASS' if t['pass'] else 'FAIL'}"
            for name, t in r["targets"].items()
        )
        scope = "target size" if r["jobs"] == TARGET_AT_JOBS else "informative"
        console.print(f"targets at {r['jobs']} jobs ({scope}): {marks}")
        console.print(f"  requests per job at {r['jobs']}: {r['ours']['requests_breakdown']}")


def plot(results: list[dict[str, Any]], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    results = sorted(results, key=lambda r: r["jobs"])
    sizes = [r["jobs"] for r in results]
    fig, (lat, req) = plt.subplots(1, 2, figsize=(11, 4.2))
    for key, label, style in (("ours", "kubetune (FTJ -> Job)", "o-"),
                              ("baseline", "Job controller (Job -> Pod)", "s--")):  # fmt: skip
        for q, alpha in (("p50", 1.0), ("p99", 0.55)):
            values = [r[key]["latency_ms"][q] for r in results]
            lat.plot(sizes, values, style, alpha=alpha, label=f"{label} {q}")
    lat.axhline(2000, color="red", linewidth=0.8, label="target p99 2 s")
    lat.set(xscale="log", yscale="log", xlabel="jobs", ylabel="apply -> child created (ms)",
            title="Latency")  # fmt: skip
    lat.legend(fontsize=7)
    ours_req = [r["ours"]["requests_per_job"] for r in results]
    base_req = [r["baseline"]["requests_per_job"] for r in results]
    lists = [r["ours"]["requests_breakdown"].get("list pods", 0) for r in results]
    req.plot(sizes, ours_req, "o-", label="kubetune operator, per FineTuneJob lifecycle")
    req.plot(sizes, base_req, "s--", label="Job controller, per Job lifecycle")
    req.plot(sizes, lists, "^:", label="operator 'list pods' per FineTuneJob")
    req.set(xscale="log", xlabel="jobs", ylabel="API requests per job", ylim=(0, None),
            title="API requests per job (audit log)")  # fmt: skip
    req.legend(fontsize=7)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--jobs", type=int, nargs="+", default=[100])
    parser.add_argument("--rate", type=float, default=10.0, help="arrivals per second; 0: burst")
    parser.add_argument("--hold", type=float, default=30.0, help="seconds all jobs stay Running")
    parser.add_argument("--progress-interval", type=float, default=15.0)
    parser.add_argument(
        "--controller-qps",
        type=int,
        default=100,
        help="kube-controller-manager's client rate limit (burst twice it); its default, 20, "
        "makes the Job controller, which both sides need, the bottleneck at 1,000 jobs",
    )
    parser.add_argument("--out", type=Path, default=Path("bench/results/operator_scale.json"))
    parser.add_argument("--plot", type=Path)
    parser.add_argument("--merge", action="store_true", help="keep other sizes from --out")
    parser.add_argument("--keep", type=Path, help="keep logs (operator, audit) in this folder")
    args = parser.parse_args()
    # A SIGTERM (a CI timeout) unwinds like Ctrl-C, so every cluster and operator is stopped.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))

    previous: dict[int, dict[str, Any]] = {}
    if args.merge and args.out.exists():
        previous = {r["jobs"]: r for r in json.loads(args.out.read_text())["results"]}
    with tempfile.TemporaryDirectory(prefix="kubetune-scale-") as tmp:
        for jobs in args.jobs:
            console.print(f"[bold]{jobs} jobs[/bold] (load avg {os.getloadavg()[0]:.2f})")
            previous[jobs] = run_size(jobs, args, Path(tmp))
            console.print(f"  done in {previous[jobs]['run']['wall_s']} s")
            if args.keep:
                args.keep.mkdir(parents=True, exist_ok=True)
                for log in Path(tmp).glob("**/*.log"):
                    shutil.copy(log, args.keep / f"n{jobs}-{log.name}")
    results = [previous[k] for k in sorted(previous)]
    report = {"machine": machine(), "results": results, "across_sizes": across_sizes(results)}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2) + "\n")
    print_table(results)
    console.print(f"requests per job across sizes: {report['across_sizes']}")
    if args.plot:
        plot(results, args.plot)


if __name__ == "__main__":
    main()
