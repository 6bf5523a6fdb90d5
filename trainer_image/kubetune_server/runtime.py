"""The server's moving parts, and how they start in the background and stop.

The HTTP server comes up first and the model loads behind it, so the probes answer from the
first second: /startupz says "loading" instead of the connection being refused, and a model
that cannot load shows its reason on /livez and /startupz rather than only in a log.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from dataclasses import dataclass, field
from typing import Any

from fastapi import Request

from kubetune_server.config import ServingConfig
from kubetune_server.engine import Engine
from kubetune_server.errors import ModelUnavailableError
from kubetune_server.fetching import AdapterFetcher
from kubetune_server.metrics import ServerMetrics
from kubetune_server.registry import AdapterRegistry
from kubetune_server.settings import Settings
from kubetune_server.slots import AdapterSlots
from kubetune_server.watching import ConfigWatcher

log = logging.getLogger(__name__)


@dataclass(eq=False)
class Runtime:
    """The parts one server process is made of; engine and registry exist once started."""

    settings: Settings
    metrics: ServerMetrics = field(default_factory=ServerMetrics)
    created: int = field(default_factory=lambda: int(time.time()))
    engine: Engine | None = None
    registry: AdapterRegistry | None = None
    startup_error: str | None = None
    _tasks: list[asyncio.Task[Any]] = field(default_factory=list)

    def require_engine(self) -> Engine:
        """The engine; ModelUnavailableError while the model loads."""
        if self.engine is None:
            raise ModelUnavailableError(self.startup_error or "the model is still loading")
        return self.engine

    def require_registry(self) -> AdapterRegistry:
        """The adapter registry; ModelUnavailableError while the model loads."""
        if self.registry is None:
            raise ModelUnavailableError(self.startup_error or "the model is still loading")
        return self.registry

    async def start(self) -> None:
        """Load the model, start the engine, reconciler and config watcher (in the background)."""
        self._tasks.append(asyncio.create_task(self._start(), name="kubetune-startup"))

    async def _start(self) -> None:
        try:
            await self._start_parts()
        except Exception as exc:  # reported on /livez and /startupz
            log.exception("cannot start")
            self.startup_error = f"cannot start: {exc}"

    async def _start_parts(self) -> None:
        from kubetune_server.loading import load_base_model

        model, tokenizer = await asyncio.to_thread(load_base_model, self.settings)
        engine = Engine(AdapterSlots(model), tokenizer, max_active=self.settings.serving.max_active)
        engine.start()
        adapters = self.settings.adapters
        registry = AdapterRegistry(
            engine=engine,
            fetch=AdapterFetcher(self.settings).fetch,
            base_name=self.settings.model.public_name,
            metrics=self.metrics,
            retry_base=adapters.retry_base,
            retry_max=adapters.retry_max,
        )
        if adapters.config_path is None:
            registry.set_desired(ServingConfig())
        else:
            watcher = ConfigWatcher(adapters.config_path, registry, self.metrics)
            watcher.poll()  # the startup config, before anything is reported ready
            self._tasks.append(asyncio.create_task(watcher.run(adapters.poll_interval)))
        self._tasks.append(asyncio.create_task(registry.run(), name="kubetune-registry"))
        self.engine, self.registry = engine, registry
        log.info("serving %s", self.settings.model.public_name)

    async def stop(self) -> None:
        """Cancel the background tasks and stop the engine."""
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        if self.engine is not None:
            await asyncio.to_thread(self.engine.stop)


def runtime_of(request: Request) -> Runtime:
    """The runtime of the app serving ``request``."""
    return request.app.state.runtime
