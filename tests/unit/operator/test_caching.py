"""The time-bounded cache behind the operator's S3 stores."""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest

from kubetune.caching import TtlCache


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


class Maker:
    """Makes numbered values and counts how often it was asked."""

    def __init__(self) -> None:
        self.calls = 0

    def __call__(self) -> int:
        self.calls += 1
        return self.calls


def test_a_value_is_made_once_within_its_ttl_and_again_after() -> None:
    clock, make = Clock(), Maker()
    cache: TtlCache[int] = TtlCache(ttl=60, clock=clock)
    assert [cache.get("k", make) for _ in range(3)] == [1, 1, 1]
    clock.now += 59.9
    assert cache.get("k", make) == 1
    clock.now += 0.1
    assert cache.get("k", make) == 2
    assert make.calls == 2


def test_keys_are_independent() -> None:
    make = Maker()
    cache: TtlCache[int] = TtlCache(ttl=60, clock=Clock())
    assert (cache.get(("ns-a", "s3"), make), cache.get(("ns-b", "s3"), make)) == (1, 2)
    assert cache.get(("ns-a", "s3"), make) == 1


def test_forget_makes_the_next_get_fresh() -> None:
    make = Maker()
    cache: TtlCache[int] = TtlCache(ttl=60, clock=Clock())
    cache.get("k", make)
    cache.forget("k")
    cache.forget("never-there")
    assert cache.get("k", make) == 2


def test_the_least_recently_used_key_goes_when_full() -> None:
    make = Maker()
    cache: TtlCache[int] = TtlCache(ttl=60, size=2, clock=Clock())
    cache.get("a", make)
    cache.get("b", make)
    cache.get("a", make)  # a is now the most recently used
    cache.get("c", make)
    assert len(cache) == 2
    assert cache.get("a", make) == 1
    assert cache.get("b", make) == 4  # b was dropped and is made anew


def test_a_failed_make_caches_nothing() -> None:
    cache: TtlCache[int] = TtlCache(ttl=60, clock=Clock())

    def broken() -> int:
        raise RuntimeError("secret not found")

    with pytest.raises(RuntimeError):
        cache.get("k", broken)
    assert len(cache) == 0
    assert cache.get("k", Maker()) == 1


@pytest.mark.parametrize(("ttl", "size"), [(0, 1), (-1, 1), (1, 0)])
def test_nonsense_bounds_are_refused(ttl: float, size: int) -> None:
    with pytest.raises(ValueError, match="positive"):
        TtlCache(ttl=ttl, size=size)


def test_each_object_has_its_own_lock_while_held() -> None:
    """Per object: a lock held for one object never blocks another (striped locks did)."""
    from kubetune.controllers.common import object_lock

    def free_elsewhere(lock: Any) -> bool:
        """Whether another thread could take ``lock`` now."""
        with ThreadPoolExecutor(1) as other:
            taken = other.submit(lambda: lock.acquire(blocking=False) and (lock.release() or True))
            return bool(taken.result())

    first = object_lock("team-a", "ftj-1")
    with first:
        assert object_lock("team-a", "ftj-1") is first  # the same lock while it is in use
        assert not free_elsewhere(first)
        assert all(free_elsewhere(object_lock("team-a", f"ftj-{i}")) for i in range(2, 200))
        with object_lock("team-a", "ftj-1"):  # re-entrant: a child's event holds it already
            pass


class Cluster:
    """Secrets as the operator reads them, and the S3 clients it builds."""

    def __init__(self) -> None:
        self.secrets = {"s3": {"AWS_ACCESS_KEY_ID": "id-1", "AWS_SECRET_ACCESS_KEY": "key-1"}}
        self.reads = 0
        self.clients: list[dict[str, str] | None] = []

    def read_secret(self, namespace: str, name: str) -> dict[str, str]:
        self.reads += 1
        return dict(self.secrets[name])

    def make_client(self, *, credentials: dict[str, str] | None, **_: Any) -> object:
        self.clients.append(credentials)
        return object()


@pytest.fixture
def stores(monkeypatch: pytest.MonkeyPatch) -> tuple[Cluster, Clock]:
    from kubetune.controllers import common

    cluster, clock = Cluster(), Clock()
    monkeypatch.setattr(common.k8s, "read_secret", cluster.read_secret)
    monkeypatch.setattr(common, "make_client", cluster.make_client)
    monkeypatch.setattr(common, "CREDENTIALS", TtlCache(ttl=60.0, clock=clock))
    monkeypatch.setattr(common, "STORES", TtlCache(ttl=3600.0, clock=clock))
    return cluster, clock


