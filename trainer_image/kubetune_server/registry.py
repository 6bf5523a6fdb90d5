"""Desired adapters against loaded ones: the reconciler that fetches, attaches, swaps and unloads.

The desired state is a :class:`~kubetune_server.config.ServingConfig` (from the mounted config
file or the admin API). A new one is *staged*: its new versions are fetched, verified and
attached while the previous config keeps serving, and only when every version of it is
settled — Loaded, or Failed for a reason retrying cannot fix — does it *apply* at once: a new
route table (weights included) replaces the old in one assignment, and versions it no longer
names are drained (in-flight requests finish) and detached. Hence:

* no request ever sees a half-applied config, and a canary's weight never points at an
  adapter that is not in memory;
* an in-place change (a canary added to running pods) takes no pod out of service;
* ``appliedGeneration`` tells the controller when a pod runs the config it wrote.

Readiness (``/readyz``) turns true once the first config has applied, i.e. every desired
adapter at startup is loaded (or refused); later changes are staged behind a serving pod,
which is why they do not flip readiness — that would pull every pod out of the Service at
the same moment during an in-place canary. Refused adapters are reported (status, metrics)
and never served; transient failures are retried with exponential backoff.

Everything here runs on the event loop thread; the model is touched only through the engine.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

from kubetune_server.config import AdapterSource, ServingConfig
from kubetune_server.engine import Engine
from kubetune_server.errors import (
    AdapterLoadError,
    AdapterRefusedError,
    ModelNotFoundError,
    ModelUnavailableError,
)
from kubetune_server.fetching import VerifiedAdapter
from kubetune_server.metrics import ServerMetrics
from kubetune_server.routing import RouteTable, Target

log = logging.getLogger(__name__)
Fetcher = Callable[[AdapterSource], VerifiedAdapter]


class AdapterState(StrEnum):
    """Where a desired adapter version is."""

    PENDING = "Pending"  # not loaded yet; retried after a transient failure
    LOADING = "Loading"
    LOADED = "Loaded"
    FAILED = "Failed"  # refused; stays so until its source changes


@dataclass(eq=False)
class AdapterRecord:
    """One desired adapter version and what became of it."""

    source: AdapterSource
    state: AdapterState = AdapterState.PENDING
    reason: str | None = None
    message: str | None = None
    slot: str | None = None
    adapter: VerifiedAdapter | None = None
    attempts: int = 0
    retry_at: float = 0.0
    loaded_at: datetime | None = None

    @property
    def settled(self) -> bool:
        """Loaded or refused: nothing more will happen to it."""
        return self.state in (AdapterState.LOADED, AdapterState.FAILED)

    def to_json(self) -> dict[str, Any]:
        """The record as the admin API shows it."""
        verified = self.adapter
        return {
            "version": self.source.version,
            "uri": self.source.uri,
            "state": self.state.value,
            "reason": self.reason,
            "message": self.message,
            "digest": verified.digest if verified else self.source.digest,
            "rank": verified.rank if verified else None,
            "sizeBytes": verified.size_bytes if verified else None,
            "attempts": self.attempts,
            "loadedAt": self.loaded_at.isoformat() if self.loaded_at else None,
        }


@dataclass(frozen=True)
class _Applied:
    """The config in service: its route table and the slot behind each version."""

    table: RouteTable
    slots: dict[str, str]
    names: frozenset[str]  # every name the config makes requestable, loaded or not
    generation: int | None


@dataclass(eq=False)
class Lease:
    """A request's hold on the version serving it; the version is not unloaded while held."""

    target: Target
    slot: str | None
    label: str  # the adapter_version metric label
    _registry: AdapterRegistry = field(repr=False)
    _released: bool = False

    def release(self) -> None:
        """Let go (idempotent); call on the event loop thread."""
        if not self._released:
            self._released = True
            self._registry._release(self)


