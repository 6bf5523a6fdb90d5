"""Prometheus metrics of the operator process (served on the metrics port).

Phase counts are derived from what reconciles observe, keyed by object uid, so they need no
list of the cluster: the gauge is exact for every object this replica has seen.
"""

from __future__ import annotations

import threading
import time
from typing import Any

from prometheus_client import Counter, Gauge, Histogram

RECONCILES = Counter(
    "kubetune_reconciles_total", "Reconciles by kind and result", ["kind", "result"]
)
RECONCILE_SECONDS = Histogram(
    "kubetune_reconcile_duration_seconds",
    "Time spent in one reconcile",
    ["kind"],
    buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
)
JOBS_BY_PHASE = Gauge("kubetune_finetunejobs", "FineTuneJobs by phase", ["phase"])
JOB_DURATION = Histogram(
    "kubetune_finetunejob_duration_seconds",
    "Start to completion of finished FineTuneJobs",
    ["phase"],
    buckets=(60, 300, 900, 1800, 3600, 7200, 14400, 43200, 86400, 259200),
)
GPU_SECONDS = Counter("kubetune_gpu_seconds_total", "GPU-seconds of finished training runs")

_lock = threading.Lock()
_phases: dict[str, str] = {}
_finished: set[str] = set()


def record_reconcile(kind: str, started: float, *, ok: bool) -> None:
    RECONCILES.labels(kind, "success" if ok else "error").inc()
    RECONCILE_SECONDS.labels(kind).observe(time.monotonic() - started)


def observe_finetunejob(job: Any, status: Any) -> None:
    """Account one FineTuneJob's phase; observe duration and GPU time once when it finishes."""
    uid, phase = job.metadata["uid"], str(status.phase)
    with _lock:
        previous = _phases.get(uid)
        _phases[uid] = phase
        if previous != phase:
            if previous is not None:
                JOBS_BY_PHASE.labels(previous).dec()
            JOBS_BY_PHASE.labels(phase).inc()
        finished = phase in {"Succeeded", "Failed"} and uid not in _finished
        if finished:
            _finished.add(uid)
    if finished and status.start_time and status.completion_time:
        JOB_DURATION.labels(phase).observe(
            (status.completion_time - status.start_time).total_seconds()
        )
        GPU_SECONDS.inc(status.gpu_seconds or 0)


def forget(uid: str) -> None:
    """Drop a deleted object from the phase gauge."""
    with _lock:
        phase = _phases.pop(uid, None)
        _finished.discard(uid)
    if phase is not None:
        JOBS_BY_PHASE.labels(phase).dec()
