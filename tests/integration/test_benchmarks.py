"""The trainer, transfer and GPU benchmarks run end to end at a tiny size and emit complete
results with both sides measured. Timings are not asserted (a loaded CI machine decides
them); that both sides ran and were measured is."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]
SCENARIOS = {"ours no packing", "trl no packing", "ours packing", "trl packing"}
COMPARISONS = {"no packing", "ours packing vs TRL no packing", "ours packing vs TRL packing"}


def run_bench(script: str, out: Path, *args: str) -> dict[str, Any]:
    done = subprocess.run(
        [sys.executable, str(ROOT / "bench" / script), "--smoke", "--out", str(out), *args],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-4000:]
    return json.loads(out.read_text())


def assert_both_sides_measured(
    results: dict[str, Any], *, steps: int, scenarios: set[str], comparisons: set[str]
) -> None:
    assert results["smoke"] is True
    assert set(results["scenarios"]) == scenarios
    for run in results["runs"]:
        assert run["steps"] == steps, run
        assert 0 < run["tokens"] <= run["padded_tokens"], run
        assert min(run["train_seconds"], run["train_cpu_seconds"], run["peak_rss_bytes"]) > 0
    for row in results["comparisons"]:
        assert 0 < row["speedRatio"] < math.inf
        assert 0 < row["memoryRatio"] < math.inf
        assert row["speedVerdict"] in ("PASS", "FAIL")
    assert {row["comparison"] for row in results["comparisons"]} == comparisons


def test_trainer_benchmark_measures_ours_and_trl_with_and_without_packing(tmp_path):
    results = run_bench("trainer_vs_trl.py", tmp_path / "trainer.json")

    assert_both_sides_measured(results, steps=2, scenarios=SCENARIOS, comparisons=COMPARISONS)
    same_data = {r["side"]: r["tokens"] for r in results["runs"] if not r["packing"]}
    assert same_data["ours"] == same_data["trl"], "one epoch of the same data on both sides"


def test_gpu_benchmark_runs_qlora_on_cpu_with_smoke(tmp_path):
    results = run_bench("gpu_qlora.py", tmp_path / "gpu.json")

    assert_both_sides_measured(
        results,
        steps=3,
        scenarios={"ours no packing", "trl no packing"},
        comparisons={"no packing"},
    )
    assert results["config"]["quantization"].startswith("4-bit nf4")
    assert all(s["steadyTokensPerSecond"] > 0 for s in results["scenarios"].values())


def test_transfer_benchmark_measures_ours_and_aws_cli(tmp_path):
    results = run_bench("adapter_transfer.py", tmp_path / "transfer.json", "--size-mb", "12")

    assert results["bytes"] >= 12 * 10**6
    rows = {row["transfer"]: row for row in results["comparisons"]}
    assert set(rows) == {"push", "pull"}
    for row in rows.values():
        assert min(row["oursSeconds"], row["awsSeconds"]) > 0
        assert row["ratio"] == pytest.approx(row["awsSeconds"] / row["oursSeconds"])
    pushed = results["rounds"][0]["ours_push_inprocess"]
    assert pushed["transferSeconds"] > 0  # hashing happens during the transfer now