class AdapterRegistry:
    """Holds the desired config, loads its adapters, and answers which slot serves a request."""

    def __init__(
        self,
        *,
        engine: Engine,
        fetch: Fetcher,
        base_name: str,
        metrics: ServerMetrics,
        retry_base: float = 1.0,
        retry_max: float = 60.0,
    ) -> None:
        self.engine = engine
        self.fetch = fetch
        self.base_name = base_name
        self.metrics = metrics
        self.retry_base = retry_base
        self.retry_max = retry_max
        self.desired = ServingConfig()
        self.config_error: str | None = None
        self._records: dict[str, AdapterRecord] = {}
        self._applied = _Applied(RouteTable(base_name), {}, frozenset(), None)
        self._serial = 0  # bumped by every set_desired
        self._applied_serial = -1  # the serial of the config in service; -1: none yet
        self._slot_numbers = itertools.count()
        self._attached: set[str] = set()
        self._inflight: Counter[str | None] = Counter()
        self._drained: dict[str, asyncio.Future[None]] = {}
        self._retiring: dict[str, asyncio.Task[None]] = {}
        self._wake = asyncio.Event()
        self._progress = asyncio.Event()

    # -- desired state ---------------------------------------------------------------------

    def set_desired(self, config: ServingConfig) -> int:
        """Stage ``config``; returns its serial for :meth:`wait_applied`. ValueError if it
        uses the base model's name."""
        if self.base_name in config.names():
            raise ValueError(f"{self.base_name!r} is the base model's name")
        records = {}
        for source in config.adapters:
            record = self._records.get(source.version)
            keep = record is not None and record.source == source
            records[source.version] = record if keep else AdapterRecord(source)
        self.desired = config
        self._records = records
        self._serial += 1
        self._wake.set()
        return self._serial

    def record(self, version: str) -> AdapterRecord | None:
        """The record of a desired version."""
        return self._records.get(version)

    @property
    def ready(self) -> bool:
        """A config has applied (all startup adapters settled) and the engine runs."""
        return self._applied_serial >= 0 and self.engine.alive

    @property
    def pending(self) -> bool:
        """A staged config is still waiting for adapters."""
        return self._applied_serial != self._serial

    def status(self) -> dict[str, Any]:
        """What the admin API and /readyz report."""
        return {
            "ready": self.ready,
            "pending": self.pending,
            "generation": self.desired.generation,
            "appliedGeneration": self._applied.generation,
            "configError": self.config_error,
            "baseModel": self.base_name,
            "adapters": [r.to_json() for r in self._records.values()],
            "routes": self._applied.table.weights(),
            "models": self._applied.table.names(),
        }

    def is_applied(self, serial: int) -> bool:
        """Whether the config staged as ``serial`` (or a later one) is in service."""
        return self._applied_serial >= serial

    async def wait_applied(self, serial: int, timeout: float) -> bool:
        """Wait until the config of ``serial`` (or a later one) is in service."""
        return await self.wait_until(lambda: self.is_applied(serial), timeout)

    async def wait_until(self, predicate: Callable[[], bool], timeout: float) -> bool:
        """Wait, at most ``timeout`` seconds, for ``predicate`` to hold after some progress."""
        deadline = time.monotonic() + timeout
        while not predicate():
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return False
            progress = self._progress
            try:
                await asyncio.wait_for(progress.wait(), remaining)
            except TimeoutError:
                return predicate()
        return True

    def _notify(self) -> None:
        self._progress.set()
        self._progress = asyncio.Event()

    # -- requests ----------------------------------------------------------------------------

    def acquire(self, model: str, *, user: str | None = None) -> Lease:
        """Resolve ``model`` and hold the version that will answer it."""
        applied = self._applied
        target = applied.table.resolve(model, user=user)
        if target is None:
            if model in applied.names or model in self.desired.names():
                record = self._records.get(model)
                why = f" ({record.reason}: {record.message})" if record and record.reason else ""
                raise ModelUnavailableError(f"model {model!r} is not loaded{why}")
            raise ModelNotFoundError(f"model {model!r} is not served here")
        slot = applied.slots[target.version] if target.version else None
        self._inflight[slot] += 1
        label = target.version or self.base_name
        self.metrics.in_flight.labels(label).inc()
        return Lease(target, slot, label, self)

    def _release(self, lease: Lease) -> None:
        self._inflight[lease.slot] -= 1
        self.metrics.in_flight.labels(lease.label).dec()
        waiter = self._drained.get(lease.slot or "")
        if self._inflight[lease.slot] <= 0 and waiter is not None and not waiter.done():
            waiter.set_result(None)

    # -- reconciling -------------------------------------------------------------------------

    async def run(self) -> None:
        """Reconcile until cancelled: on every change, and when a retry falls due."""
        while True:
            self._wake.clear()
            try:
                await self._reconcile()
            except Exception:  # a bug here must not end reconciling for the process's life
                log.exception("reconciling adapters failed; retrying")
                self._wake.set()
                await asyncio.sleep(self.retry_base)
            retries = [
                r.retry_at for r in self._records.values() if r.state == AdapterState.PENDING
            ]
            delay = max(0.0, min(retries) - time.monotonic()) if retries else None
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), delay)

    async def _reconcile(self) -> None:
        serial = self._serial
        if serial == 0:
            return  # no desired config yet (e.g. the config file is unreadable): not ready
        for record in list(self._records.values()):
            if self._serial != serial:
                return  # the desired config changed; run() starts over
            if record.state == AdapterState.PENDING and record.retry_at <= time.monotonic():
                await self._load(record)
        settled = all(r.settled for r in self._records.values())
        if self._serial == serial != self._applied_serial and settled:
            self._apply(serial)
        self._collect_garbage()

    async def _load(self, record: AdapterRecord) -> None:
        version = record.source.version
        record.state, record.attempts = AdapterState.LOADING, record.attempts + 1
        self._notify()
        slot = f"slot{next(self._slot_numbers)}"
        try:
            adapter = await asyncio.to_thread(self.fetch, record.source)
            self._attached.add(slot)
            await asyncio.wrap_future(self.engine.call(lambda s: s.attach(slot, adapter.directory)))
        except AdapterLoadError as exc:
            self._attached.discard(slot)  # attach failures leave the slot clean
            self._failed(record, exc)
        except Exception as exc:  # unexpected (e.g. out of memory): retried like a transient
            log.exception("loading %s failed", version)
            self._attached.discard(slot)
            self._failed(record, AdapterLoadError("LoadFailed", f"{type(exc).__name__}: {exc}"))
        else:
            record.state, record.slot, record.adapter = AdapterState.LOADED, slot, adapter
            record.reason = record.message = None
            record.loaded_at = datetime.now(UTC)
            log.info("loaded adapter %s (%s) into %s", version, adapter.digest, slot)
        self._notify()

    def _failed(self, record: AdapterRecord, exc: AdapterLoadError) -> None:
        version = record.source.version
        record.reason, record.message = exc.reason, exc.message
        self.metrics.adapter_failures.labels(version, exc.reason).inc()
        if isinstance(exc, AdapterRefusedError):
            record.state = AdapterState.FAILED
            log.error("refused adapter %s: %s", version, exc)
        else:
            record.state = AdapterState.PENDING
            delay = min(self.retry_max, self.retry_base * 2 ** (record.attempts - 1))
            record.retry_at = time.monotonic() + delay
            log.warning("cannot load adapter %s yet (retry in %.0fs): %s", version, delay, exc)

    def _apply(self, serial: int) -> None:
        slots = {
            v: r.slot for v, r in self._records.items() if r.state == AdapterState.LOADED and r.slot
        }
        table = RouteTable(self.base_name, slots, self.desired.routes)
        self._applied = _Applied(
            table, slots, frozenset(self.desired.names()), self.desired.generation
        )
        self._applied_serial = serial
        generation = self.desired.generation
        self.metrics.applied_generation.set(-1 if generation is None else generation)
        self.metrics.set_routes(table.weights(), set(slots))
        log.info("applied config generation %s: %s", generation, table.weights() or "no routes")
        self._notify()

    def _collect_garbage(self) -> None:
        """Detach slots neither in service nor desired, once their requests have finished."""
        keep = set(self._applied.slots.values()) | {
            r.slot for r in self._records.values() if r.slot
        }
        for slot in self._attached - keep - set(self._retiring):
            self._retiring[slot] = asyncio.create_task(self._retire(slot))

    async def _retire(self, slot: str) -> None:
        try:
            if self._inflight[slot] > 0:
                self._drained[slot] = asyncio.get_running_loop().create_future()
                await self._drained[slot]
            await asyncio.wrap_future(self.engine.call(lambda s: s.detach(slot)))
            self._attached.discard(slot)
            log.info("unloaded %s", slot)
        finally:
            self._drained.pop(slot, None)
            self._retiring.pop(slot, None)
            self._notify()
