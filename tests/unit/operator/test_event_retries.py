"""A child's event whose reconcile fails transiently is retried (kopf never retries one)."""

from __future__ import annotations

from typing import Any

import kopf
import pytest

from kubetune import k8s
from kubetune.api import constants
from kubetune.controllers import finetunejob
from kubetune.controllers.polling import Poller

JOB = {
    "metadata": {
        "name": "ft-train",
        "namespace": "team-a",
        "uid": "job-uid",
        "labels": {constants.LABEL_FINETUNEJOB: "ft"},
    }
}
FTJ = {"metadata": {"name": "ft", "namespace": "team-a", "uid": "ftj-uid"}}


class Apiserver:
    """Answers ``get`` with the FineTuneJob, or fails as an overloaded apiserver does."""

    def __init__(self, failures: int) -> None:
        self.failures = failures
        self.reconciled: list[dict[str, Any]] = []

    def get_custom(self, plural: str, namespace: str, name: str) -> dict[str, Any]:
        assert (plural, namespace, name) == ("finetunejobs", "team-a", "ft")
        if self.failures:
            self.failures -= 1
            raise k8s.TransientError("apiserver answered 504: Gateway Timeout")
        return FTJ

    def reconcile(self, body: Any, **_: Any) -> None:
        self.reconciled.append(body)


@pytest.fixture
def retries(monkeypatch: pytest.MonkeyPatch) -> Poller:
    poller = Poller(finetunejob.retry_owner, interval=5.0)
    monkeypatch.setattr(finetunejob, "RETRIES", poller)
    return poller


def _apiserver(monkeypatch: pytest.MonkeyPatch, failures: int) -> Apiserver:
    apiserver = Apiserver(failures)
    monkeypatch.setattr(finetunejob.k8s, "get_custom", apiserver.get_custom)
    monkeypatch.setattr(finetunejob, "reconcile", apiserver.reconcile)
    return apiserver


def test_a_failed_event_reconcile_is_retried_until_one_succeeds(
    monkeypatch: pytest.MonkeyPatch, retries: Poller
) -> None:
    apiserver = _apiserver(monkeypatch, failures=2)
    with pytest.raises(k8s.TransientError):  # kopf still logs the handler's failure
        finetunejob._reconcile_owner(JOB, seen=JOB)
    assert len(retries) == 1
    (_, ref), *_ = retries.take_due()[0]
    with pytest.raises(k8s.TransientError):
        finetunejob.retry_owner(ref)  # the poller logs it and ticks again an interval later
    assert len(retries) == 1
    finetunejob.retry_owner(ref)
    assert apiserver.reconciled == [FTJ]
    assert len(retries) == 0


def test_a_handled_event_leaves_nothing_to_retry(
    monkeypatch: pytest.MonkeyPatch, retries: Poller
) -> None:
    apiserver = _apiserver(monkeypatch, failures=0)
    finetunejob._reconcile_owner(JOB, seen=JOB)
    assert apiserver.reconciled == [FTJ]
    assert len(retries) == 0


def test_a_temporary_error_from_the_reconcile_is_retried_a_permanent_one_is_not(
    monkeypatch: pytest.MonkeyPatch, retries: Poller
) -> None:
    _apiserver(monkeypatch, failures=0)

    def conflicts(body: Any, **_: Any) -> None:
        raise kopf.TemporaryError("ft: status kept changing under this handler", delay=1)

    monkeypatch.setattr(finetunejob, "reconcile", conflicts)
    with pytest.raises(kopf.TemporaryError):
        finetunejob._reconcile_owner(JOB)
    assert len(retries) == 1

    def unparsable(body: Any, **_: Any) -> None:
        raise kopf.PermanentError("FineTuneJob does not parse")

    monkeypatch.setattr(finetunejob, "reconcile", unparsable)
    with pytest.raises(kopf.PermanentError):
        finetunejob.retry_owner({"namespace": "team-a", "name": "ft"})
    assert len(retries) == 0
