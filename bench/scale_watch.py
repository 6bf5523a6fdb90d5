"""Client-side clocks for the scale benchmark: when the benchmark first saw each thing happen.

Object timestamps (creationTimestamp, managedFields) have one-second resolution, too coarse
for a 2 s p99 target; watch events are timed on arrival with ``time.monotonic`` instead.
The same watch code times the baseline and kubetune, so the watch's own delay (the same
for both) cancels out of the ratios.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from typing import Any

from kubernetes import client, watch
from kubernetes.client.rest import ApiException

Event = dict[str, Any]


class Timeline:
    """First time (monotonic) each (what, name) was seen; later sightings are ignored."""

    def __init__(self) -> None:
        self._first: dict[str, dict[str, float]] = {}
        self._lock = threading.Lock()

    def mark(self, what: str, name: str, at: float | None = None) -> bool:
        """Record ``what`` for ``name`` unless already recorded; True when it is new."""
        with self._lock:
            seen = self._first.setdefault(what, {})
            if name in seen:
                return False
            seen[name] = time.monotonic() if at is None else at
            return True

    def times(self, what: str) -> dict[str, float]:
        with self._lock:
            return dict(self._first.get(what, {}))

    def count(self, what: str) -> int:
        with self._lock:
            return len(self._first.get(what, {}))

    def wait(self, what: str, count: int, timeout: float) -> bool:
        """Wait until ``count`` names have ``what``; False at the deadline."""
        deadline = time.monotonic() + timeout
        while self.count(what) < count:
            if time.monotonic() > deadline:
                return False
            time.sleep(0.2)
        return True


class Watcher(threading.Thread):
    """One namespaced watch, fed to ``handle`` as raw dicts (no model deserialisation, which
    would cost more CPU than the operator under test); it relists after a 410 Gone."""

    def __init__(
        self, list_fn: Callable[..., Any], args: tuple[Any, ...], handle: Callable[[Event], None]
    ) -> None:
        super().__init__(daemon=True, name=f"watch-{getattr(list_fn, '__name__', 'list')}")
        self.list_fn, self.args, self.handle = list_fn, args, handle
        self._stop_flag = threading.Event()
        self.errors: list[str] = []
        self.version = self._list()

    def _list(self) -> str:
        response = self.list_fn(*self.args, _preload_content=False)
        listed = json.loads(response.data)
        for item in listed.get("items") or []:
            self.handle({"type": "MODIFIED", "object": item})
        return str(listed["metadata"]["resourceVersion"])

    def run(self) -> None:
        while not self._stop_flag.is_set():
            stream = watch.Watch()
            try:
                for event in stream.stream(
                    self.list_fn,
                    *self.args,
                    resource_version=self.version,
                    timeout_seconds=20,
                    allow_watch_bookmarks=True,
                    deserialize=False,
                ):
                    self.version = event["object"]["metadata"]["resourceVersion"]
                    if event["type"] != "BOOKMARK":
                        self.handle(event)
                    if self._stop_flag.is_set():
                        break
            except ApiException as exc:
                if exc.status != 410:
                    self.errors.append(f"{exc.status}: {exc.reason}")
                    time.sleep(0.5)
                self.version = self._list()
            except Exception as exc:  # a dropped connection: watch again from where it was
                self.errors.append(repr(exc))
                time.sleep(0.5)

    def stop(self) -> None:
        self._stop_flag.set()


def _source(
    api: client.ApiClient, kind: str, namespace: str
) -> tuple[Callable[..., Any], tuple[Any, ...]]:
    custom = client.CustomObjectsApi(api)
    match kind:
        case "pods":
            return client.CoreV1Api(api).list_namespaced_pod, (namespace,)
        case "jobs":
            return client.BatchV1Api(api).list_namespaced_job, (namespace,)
    return custom.list_namespaced_custom_object, ("kubetune.io", "v1alpha1", namespace, kind)


def watch_namespace(
    new_api: Callable[[], client.ApiClient],
    namespace: str,
    handlers: dict[str, Callable[[Event], None]],
) -> list[Watcher]:
    """Started watchers, each on its own connection, for the kinds in ``handlers`` (pods,
    jobs, or a kubetune.io plural)."""
    watchers = [
        Watcher(*_source(new_api(), kind, namespace), handle) for kind, handle in handlers.items()
    ]
    for watcher in watchers:
        watcher.start()
    return watchers


def job_of(pod: dict[str, Any]) -> str | None:
    return (pod["metadata"].get("labels") or {}).get("batch.kubernetes.io/job-name")


def has_condition(obj: dict[str, Any], kind: str) -> bool:
    conditions = (obj.get("status") or {}).get("conditions") or []
    return any(c.get("type") == kind and c.get("status") == "True" for c in conditions)


def apply_at_rate(create: Callable[[int], None], count: int, rate: float, workers: int = 4) -> None:
    """Call ``create(i)`` for i in range(count), started at ``rate`` per second (open loop:
    a slow apiserver does not slow the arrivals); 0 means all at once."""
    from concurrent.futures import ThreadPoolExecutor

    started = time.monotonic()
    with ThreadPoolExecutor(workers) as pool:
        futures = []
        for index in range(count):
            if rate > 0:
                delay = started + index / rate - time.monotonic()
                if delay > 0:
                    time.sleep(delay)
            futures.append(pool.submit(create, index))
        for future in futures:
            future.result()
