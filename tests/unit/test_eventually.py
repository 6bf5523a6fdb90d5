"""The tests' wait: errors mean "not yet", except one that says waiting cannot help."""

from __future__ import annotations

import pytest

from support.polling import HopelessError, eventually


def test_a_hopeless_check_ends_the_wait_at_once() -> None:
    calls: list[int] = []

    def check() -> None:
        calls.append(1)
        raise HopelessError("the run failed: OutOfMemory")

    with pytest.raises(HopelessError, match="OutOfMemory"):
        eventually(check, timeout=60, interval=0)
    assert calls == [1]


def test_other_errors_and_falsy_values_mean_not_yet() -> None:
    outcomes: list[object] = [ValueError("apiserver restarting"), None, {}, "Succeeded"]

    def check() -> object:
        outcome = outcomes.pop(0)
        if isinstance(outcome, Exception):
            raise outcome
        return outcome

    assert eventually(check, timeout=60, interval=0) == "Succeeded"
    assert outcomes == []


def test_the_deadline_reports_what_was_awaited_and_the_last_error() -> None:
    def check() -> None:
        raise ValueError("connection refused")

    with pytest.raises(AssertionError, match=r"Running not met within 0\.0s; .*connection refused"):
        eventually(check, timeout=0, interval=0, what="Running")
