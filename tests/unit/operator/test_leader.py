"""Leader election when the apiserver cannot be reached: the lease thread never dies of the
error; a leader that cannot renew stands down once its lease would have expired."""

from __future__ import annotations

import threading
from typing import Any

import pytest
import urllib3
from kubernetes import client

from kubetune import k8s
from kubetune.leader import LeaseElector

UNREACHABLE = urllib3.exceptions.MaxRetryError(None, "/apis/coordination.k8s.io", "refused")
"""What the client raises when nothing listens: urllib3's, not an OSError."""


class Unreachable:
    """A Lease API whose every call fails as the client does when nothing listens."""

    def __init__(self) -> None:
        self.calls = 0

    def __getattr__(self, name: str) -> Any:
        def call(*_: Any, **__: Any) -> None:
            self.calls += 1
            raise UNREACHABLE

        return call


def _elector(leases: Unreachable) -> LeaseElector:
    elector = LeaseElector(
        client.ApiClient(),
        namespace="kubetune-system",
        name="kubetune-operator",
        identity="replica-0",
        lease_seconds=1,
        renew_seconds=0.05,
    )
    elector.leases = leases  # type: ignore[assignment]
    return elector


def test_a_leader_that_cannot_renew_stands_down_when_its_lease_expires() -> None:
    leases, lost, stop = Unreachable(), threading.Event(), threading.Event()
    thread = _elector(leases).keep(lost.set, stop)
    try:
        assert lost.wait(timeout=10), "the renewal thread died or never gave up"
        assert leases.calls >= 2  # it kept trying until the deadline
    finally:
        stop.set()
        thread.join(timeout=10)


def test_a_standby_keeps_trying_through_errors_until_stopped() -> None:
    leases, stop = Unreachable(), threading.Event()
    elector = _elector(leases)
    result: list[bool] = []
    thread = threading.Thread(target=lambda: result.append(elector.acquire(stop)))
    thread.start()
    while leases.calls < 3 and thread.is_alive():
        stop.wait(0.01)
    stop.set()
    thread.join(timeout=10)
    assert result == [False]


def test_a_failed_release_is_only_logged(caplog: pytest.LogCaptureFixture) -> None:
    _elector(Unreachable()).release()
    assert "releasing lease kubetune-operator" in caplog.text


def test_an_unreachable_apiserver_is_a_transient_error() -> None:
    def request() -> None:
        raise UNREACHABLE

    with pytest.raises(k8s.TransientError, match="apiserver unreachable"):
        k8s._call(request)
