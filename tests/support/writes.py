"""Count the writes to custom objects by watching them, to tell settling from looping."""

from __future__ import annotations

import threading
import time
from collections import Counter
from types import TracebackType

from kubernetes import client, watch

from support.resources import GROUP, VERSION


class WriteCounter:
    """Watches ``plurals`` in ``namespace`` while open; every ADDED or MODIFIED is a write."""

    def __init__(self, api: client.ApiClient, namespace: str, plurals: list[str]) -> None:
        self.api, self.namespace, self.plurals = api, namespace, plurals
        self._counts: Counter[str] = Counter()
        self._last = time.monotonic()
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self._failure: Exception | None = None

    def __enter__(self) -> WriteCounter:
        for plural in self.plurals:
            ready = threading.Event()
            thread = threading.Thread(target=self._watch, args=(plural, ready), daemon=True)
            thread.start()
            ready.wait(10)
            self._threads.append(thread)
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout=10)

    def _watch(self, plural: str, ready: threading.Event) -> None:
        try:
            self._follow(plural, ready)
        except Exception as exc:  # surfaced by counts(): a dead watch must not look quiet
            self._failure = exc
            ready.set()

    def _follow(self, plural: str, ready: threading.Event) -> None:
        api = client.CustomObjectsApi(self.api)
        listed = api.list_namespaced_custom_object(GROUP, VERSION, self.namespace, plural)
        version = listed["metadata"]["resourceVersion"]
        ready.set()
        while not self._stop.is_set():
            stream = watch.Watch().stream(
                api.list_namespaced_custom_object,
                GROUP,
                VERSION,
                self.namespace,
                plural,
                resource_version=version,
                timeout_seconds=1,
            )
            for event in stream:
                obj = event["object"]
                version = obj["metadata"]["resourceVersion"]
                if event["type"] in ("ADDED", "MODIFIED"):
                    with self._lock:
                        self._counts[f"{plural}/{obj['metadata']['name']}"] += 1
                        self._last = time.monotonic()

    def quiet_for(self) -> float:
        """Seconds since the last write."""
        self._check()
        with self._lock:
            return time.monotonic() - self._last

    def counts(self) -> dict[str, int]:
        """Writes per ``plural/name`` so far."""
        self._check()
        with self._lock:
            return dict(self._counts)

    def _check(self) -> None:
        if self._failure is not None:
            raise AssertionError(f"a watch stopped: {self._failure!r}") from self._failure
