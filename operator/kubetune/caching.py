"""A small time-bounded cache for what is costly to build and rarely changes.

The progress poller ticks every running FineTuneJob, and each tick needs an S3 client with
the credentials its spec names. Reading the Secret and building a boto3 client on every tick
made the operator's API requests per job grow with training time (bench/operator_scale.py):
a Secret is read at most once a minute per (namespace, Secret), which is what lets a rotated
Secret take effect, and a client is kept as long as the credentials it was built with are
current.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Hashable
from concurrent.futures import Future
from typing import Generic, TypeVar

V = TypeVar("V")


class TtlCache(Generic[V]):
    """``get(key, make)`` returns the value made for ``key`` less than ``ttl`` seconds ago,
    else makes it anew; at most ``size`` keys, the least recently used dropped first.

    Threads that miss the same key while its value is being made wait for that one call
    (its value or its error) rather than each making it: after an operator restart or when
    a Secret's entry expires, every handler thread would otherwise read the same Secret."""

    def __init__(
        self, *, ttl: float, size: int = 64, clock: Callable[[], float] = time.monotonic
    ) -> None:
        if ttl <= 0 or size <= 0:
            raise ValueError("ttl and size must be positive")
        self.ttl, self.size, self.clock = ttl, size, clock
        self._entries: OrderedDict[Hashable, tuple[float, V]] = OrderedDict()
        self._making: dict[Hashable, Future[V]] = {}
        self._lock = threading.Lock()

    def get(self, key: Hashable, make: Callable[[], V]) -> V:
        with self._lock:
            now = self.clock()
            entry = self._entries.get(key)
            if entry is not None and now - entry[0] < self.ttl:
                self._entries.move_to_end(key)
                return entry[1]
            making = self._making.get(key)
            if making is not None:
                joined = True
            else:
                joined, making = False, Future()
                self._making[key] = making
        if joined:
            return making.result()
        try:
            value = make()  # outside the lock: a slow make must not stall other keys
        except BaseException as exc:
            with self._lock:
                if self._making.get(key) is making:
                    del self._making[key]
            making.set_exception(exc)
            raise
        with self._lock:
            if self._making.get(key) is making:  # not forgotten meanwhile
                del self._making[key]
                self._entries[key] = (now, value)
                self._entries.move_to_end(key)
                while len(self._entries) > self.size:
                    self._entries.popitem(last=False)
        making.set_result(value)
        return value

    def forget(self, key: Hashable) -> None:
        """The next ``get`` makes the value anew, even if a make is under way now."""
        with self._lock:
            self._entries.pop(key, None)
            self._making.pop(key, None)

    def __len__(self) -> int:
        return len(self._entries)
