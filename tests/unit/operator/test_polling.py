"""The poller that copies every running FineTuneJob's progress (in place of a timer per job)."""

from __future__ import annotations

import logging
import threading
from typing import Any

import pytest

from kubetune.controllers.polling import Poller, slim
from support.polling import eventually


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def _poller(clock: Clock, ticks: list[Any] | None = None) -> Poller:
    return Poller(
        lambda body: (ticks if ticks is not None else []).append(body), interval=15.0, clock=clock
    )


def test_a_job_ticks_when_tracked_then_once_per_interval() -> None:
    clock = Clock()
    poller = _poller(clock)
    assert poller.take_due() == ([], None)
    poller.track("a", {"v": 1})
    due, _ = poller.take_due()
    assert due == [("a", {"v": 1})]
    poller.run_one("a", {"v": 1})
    clock.now += 14.9
    assert poller.take_due() == ([], 1015.0)
    clock.now += 0.1
    assert poller.take_due()[0] == [("a", {"v": 1})]


def test_a_tick_gets_the_latest_body_and_a_job_never_ticks_twice_at_once() -> None:
    clock = Clock()
    poller = _poller(clock)
    poller.track("a", {"v": 1})
    poller.take_due()  # ticking now, and still when its next interval comes
    poller.track("a", {"v": 2})  # an event while it ticks: the body changes, not the schedule
    clock.now += 60
    assert poller.take_due() == ([], None)
    poller.run_one("a", {"v": 1})
    assert poller.take_due()[0] == [("a", {"v": 2})]


def test_a_forgotten_job_no_longer_ticks_and_others_keep_their_schedule() -> None:
    clock = Clock()
    poller = _poller(clock)
    poller.track("a", {})
    clock.now += 5
    poller.track("b", {})
    assert [key for key, _ in poller.take_due()[0]] == ["a", "b"]
    poller.run_one("a", {})
    poller.run_one("b", {})
    poller.forget("a")
    assert len(poller) == 1
    clock.now += 15
    assert [key for key, _ in poller.take_due()[0]] == ["b"]


def test_a_failed_tick_is_logged_and_retried_at_the_next_interval(
    caplog: pytest.LogCaptureFixture,
) -> None:
    clock = Clock()
    calls: list[dict[str, Any]] = []

    def tick(body: dict[str, Any]) -> None:
        calls.append(body)
        raise RuntimeError("apiserver restarting")

    poller = Poller(tick, interval=15.0, clock=clock, name="progress")
    poller.track("a", {})
    for _ in range(2):
        (key, body), *_ = poller.take_due()[0]
        with caplog.at_level(logging.ERROR):
            poller.run_one(key, body)
        clock.now += 15
    assert len(calls) == 2
    assert "progress: tick of a failed; next in 15s" in caplog.text
    assert "apiserver restarting" in caplog.text


def test_the_thread_ticks_a_new_job_at_once_and_stops() -> None:
    seen: list[Any] = []
    poller = Poller(seen.append, interval=3600.0, threads=2)
    poller.start()
    try:
        poller.track("a", {"v": 1})  # wakes the loop: no interval's wait before the first tick
        eventually(lambda: seen == [{"v": 1}], timeout=10, what="first tick")
    finally:
        poller.stop()
    assert not any(t.name == "poller" for t in threading.enumerate())


def test_nonsense_interval_is_refused() -> None:
    with pytest.raises(ValueError, match="positive"):
        Poller(lambda body: None, interval=0)


def test_slim_drops_bookkeeping_and_keeps_what_a_tick_reads() -> None:
    body = {
        "apiVersion": "kubetune.io/v1alpha1",
        "kind": "FineTuneJob",
        "metadata": {
            "name": "j",
            "namespace": "n",
            "uid": "u",
            "resourceVersion": "7",
            "managedFields": [{"manager": "kubectl"}],
            "annotations": {"kopf.zalando.org/last-handled-configuration": "{}"},
        },
        "spec": {"output": {"uri": "s3://b/p"}},
        "status": {"phase": "Running"},
    }
    slimmed = slim(body)
    assert slimmed["metadata"] == {
        "name": "j",
        "namespace": "n",
        "uid": "u",
        "resourceVersion": "7",
    }
    assert slimmed["spec"] == body["spec"]
    assert slimmed["status"] == body["status"]
    assert "managedFields" in body["metadata"]  # the event's body is not changed
