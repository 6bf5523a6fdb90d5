"""The trainer's S3 operations ride out an outage up to a deadline and never retry refusals."""

from __future__ import annotations

from typing import Any

import pytest
from botocore.exceptions import ClientError, EndpointConnectionError

from kubetune.api import Reason
from kubetune_trainer import storage
from kubetune_trainer.errors import TrainerError
from kubetune_trainer.storage import ObjectStore, S3Uri, retry_seconds_from_env

URI = S3Uri("b", "run/progress.json")


class Clock:
    """time.monotonic and time.sleep for the storage module: sleeping advances the clock."""

    def __init__(self) -> None:
        self.now = 1000.0
        self.sleeps: list[float] = []

    def monotonic(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


class FlakyClient:
    """put_object fails with ``errors`` in turn, then succeeds."""

    def __init__(self, *errors: Exception) -> None:
        self.errors = list(errors)
        self.calls = 0

    def put_object(self, **_: Any) -> dict[str, Any]:
        self.calls += 1
        if self.errors:
            raise self.errors.pop(0)
        return {}


def unreachable() -> EndpointConnectionError:
    return EndpointConnectionError(endpoint_url="http://127.0.0.1:1")


def client_error(code: str, status: int) -> ClientError:
    return ClientError(
        {"Error": {"Code": code}, "ResponseMetadata": {"HTTPStatusCode": status}}, "PutObject"
    )


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> Clock:
    fake = Clock()
    monkeypatch.setattr(storage.time, "monotonic", fake.monotonic)
    monkeypatch.setattr(storage.time, "sleep", fake.sleep)
    return fake


def test_an_outage_shorter_than_the_deadline_is_ridden_out(clock: Clock) -> None:
    client = FlakyClient(*[unreachable() for _ in range(8)], client_error("SlowDown", 503))
    store = ObjectStore(client, retry_seconds=300)

    store.put_bytes(b"{}", URI)

    assert client.calls == 10
    assert clock.sleeps[:5] == [1, 2, 4, 5, 5]  # backoff, capped
    assert sum(clock.sleeps) < 300


def test_an_outage_past_the_deadline_fails_with_s3_unavailable(clock: Clock) -> None:
    client = FlakyClient(*[unreachable() for _ in range(1000)])
    store = ObjectStore(client, retry_seconds=30)

    with pytest.raises(TrainerError) as caught:
        store.put_bytes(b"{}", URI)

    assert caught.value.reason == Reason.S3_UNAVAILABLE
    assert "30s" in caught.value.message
    assert "KUBETUNE_S3_RETRY_SECONDS" in caught.value.message
    assert sum(clock.sleeps) == pytest.approx(30)


@pytest.mark.parametrize(
    ("error", "reason"),
    [
        (client_error("AccessDenied", 403), Reason.S3_ACCESS_DENIED),
        (client_error("InvalidRequest", 400), Reason.S3_UNAVAILABLE),
    ],
)
def test_refusals_are_not_retried(clock: Clock, error: ClientError, reason: Reason) -> None:
    client = FlakyClient(error)
    store = ObjectStore(client, retry_seconds=300)

    with pytest.raises(TrainerError) as caught:
        store.put_bytes(b"{}", URI)

    assert caught.value.reason == reason
    assert client.calls == 1
    assert clock.sleeps == []


def test_without_a_deadline_the_first_failure_is_final(clock: Clock) -> None:
    client = FlakyClient(unreachable())

    with pytest.raises(TrainerError, match="cannot write"):
        ObjectStore(client).put_bytes(b"{}", URI)

    assert client.calls == 1


def test_a_write_without_retry_fails_at_once(clock: Clock) -> None:
    client = FlakyClient(unreachable())

    with pytest.raises(TrainerError, match="cannot write"):
        ObjectStore(client, retry_seconds=300).put_bytes(b"{}", URI, retry=False)

    assert client.calls == 1
    assert clock.sleeps == []


@pytest.mark.parametrize(("value", "seconds"), [(None, 300.0), ("", 300.0), ("12.5", 12.5)])
def test_the_deadline_comes_from_the_environment(
    monkeypatch: pytest.MonkeyPatch, value: str | None, seconds: float
) -> None:
    if value is None:
        monkeypatch.delenv("KUBETUNE_S3_RETRY_SECONDS", raising=False)
    else:
        monkeypatch.setenv("KUBETUNE_S3_RETRY_SECONDS", value)

    assert retry_seconds_from_env() == seconds


@pytest.mark.parametrize("value", ["-1", "soon"])
def test_a_bad_deadline_is_a_clear_error(monkeypatch: pytest.MonkeyPatch, value: str) -> None:
    monkeypatch.setenv("KUBETUNE_S3_RETRY_SECONDS", value)

    with pytest.raises(ValueError, match="KUBETUNE_S3_RETRY_SECONDS"):
        retry_seconds_from_env()
