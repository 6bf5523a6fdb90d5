"""Canary measurements from Prometheus's HTTP API (``GET /api/v1/query``).

Three instant queries per check, each over the analysis interval: canary requests, canary
errors (HTTP 5xx) and the canary's p95 latency. What identifies "the canary" depends on the
runtime:

- ``kubetune``: the runtime labels every request metric with ``adapter_version`` (the Adapter
  name), so the canary's traffic is told apart inside the same pods.
- ``vllm``: vLLM labels metrics by model only, so the canary is its own pods (the canary
  Deployment's, by the ``pod`` label); requests are ``vllm:e2e_request_latency_seconds``
  observations and errors are requests vLLM finished as ``abort``.

Both scope by the ``namespace`` label, which Prometheus's Kubernetes service discovery (and
every ServiceMonitor or PodMonitor) attaches. The client is urllib with a timeout: a slow or
absent Prometheus makes a check inconclusive, never a hung handler or a rollback.
"""

from __future__ import annotations

import json
import math
import re
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass
from datetime import timedelta

from kubetune.rollout.analyzing import Measurement


class PrometheusError(Exception):
    """Prometheus could not be asked, or did not answer a query."""


@dataclass(frozen=True)
class CanaryQueries:
    """PromQL for one check: each must answer with at most one sample."""

    requests: str
    errors: str
    p95_seconds: str


def _window(interval: timedelta) -> str:
    return f"{max(1, round(interval.total_seconds()))}s"


def _quote(value: str) -> str:
    """A PromQL string literal."""
    return json.dumps(value)


def _alternatives(values: list[str]) -> str:
    """A PromQL (RE2, fully anchored) regex matching exactly ``values``."""
    return _quote("|".join(re.escape(v) for v in sorted(values)))


def kubetune_queries(namespace: str, versions: list[str], interval: timedelta) -> CanaryQueries:
    """The reference runtime's per-version metrics for the canary ``versions``."""
    selector = f"namespace={_quote(namespace)},adapter_version=~{_alternatives(versions)}"
    window = _window(interval)
    return CanaryQueries(
        requests=f"sum(increase(kubetune_requests_total{{{selector}}}[{window}]))",
        errors=f'sum(increase(kubetune_requests_total{{{selector},status=~"5.."}}[{window}]))',
        p95_seconds="histogram_quantile(0.95, sum by (le) "
        f"(rate(kubetune_request_duration_seconds_bucket{{{selector}}}[{window}])))",
    )


def vllm_queries(namespace: str, deployment: str, interval: timedelta) -> CanaryQueries:
    """vLLM's metrics of the canary Deployment's pods (``<deployment>-<hash>-<suffix>``)."""
    pods = _quote(f"{re.escape(deployment)}-[a-z0-9]+-[a-z0-9]+")
    selector = f"namespace={_quote(namespace)},pod=~{pods}"
    window = _window(interval)
    return CanaryQueries(
        requests=f"sum(increase(vllm:e2e_request_latency_seconds_count{{{selector}}}[{window}]))",
        errors=f"sum(increase(vllm:request_success_total{{{selector},"
        f'finished_reason="abort"}}[{window}]))',
        p95_seconds="histogram_quantile(0.95, sum by (le) "
        f"(rate(vllm:e2e_request_latency_seconds_bucket{{{selector}}}[{window}])))",
    )


class PrometheusClient:
    """Instant queries against one Prometheus."""

    def __init__(self, url: str, *, timeout: float = 5.0) -> None:
        self.url = url.rstrip("/")
        self.timeout = timeout

    def query(self, promql: str) -> float | None:
        """The value of a query answering with one sample; None for no sample (no traffic)
        or NaN (a quantile of no observations)."""
        address = f"{self.url}/api/v1/query?{urllib.parse.urlencode({'query': promql})}"
        try:
            with urllib.request.urlopen(address, timeout=self.timeout) as response:
                body = json.loads(response.read())
        except urllib.error.HTTPError as exc:
            detail = exc.read().decode(errors="replace")[:200]
            raise PrometheusError(f"{self.url} answered {exc.code}: {detail}") from exc
        except (OSError, ValueError) as exc:
            raise PrometheusError(f"{self.url}: {exc}") from exc
        if body.get("status") != "success":
            raise PrometheusError(f"{self.url}: {body.get('error') or 'query failed'}")
        result = body.get("data", {}).get("result") or []
        if not result:
            return None
        if len(result) > 1:
            raise PrometheusError(f"{promql!r} answered {len(result)} series, expected one")
        value = float(result[0]["value"][1])
        return None if math.isnan(value) else value


def measure(client: PrometheusClient, queries: CanaryQueries) -> Measurement:
    """The canary's requests, errors and p95 latency; a failure is recorded, not raised."""
    try:
        requests = client.query(queries.requests)
        errors = client.query(queries.errors)
        p95 = client.query(queries.p95_seconds)
    except PrometheusError as exc:
        return Measurement(error=str(exc))
    return Measurement(
        requests=requests or 0.0,
        errors=errors or 0.0,
        p95_latency_ms=None if p95 is None else p95 * 1000,
    )
