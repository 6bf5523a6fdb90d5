"""The PromQL of a canary check, and how Prometheus's answers become a Measurement.

Real Prometheus answers are exercised in tests/integration/inference/test_analysis.py; here
its HTTP API is replaced by canned JSON bodies to cover every shape of answer.
"""

from __future__ import annotations

import io
import json
import re
import urllib.error
from datetime import timedelta
from typing import Any

import pytest

from kubetune import analysis
from kubetune.analysis import PrometheusClient, PrometheusError, kubetune_queries, vllm_queries
from kubetune.rollout import Measurement


def test_kubetune_queries_select_the_canary_versions_of_the_namespace() -> None:
    queries = kubetune_queries("ml", ["support-bot-v4", "sql.helper-v2"], timedelta(minutes=1))
    selector = 'namespace="ml",adapter_version=~"sql\\\\.helper\\\\-v2|support\\\\-bot\\\\-v4"'
    assert queries.requests == f"sum(increase(kubetune_requests_total{{{selector}}}[60s]))"
    assert queries.errors == (
        f'sum(increase(kubetune_requests_total{{{selector},status=~"5.."}}[60s]))'
    )
    assert queries.p95_seconds == (
        "histogram_quantile(0.95, sum by (le) "
        f"(rate(kubetune_request_duration_seconds_bucket{{{selector}}}[60s])))"
    )


def test_version_regex_matches_exactly_the_versions() -> None:
    queries = kubetune_queries("ml", ["a.b-1"], timedelta(seconds=30))
    literal = re.search(r'adapter_version=~("[^"]*")', queries.requests)
    assert literal is not None
    pattern = json.loads(literal.group(1))  # the PromQL string literal, unescaped
    assert re.fullmatch(pattern, "a.b-1")
    assert not re.fullmatch(pattern, "axb-1")


def test_vllm_queries_select_the_canary_deployments_pods() -> None:
    queries = vllm_queries("ml", "support-canary", timedelta(seconds=90))
    assert 'pod=~"support\\\\-canary-[a-z0-9]+-[a-z0-9]+"' in queries.requests
    assert "vllm:e2e_request_latency_seconds_count" in queries.requests
    assert 'finished_reason="abort"' in queries.errors
    assert queries.p95_seconds.endswith("[90s])))")


class _Answer:
    def __init__(self, body: dict[str, Any]) -> None:
        self.body = json.dumps(body).encode()

    def __enter__(self) -> io.BytesIO:
        return io.BytesIO(self.body)

    def __exit__(self, *_: object) -> None:
        return None


def _vector(*values: str) -> dict[str, Any]:
    result = [{"metric": {}, "value": [1700000000.0, v]} for v in values]
    return {"status": "success", "data": {"resultType": "vector", "result": result}}


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        (_vector("42"), 42.0),
        (_vector(), None),  # no series: no traffic
        (_vector("NaN"), None),  # a quantile of no observations
    ],
)
def test_query_values(monkeypatch: pytest.MonkeyPatch, body: dict[str, Any], expected: Any) -> None:
    asked: list[str] = []

    def urlopen(url: str, timeout: float) -> _Answer:
        asked.append(url)
        assert timeout == 2.5
        return _Answer(body)

    monkeypatch.setattr(analysis.urllib.request, "urlopen", urlopen)
    assert PrometheusClient("http://prom:9090/", timeout=2.5).query("up") == expected
    assert asked == ["http://prom:9090/api/v1/query?query=up"]


@pytest.mark.parametrize(
    ("answer", "words"),
    [
        (_vector("1", "2"), "answered 2 series"),
        ({"status": "error", "error": "parse error"}, "parse error"),
        (urllib.error.URLError("connection refused"), "connection refused"),
        (TimeoutError("timed out"), "timed out"),
    ],
)
def test_query_failures(monkeypatch: pytest.MonkeyPatch, answer: Any, words: str) -> None:
    def urlopen(url: str, timeout: float) -> _Answer:
        if isinstance(answer, Exception):
            raise answer
        return _Answer(answer)

    monkeypatch.setattr(analysis.urllib.request, "urlopen", urlopen)
    with pytest.raises(PrometheusError, match=words):
        PrometheusClient("http://prom:9090").query("up")


class _Canned:
    def __init__(self, answers: dict[str, float | Exception | None]) -> None:
        self.answers = answers

    def query(self, promql: str) -> float | None:
        answer = self.answers[promql]
        if isinstance(answer, Exception):
            raise answer
        return answer


QUERIES = analysis.CanaryQueries(requests="r", errors="e", p95_seconds="p")


@pytest.mark.parametrize(
    ("answers", "expected"),
    [
        (
            {"r": 120.0, "e": 3.0, "p": 0.25},
            Measurement(requests=120, errors=3, p95_latency_ms=250),
        ),
        ({"r": None, "e": None, "p": None}, Measurement(requests=0, errors=0)),
        ({"r": 10.0, "e": PrometheusError("down"), "p": 0.1}, Measurement(error="down")),
    ],
)
def test_measure(answers: dict[str, Any], expected: Measurement) -> None:
    assert analysis.measure(_Canned(answers), QUERIES) == expected  # type: ignore[arg-type]
