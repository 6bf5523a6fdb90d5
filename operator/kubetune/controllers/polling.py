"""One poller for all running FineTuneJobs, in place of a kopf timer per job.

For a resource with a timer, kopf keeps every object's last body, and for every object whose
timer runs, a task whose context holds the body of the event that started it. At 1,000
FineTuneJobs that was most of the operator's steady memory (bench/operator_scale.py). The
poller keeps one slim copy of each running job's body, refreshed by its events, and ticks each
job every ``interval`` seconds on a few threads of its own.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Hashable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

log = logging.getLogger(__name__)

Tick = Callable[[dict[str, Any]], None]


@dataclass
class _Tracked:
    body: dict[str, Any]
    due: float
    ticking: bool = False


def slim(body: Any) -> dict[str, Any]:
    """The body without what no tick reads and what costs the most memory: managedFields
    and annotations (kopf's bookkeeping)."""
    metadata = {
        k: v for k, v in body["metadata"].items() if k not in ("managedFields", "annotations")
    }
    return {**dict(body), "metadata": metadata}


class Poller:
    """Calls ``tick(body)`` for each tracked key: at once when first tracked, then every
    ``interval`` seconds after the previous tick started, never two at a time for one key,
    always with the latest body tracked. A tick that raises is logged and retried at the
    next interval, as a timer with ``backoff=interval`` would."""

    def __init__(
        self,
        tick: Tick,
        *,
        interval: float,
        threads: int = 4,
        clock: Callable[[], float] = time.monotonic,
        name: str = "poller",
    ) -> None:
        if interval <= 0:
            raise ValueError("interval must be positive")
        self.tick, self.interval, self.clock, self.name = tick, interval, clock, name
        self._threads = threads
        self._tracked: dict[Hashable, _Tracked] = {}
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._stopped = threading.Event()
        self._thread: threading.Thread | None = None

    def track(self, key: Hashable, body: dict[str, Any]) -> None:
        with self._lock:
            tracked = self._tracked.get(key)
            if tracked is None:
                self._tracked[key] = _Tracked(body, due=self.clock())
                self._wake.set()
            else:
                tracked.body = body

    def forget(self, key: Hashable) -> None:
        with self._lock:
            self._tracked.pop(key, None)

    def __len__(self) -> int:
        return len(self._tracked)

    def take_due(self) -> tuple[list[tuple[Hashable, dict[str, Any]]], float | None]:
        """The keys to tick now, with their bodies (marked as ticking and scheduled one
        interval on), and the time of the next tick after them (None: nothing tracked)."""
        now, due, following = self.clock(), [], None
        with self._lock:
            for key, tracked in self._tracked.items():
                if tracked.ticking:
                    continue
                if tracked.due <= now:
                    tracked.ticking, tracked.due = True, now + self.interval
                    due.append((key, tracked.body))
                elif following is None or tracked.due < following:
                    following = tracked.due
        return due, following

    def run_one(self, key: Hashable, body: dict[str, Any]) -> None:
        try:
            self.tick(body)
        except Exception:
            log.exception("%s: tick of %s failed; next in %.0fs", self.name, key, self.interval)
        finally:
            with self._lock:
                tracked = self._tracked.get(key)
                if tracked is not None:
                    tracked.ticking = False

    def start(self) -> None:
        self._stopped.clear()
        self._thread = threading.Thread(target=self._loop, name=self.name, daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stopped.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout=10)

    def _loop(self) -> None:
        with ThreadPoolExecutor(self._threads, thread_name_prefix=self.name) as pool:
            while not self._stopped.is_set():
                self._wake.clear()  # before taking: a key tracked from now on wakes the wait
                due, following = self.take_due()
                for key, body in due:
                    pool.submit(self.run_one, key, body)
                wait = self.interval if following is None else following - self.clock()
                self._wake.wait(max(0.05, min(wait, self.interval)))
