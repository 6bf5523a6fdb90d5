"""One request's generation as the event loop sees it: submit, stream, account, clean up.

Whatever the endpoint (completions or chat, streamed or not), a request must hold its adapter
version while it runs (a :class:`~kubetune_server.registry.Lease`, so the version is not
unloaded under it), hand the prompt to the engine thread, carry the engine's events back
across threads, stop the engine when the client goes away, and record the request metrics
labelled by adapter version. That lifecycle lives here, once.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass

from kubetune_server.decoding import SamplingParams
from kubetune_server.engine import DoneEvent, Engine, ErrorEvent, Event, Sequence, TokenEvent
from kubetune_server.metrics import ServerMetrics
from kubetune_server.registry import Lease

CLIENT_CLOSED = 499  # nginx's status for "the client went away first"; not a server error


class GenerationFailedError(Exception):
    """The engine could not finish this request."""


@dataclass(frozen=True)
class Outcome:
    """How a finished generation ended."""

    finish_reason: str
    prompt_tokens: int
    completion_tokens: int


class Generation:
    """A prompt running in the engine for one request; iterate :meth:`chunks`, then close."""

    def __init__(
        self,
        *,
        engine: Engine,
        lease: Lease,
        metrics: ServerMetrics,
        endpoint: str,
        prompt_ids: list[int],
        params: SamplingParams,
        started: float,
    ) -> None:
        self.lease = lease
        self.metrics = metrics
        self.endpoint = endpoint
        self.started = started
        self.outcome: Outcome | None = None
        self._labels = (lease.target.requested, lease.label)
        self._tokens = 0
        self._closed = False
        loop = asyncio.get_running_loop()
        self._events: asyncio.Queue[Event] = asyncio.Queue()

        def sink(event: Event) -> None:
            loop.call_soon_threadsafe(self._events.put_nowait, event)

        self._sequence = Sequence(prompt_ids, lease.slot, params, sink)
        engine.submit(self._sequence)

    async def chunks(self) -> AsyncIterator[str]:
        """Text as it becomes final (possibly empty strings); sets :attr:`outcome` at the end.
        Raises GenerationFailedError when the engine fails the request."""
        while True:
            event = await self._events.get()
            if isinstance(event, ErrorEvent):
                raise GenerationFailedError(event.message)
            self._count_tokens(event)
            if isinstance(event, DoneEvent):
                self.outcome = Outcome(
                    event.finish_reason, event.prompt_tokens, event.completion_tokens
                )
                yield event.text
                return
            yield event.text

    async def text(self) -> str:
        """All of the text (for a non-streamed response)."""
        return "".join([chunk async for chunk in self.chunks()])

    def _count_tokens(self, event: TokenEvent | DoneEvent) -> None:
        new = 1 if isinstance(event, TokenEvent) else event.completion_tokens - self._tokens
        if new <= 0:
            return
        if self._tokens == 0:
            self.metrics.ttft.labels(*self._labels).observe(time.perf_counter() - self.started)
        self._tokens += new
        self.metrics.generated_tokens.labels(*self._labels).inc(new)
        if isinstance(event, DoneEvent):
            self.metrics.prompt_tokens.labels(*self._labels).inc(event.prompt_tokens)

    def close(self, status: int) -> None:
        """Record the request as ended with HTTP ``status``; stop the engine if still going and
        release the adapter version. Idempotent."""
        if self._closed:
            return
        self._closed = True
        self._sequence.cancel()
        self.lease.release()
        elapsed = time.perf_counter() - self.started
        self.metrics.requests.labels(*self._labels, self.endpoint, str(status)).inc()
        self.metrics.latency.labels(*self._labels, self.endpoint).observe(elapsed)
