"""Judging a canary: its live metrics against the thresholds, and its eval loss offline.

A check needs enough requests to mean anything: below ``minRequests`` (or when Prometheus
cannot answer) it is *inconclusive*, which neither counts as a failure nor lets a step
advance, so a canary with no traffic holds instead of being promoted on no evidence. The
eval gate runs once, before any traffic, on what training recorded.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta

from kubetune.api import (
    Adapter,
    AnalysisResult,
    AnalysisSpec,
    AnalysisStatus,
    CanaryStatus,
    EvalGate,
    ResolvedAdapter,
)

_DURATION_PART = re.compile(r"([0-9]+(?:\.[0-9]+)?)(ms|s|m|h)")
_UNIT_SECONDS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0}


def parse_duration(value: str) -> timedelta:
    """A Go-style duration (``90s``, ``5m``, ``1h30m``, ``500ms``) as a timedelta."""
    parts = _DURATION_PART.findall(value)
    if not parts or "".join(n + u for n, u in parts) != value:
        raise ValueError(f"not a duration: {value!r}")
    return timedelta(seconds=sum(float(n) * _UNIT_SECONDS[u] for n, u in parts))


@dataclass(frozen=True)
class Measurement:
    """The canary's traffic over the last analysis interval, as Prometheus saw it."""

    requests: float | None = None
    errors: float | None = None
    p95_latency_ms: float | None = None
    """None when there were no observations to take a quantile of."""
    error: str | None = None
    """Why nothing could be measured (Prometheus unreachable, bad answer, no URL)."""

    @property
    def error_rate(self) -> float | None:
        if not self.requests or self.errors is None:
            return None
        return self.errors / self.requests


def is_analysis_due(spec: AnalysisSpec, canary: CanaryStatus, now: datetime) -> bool:
    """One interval after the step began, then every interval: each check's window covers
    only traffic of the current weight."""
    if canary.step_started_at is None:
        return False
    last = canary.analysis.last_checked_at if canary.analysis else None
    since = max(filter(None, (last, canary.step_started_at)))
    return now - since >= parse_duration(spec.interval)


def evaluate(spec: AnalysisSpec, measured: Measurement) -> tuple[AnalysisResult, str]:
    """The verdict of one check and a sentence saying why."""
    if measured.error is not None:
        return AnalysisResult.INCONCLUSIVE, f"no measurement: {measured.error}"
    requests = int(measured.requests or 0)
    if requests < spec.min_requests:
        return (
            AnalysisResult.INCONCLUSIVE,
            f"{requests} canary requests, fewer than the {spec.min_requests} a check needs",
        )
    rate = measured.error_rate or 0.0
    problems = []
    if rate > spec.max_error_rate:
        problems.append(f"error rate {rate:.2%} above {spec.max_error_rate:.2%}")
    p95 = measured.p95_latency_ms
    limit = spec.max_p95_latency_ms
    if limit is not None and p95 is not None and p95 > limit:
        problems.append(f"p95 latency {p95:.0f} ms above {limit} ms")
    latency = "" if p95 is None else f", p95 {p95:.0f} ms"
    summary = f"{requests} requests, error rate {rate:.2%}{latency}"
    if problems:
        return AnalysisResult.FAILED, f"{'; '.join(problems)} ({summary})"
    return AnalysisResult.PASSED, summary


def record(
    previous: AnalysisStatus | None,
    result: AnalysisResult,
    message: str,
    measured: Measurement,
    now: datetime,
) -> AnalysisStatus:
    """The analysis status after one check: failures accumulate over the whole rollout."""
    failures = (previous.failures if previous else 0) + int(result == AnalysisResult.FAILED)
    p95 = measured.p95_latency_ms
    return AnalysisStatus(
        result=result,
        message=message[:1024],
        failures=failures,
        requests=None if measured.requests is None else int(measured.requests),
        error_rate=measured.error_rate,
        p95_latency_ms=None if p95 is None else round(p95, 3),
        last_checked_at=now,
    )


def check_eval_gate(
    gate: EvalGate,
    stable: list[ResolvedAdapter],
    canary: list[ResolvedAdapter],
    adapters: Mapping[str, Adapter],
) -> str | None:
    """Why the canary is refused (its evalLoss is worse than stable's by more than the
    margin, for some served name), or None when it may proceed."""
    before = {a.name: a.adapter_ref for a in stable}
    for served in canary:
        old_ref = before.get(served.name)
        if old_ref is None or old_ref == served.adapter_ref:
            continue
        old, new = _eval_loss(adapters.get(old_ref)), _eval_loss(adapters.get(served.adapter_ref))
        if old is None or new is None:
            continue
        if new - old > gate.max_eval_loss_increase:
            return (
                f"{served.name}: Adapter {served.adapter_ref!r} evalLoss {new:.4g} is worse "
                f"than {old_ref!r}'s {old:.4g} by more than {gate.max_eval_loss_increase:g}"
            )
    return None


def _eval_loss(adapter: Adapter | None) -> float | None:
    if adapter is None or adapter.spec.metrics is None:
        return None
    return adapter.spec.metrics.eval_loss