def _access(secret: str | None = "s3", endpoint: str = "http://s3.local:9000") -> Any:
    from kubetune.api import S3Access

    ref = {"credentialsSecretRef": {"name": secret}} if secret else {}
    return S3Access.model_validate({"endpoint": endpoint, **ref})


def test_a_fresh_read_of_an_unchanged_secret_keeps_its_client(
    stores: tuple[Cluster, Clock],
) -> None:
    from kubetune.controllers.common import store_for

    cluster, _ = stores
    first = store_for(_access(), "team-a", cached=False)
    again = store_for(_access(), "team-a", cached=False)
    assert cluster.reads == 2  # each verdict reads the Secret afresh
    assert again is first
    assert len(cluster.clients) == 1


def test_a_rotated_secret_gets_a_client_with_the_new_credentials(
    stores: tuple[Cluster, Clock],
) -> None:
    from kubetune.controllers.common import store_for

    cluster, clock = stores
    first = store_for(_access(), "team-a")
    cluster.secrets["s3"]["AWS_SECRET_ACCESS_KEY"] = "key-2"
    assert store_for(_access(), "team-a") is first  # within the minute: not read again
    assert store_for(_access(), "team-a", cached=False) is not first
    clock.now += 61
    rotated = store_for(_access(), "team-a")
    assert cluster.reads == 3
    assert [c and c["AWS_SECRET_ACCESS_KEY"] for c in cluster.clients] == ["key-1", "key-2"]
    assert store_for(_access(), "team-a", cached=False) is rotated


def test_stores_differ_by_endpoint_and_ambient_credentials_read_no_secret(
    stores: tuple[Cluster, Clock],
) -> None:
    from kubetune.controllers.common import store_for

    cluster, _ = stores
    ambient = store_for(_access(secret=None), "team-a")
    assert cluster.reads == 0
    assert cluster.clients == [None]
    assert store_for(_access(), "team-a") is not ambient
    assert store_for(_access(endpoint="http://other:9000"), "team-a") is not ambient
    assert len(cluster.clients) == 3


class CountingClock(Clock):
    """Counts the gets that reached the cache's lock (each reads the clock there once)."""

    def __init__(self) -> None:
        super().__init__()
        self.reads = 0

    def __call__(self) -> float:
        self.reads += 1
        return self.now


class SlowMaker(Maker):
    """Each make waits until released, so that other threads miss while it runs."""

    def __init__(self, error: Exception | None = None) -> None:
        super().__init__()
        self.started, self.release, self.error = threading.Event(), threading.Event(), error

    def __call__(self) -> int:
        value = super().__call__()
        self.started.set()
        assert self.release.wait(timeout=10)
        if self.error is not None:
            raise self.error
        return value


def _gets_while_making(
    cache: TtlCache[int], clock: CountingClock, make: SlowMaker, count: int
) -> list[object]:
    """``count`` concurrent gets of one key, released once all of them have missed."""
    results: list[object] = []

    def get() -> None:
        try:
            results.append(cache.get("secret", make))
        except RuntimeError as exc:
            results.append(exc)

    threads = [threading.Thread(target=get) for _ in range(count)]
    for thread in threads:
        thread.start()
    deadline = time.monotonic() + 10
    while clock.reads < count and time.monotonic() < deadline:
        time.sleep(0.001)
    make.release.set()
    for thread in threads:
        thread.join(timeout=10)
    return results


def test_threads_that_miss_together_share_one_make() -> None:
    clock, make = CountingClock(), SlowMaker()
    cache: TtlCache[int] = TtlCache(ttl=60, clock=clock)
    assert _gets_while_making(cache, clock, make, 8) == [1] * 8
    assert make.calls == 1
    assert cache.get("secret", make) == 1


def test_a_failed_make_fails_every_thread_that_waited_for_it_and_caches_nothing() -> None:
    clock, failing = CountingClock(), SlowMaker(RuntimeError("secret not found"))
    cache: TtlCache[int] = TtlCache(ttl=60, clock=clock)
    results = _gets_while_making(cache, clock, failing, 4)
    assert [str(r) for r in results] == ["secret not found"] * 4
    assert failing.calls == 1
    assert cache.get("secret", Maker()) == 1


def test_forget_during_a_make_starts_a_fresh_one_that_wins() -> None:
    cache: TtlCache[int] = TtlCache(ttl=60, clock=Clock())
    stale = SlowMaker()
    first = threading.Thread(target=cache.get, args=("secret", stale))
    first.start()
    assert stale.started.wait(timeout=10)
    cache.forget("secret")  # e.g. a verdict that must read the Secret afresh
    assert cache.get("secret", lambda: 42) == 42
    stale.release.set()
    first.join(timeout=10)
    assert cache.get("secret", Maker()) == 42  # the older make did not overwrite it
