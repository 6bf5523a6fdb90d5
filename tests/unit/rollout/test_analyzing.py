"""Durations, analysis checks, when they are due, and the eval gate."""

from __future__ import annotations

from datetime import timedelta

import pytest

from kubetune.api import AnalysisResult, AnalysisSpec, AnalysisStatus, CanaryStatus, EvalGate
from kubetune.api import ResolvedAdapter as R
from kubetune.rollout import Measurement, is_analysis_due, parse_duration
from kubetune.rollout.analyzing import check_eval_gate, evaluate, record
from support.inference import NOW, adapters_by_name, make_adapter


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("90s", 90), ("5m", 300), ("1h30m", 5400), ("500ms", 0.5), ("1.5s", 1.5), ("2h", 7200)],
)
def test_parse_duration(text: str, seconds: float) -> None:
    assert parse_duration(text) == timedelta(seconds=seconds)


@pytest.mark.parametrize("text", ["", "5", "5 m", "m5", "5d", "1h-30m"])
def test_parse_duration_refuses(text: str) -> None:
    with pytest.raises(ValueError, match="not a duration"):
        parse_duration(text)


SPEC = AnalysisSpec(max_error_rate=0.05, max_p95_latency_ms=1000, min_requests=20)


@pytest.mark.parametrize(
    ("measured", "result", "words"),
    [
        (Measurement(requests=100, errors=1, p95_latency_ms=200), AnalysisResult.PASSED,
         "100 requests, error rate 1.00%, p95 200 ms"),
        (Measurement(requests=100, errors=5, p95_latency_ms=200), AnalysisResult.PASSED,
         "error rate 5.00%"),
        (Measurement(requests=100, errors=6, p95_latency_ms=200), AnalysisResult.FAILED,
         "error rate 6.00% above 5.00%"),
        (Measurement(requests=100, errors=0, p95_latency_ms=1500), AnalysisResult.FAILED,
         "p95 latency 1500 ms above 1000 ms"),
        (Measurement(requests=100, errors=50, p95_latency_ms=1500), AnalysisResult.FAILED,
         "error rate 50.00% above 5.00%; p95 latency 1500 ms above 1000 ms"),
        (Measurement(requests=19, errors=19), AnalysisResult.INCONCLUSIVE,
         "19 canary requests, fewer than the 20"),
        (Measurement(requests=None), AnalysisResult.INCONCLUSIVE, "0 canary requests"),
        (Measurement(error="connection refused"), AnalysisResult.INCONCLUSIVE,
         "no measurement: connection refused"),
        (Measurement(requests=20, errors=0, p95_latency_ms=None), AnalysisResult.PASSED,
         "20 requests, error rate 0.00%"),
    ],
)  # fmt: skip
def test_evaluate(measured: Measurement, result: AnalysisResult, words: str) -> None:
    verdict, message = evaluate(SPEC, measured)
    assert verdict == result
    assert words in message


def test_latency_is_not_judged_without_a_limit() -> None:
    spec = AnalysisSpec(min_requests=1)
    verdict, _ = evaluate(spec, Measurement(requests=5, errors=0, p95_latency_ms=99_999))
    assert verdict == AnalysisResult.PASSED


def test_record_counts_failures_over_the_rollout() -> None:
    failed = Measurement(requests=100, errors=10, p95_latency_ms=12.3456)
    first = record(None, AnalysisResult.FAILED, "bad", failed, NOW)
    second = record(first, AnalysisResult.PASSED, "good", Measurement(requests=100, errors=0), NOW)
    third = record(second, AnalysisResult.FAILED, "bad", failed, NOW)
    assert (first.failures, second.failures, third.failures) == (1, 1, 2)
    assert (third.requests, third.error_rate, third.p95_latency_ms) == (100, 0.1, 12.346)
    assert third.last_checked_at == NOW


def _canary(started_ago: int, checked_ago: int | None) -> CanaryStatus:
    analysis = None
    if checked_ago is not None:
        analysis = AnalysisStatus(last_checked_at=NOW - timedelta(seconds=checked_ago))
    return CanaryStatus(
        revision="v2", step_started_at=NOW - timedelta(seconds=started_ago), analysis=analysis
    )


@pytest.mark.parametrize(
    ("started_ago", "checked_ago", "due"),
    [
        (29, None, False),  # the first window is not full yet
        (30, None, True),
        (300, 10, False),
        (300, 30, True),
        (10, 100, False),  # the last check belongs to the previous step
    ],
)
def test_analysis_due_one_interval_after_step_or_check(
    started_ago: int, checked_ago: int | None, due: bool
) -> None:
    assert (
        is_analysis_due(AnalysisSpec(interval="30s"), _canary(started_ago, checked_ago), NOW) is due
    )


STABLE = [R(name="support-bot", adapter_ref="v1"), R(name="sql-helper", adapter_ref="s1")]


@pytest.mark.parametrize(
    ("losses", "margin", "refused"),
    [
        ({"v1": 0.50, "v2": 0.49}, 0.0, False),
        ({"v1": 0.50, "v2": 0.50}, 0.0, False),
        ({"v1": 0.50, "v2": 0.51}, 0.0, True),
        ({"v1": 0.50, "v2": 0.51}, 0.02, False),
        ({"v1": 0.50, "v2": 0.60}, 0.02, True),
        ({"v1": None, "v2": 9.0}, 0.0, False),  # nothing to compare with
        ({"v1": 0.5, "v2": None}, 0.0, False),
    ],
)
def test_eval_gate(losses: dict[str, float | None], margin: float, refused: bool) -> None:
    adapters = adapters_by_name(
        *(make_adapter(name, eval_loss=loss) for name, loss in losses.items()),
        make_adapter("s1", family="sql-helper", eval_loss=9.9),
    )
    canary = [R(name="support-bot", adapter_ref="v2"), R(name="sql-helper", adapter_ref="s1")]
    why = check_eval_gate(EvalGate(max_eval_loss_increase=margin), STABLE, canary, adapters)
    assert (why is not None) == refused
    if refused:
        assert "support-bot: Adapter 'v2' evalLoss" in str(why)


def test_eval_gate_ignores_new_served_names() -> None:
    adapters = adapters_by_name(make_adapter("v1", eval_loss=0.1), make_adapter("n1", eval_loss=5))
    canary = [R(name="support-bot", adapter_ref="v1"), R(name="new-bot", adapter_ref="n1")]
    assert check_eval_gate(EvalGate(), STABLE, canary, adapters) is None
