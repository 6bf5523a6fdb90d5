"""Numbers from one size of the scale benchmark: latencies, API requests from the audit log,
ratios against the Job-controller baseline, and the targets of issue 9."""

from __future__ import annotations

import json
import statistics
from collections import Counter
from datetime import datetime
from pathlib import Path
from typing import Any

from scale_env import BASELINE_NAMESPACE, JOB_CONTROLLER, OURS_NAMESPACE, World
from scale_run import Ours, Scenario

TARGET_P99_S = 2.0
TARGET_RSS_MB = 300.0
TARGET_AT_JOBS = 1000
GROWTH_TOLERANCE = 0.2
"""Requests per job may differ by this fraction between sizes and still count as flat."""


def percentiles(values: list[float]) -> dict[str, float | int | None]:
    """p50, p99 and max in milliseconds, and how many values they summarise."""
    if not values:
        return {"count": 0, "p50": None, "p99": None, "max": None}
    ordered = sorted(values)

    def at(q: float) -> float:
        return round(ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))] * 1000, 1)

    return {"count": len(ordered), "p50": at(0.50), "p99": at(0.99), "max": at(1.0)}


def latencies(start: dict[str, float], end: dict[str, float], *, suffix: str = "") -> list[float]:
    """Seconds from ``start[name]`` to ``end[name + suffix]`` for names that have both."""
    return [end[n + suffix] - t for n, t in start.items() if n + suffix in end]


def _span(start: float, ends: dict[str, float], count: int) -> float | None:
    """Seconds from ``start`` until the last of ``count`` names; None if some never got there."""
    return round(max(ends.values()) - start, 2) if len(ends) >= count and ends else None


def read_audit(path: Path) -> list[dict[str, Any]]:
    """One record per request (the audit log has a line per stage; keep the last)."""
    records: dict[str, dict[str, Any]] = {}
    with path.open() as lines:
        for line in lines:
            event = json.loads(line)
            ref = event.get("objectRef") or {}
            resource = ref.get("resource", event.get("requestURI", "?"))
            if ref.get("subresource"):
                resource += "/" + ref["subresource"]
            records[event["auditID"]] = {
                "user": event["user"]["username"],
                "verb": event["verb"],
                "resource": resource,
                "namespace": ref.get("namespace"),
                "at": datetime.fromisoformat(event["requestReceivedTimestamp"]).timestamp(),
            }
    return list(records.values())


def _select(
    records: list[dict[str, Any]], user: str, start: float, end: float, ns: str | None = None
) -> list[dict[str, Any]]:
    return [
        r
        for r in records
        if r["user"] == user and start <= r["at"] < end and (ns is None or r["namespace"] == ns)
    ]


def _breakdown(records: list[dict[str, Any]], per: int) -> dict[str, float]:
    counts = Counter(f"{r['verb']} {r['resource']}" for r in records)
    return {k: round(v / per, 2) for k, v in sorted(counts.items(), key=lambda kv: -kv[1])}


def summarize(
    world: World, jobs: int, baseline: Scenario, ours: Ours, *, hold: float
) -> dict[str, Any]:
    records = read_audit(world.audit_log)
    base_tl, ours_tl = baseline.timeline, ours.timeline
    base_latency = latencies(baseline.applied, base_tl.times("pod"))
    ours_latency = latencies(ours.applied, ours_tl.times("job"), suffix="-validate")
    to_training = latencies(ours.validated, ours_tl.times("job"), suffix="-train")
    to_running = latencies(ours.applied, ours_tl.times("phase:Running"))

    operator = world.operator_user
    lifecycle = _select(records, operator, ours.wall["start"], ours.wall["end"])
    startup = _select(records, operator, 0, ours.wall["start"])
    held = _select(records, operator, ours.wall["running"], ours.wall["hold-end"])
    verbs = Counter(r["verb"] for r in lifecycle)
    held_verbs = Counter(r["verb"] for r in held)
    base_requests = _select(
        records, JOB_CONTROLLER, baseline.wall["start"], baseline.wall["end"], BASELINE_NAMESPACE
    )
    ours_job_controller = _select(
        records, JOB_CONTROLLER, ours.wall["start"], ours.wall["end"], OURS_NAMESPACE
    )
    jobs_seen = ours_tl.times("job")
    sampler = ours.sampler
    assert sampler is not None
    result: dict[str, Any] = {
        "jobs": jobs,
        "baseline": {
            "what": "batch Job: apply -> Pod created (kube-controller-manager Job controller)",
            "latency_ms": percentiles(base_latency),
            "time_to_all_running_s": _span(baseline.started, base_tl.times("running"), jobs),
            "time_to_all_complete_s": _span(baseline.started, base_tl.times("complete"), jobs),
            "reached": {"pod": base_tl.count("pod"), "running": base_tl.count("running")},
            "requests_per_job": round(len(base_requests) / jobs, 2),
            "requests_breakdown": _breakdown(base_requests, jobs),
        },
        "ours": {
            "what": "FineTuneJob: apply -> validation Job created (kubetune operator)",
            "latency_ms": percentiles(ours_latency),
            "validated_to_training_job_ms": percentiles(to_training),
            "apply_to_running_ms": percentiles(to_running),
            "time_to_all_running_s": _span(ours.started, ours_tl.times("phase:Running"), jobs),
            "lifecycle_s": _span(ours.started, ours_tl.times("adapter-ready"), jobs),
            "reached": {
                "validation_job": sum(f"{n}-validate" in jobs_seen for n in ours.applied),
                "training_job": sum(f"{n}-train" in jobs_seen for n in ours.applied),
                "running": ours_tl.count("phase:Running"),
                "succeeded": ours_tl.count("phase:Succeeded"),
                "adapter_ready": ours_tl.count("adapter-ready"),
                "failed": ours_tl.count("phase:Failed"),
            },
            "operator_cpu_seconds": round(sampler.cpu_seconds, 1),
            "operator_peak_rss_mb": round(sampler.peak_rss / 2**20, 1),
            "operator_idle_rss_mb": round(sampler.idle_rss / 2**20, 1),
            "requests_per_job": round(len(lifecycle) / jobs, 2),
            "requests_breakdown": _breakdown(lifecycle, jobs),
            "lists": verbs["list"],
            "watches": verbs["watch"],
            "steady_state_lists": held_verbs["list"],
            "steady_state_watches": held_verbs["watch"],
            "startup_requests": len(startup),
            "hold_requests_per_job_per_minute": round(len(held) / jobs / (hold / 60), 2)
            if hold
            else None,
            "job_controller_requests_per_job": round(len(ours_job_controller) / (2 * jobs), 2),
            "driver_errors": ours.errors[:20],
        },
        "complete": {"baseline": baseline.complete, "ours": ours.complete},
    }
    result["ratios"] = _ratios(result)
    result["targets"] = _targets(result)
    return result


def _ratio(a: float | None, b: float | None) -> float | None:
    return round(a / b, 2) if a is not None and b else None


def _ratios(result: dict[str, Any]) -> dict[str, float | None]:
    ours, base = result["ours"], result["baseline"]
    return {
        "latency_p50": _ratio(ours["latency_ms"]["p50"], base["latency_ms"]["p50"]),
        "latency_p99": _ratio(ours["latency_ms"]["p99"], base["latency_ms"]["p99"]),
        "time_to_all_running": _ratio(ours["time_to_all_running_s"], base["time_to_all_running_s"]),
        "requests_per_job": _ratio(ours["requests_per_job"], base["requests_per_job"]),
    }


def _targets(result: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """The absolute targets; issue 9 sets them at 1,000 jobs, other sizes are informative."""
    ours = result["ours"]
    p99 = ours["latency_ms"]["p99"]
    complete = ours["reached"]["validation_job"] == result["jobs"]
    return {
        "p99_apply_to_job_s": {
            "value": None if p99 is None else p99 / 1000,
            "limit": TARGET_P99_S,
            "pass": complete and p99 is not None and p99 / 1000 <= TARGET_P99_S,
        },
        "peak_rss_mb": {
            "value": ours["operator_peak_rss_mb"],
            "limit": TARGET_RSS_MB,
            "pass": ours["operator_peak_rss_mb"] <= TARGET_RSS_MB,
        },
        "no_list_polling": {
            "value": ours["steady_state_lists"],
            "limit": f"lists while all run <= watch restarts ({ours['steady_state_watches']})",
            "pass": ours["steady_state_lists"] <= ours["steady_state_watches"],
        },
    }


def across_sizes(results: list[dict[str, Any]]) -> dict[str, Any]:
    """Whether requests per job stay flat as the number of jobs grows."""
    per_job = {r["jobs"]: r["ours"]["requests_per_job"] for r in results}
    if len(per_job) < 2:
        return {"requests_per_job": per_job, "flat": None}
    low = min(per_job.values())
    spread = (max(per_job.values()) - low) / low if low else float("inf")
    return {
        "requests_per_job": per_job,
        "spread": round(spread, 3),
        "flat": spread <= GROWTH_TOLERANCE,
        "median": statistics.median(per_job.values()),
    }
