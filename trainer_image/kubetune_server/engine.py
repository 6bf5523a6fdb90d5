"""One thread owns the model and advances every request one token at a time, in turn.

Why this design, and not the obvious alternatives:

* ``set_adapter(name)`` then ``generate()`` per request is wrong without a lock, because the
  active adapter is one setting of a shared model: two requests interleaving would each
  generate with whichever adapter was set last, i.e. answers would cross between adapters.
  With a lock around ``set_adapter`` + ``generate`` it is correct but serial: a long request
  blocks every other one, streaming is all-or-nothing per request, and loading an adapter
  waits behind generations.
* A batched mixed-adapter forward (continuous batching with padded, per-row KV caches) has
  the best throughput, and is what vLLM does; it is the production runtime for that.

Here a single engine thread is the only code that touches the model. Each request is a
:class:`Sequence` with its own KV cache and its own random generator; every round the engine
runs one forward pass per active sequence, naming that sequence's adapter explicitly (PEFT's
per-call ``adapter_names``, see :mod:`kubetune_server.slots`), so there is no adapter switch
for requests to race on. Requests interleave token by token — streams flow concurrently and
time to first token stays short under load — and an adapter load or unload runs between two
rounds (:meth:`Engine.call`), so nothing ever changes the model under a forward pass. Results
cross back to the event loop through the per-request ``sink``.
"""

from __future__ import annotations

import logging
import queue
import random
import threading
from collections import deque
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import Any, TypeVar

from kubetune_server.decoding import SamplingParams, TextStream, pick_token
from kubetune_server.slots import AdapterSlots

log = logging.getLogger(__name__)
T = TypeVar("T")


@dataclass(frozen=True)
class TokenEvent:
    """One token was generated; ``text`` is what it made final (often empty mid-word)."""

    text: str


@dataclass(frozen=True)
class DoneEvent:
    """Generation ended; ``text`` is the last of the text, ``finish_reason`` OpenAI's."""

    text: str
    finish_reason: str  # "stop" (end of sequence or a stop string) or "length"
    prompt_tokens: int
    completion_tokens: int


@dataclass(frozen=True)
class ErrorEvent:
    """Generation failed; the request gets this message."""

    message: str


Event = TokenEvent | DoneEvent | ErrorEvent
Sink = Callable[[Event], None]


@dataclass(eq=False)
class Sequence:
    """One request in the engine: prompt, adapter slot, decoding state."""

    prompt_ids: list[int]
    slot: str | None
    params: SamplingParams
    sink: Sink
    cancelled: bool = False
    cache: Any = None
    generated: int = 0
    last_token: int | None = None
    stream: TextStream | None = field(default=None, repr=False)
    generator: Any = field(default=None, repr=False)

    def cancel(self) -> None:
        """Stop generating (the client went away); safe from any thread."""
        self.cancelled = True


@dataclass(frozen=True)
class _Call:
    fn: Callable[[AdapterSlots], Any]
    future: Future[Any]


_STOP = object()


class Engine:
    """The model's only user: runs sequences round-robin and adapter changes between rounds."""

    def __init__(self, slots: AdapterSlots, tokenizer: Any, *, max_active: int = 8) -> None:
        self.slots = slots
        self.tokenizer = tokenizer
        self.max_active = max_active
        self.stop_token_ids = _stop_token_ids(slots.model, tokenizer)
        self._inbox: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self._waiting: deque[Sequence] = deque()
        self._active: list[Sequence] = []
        self._thread = threading.Thread(target=self._run, name="kubetune-engine", daemon=True)

    @property
    def alive(self) -> bool:
        """Whether the engine thread is running."""
        return self._thread.is_alive()

    @property
    def max_length(self) -> int:
        """The longest prompt plus completion the model takes, in tokens."""
        return int(getattr(self.slots.model.config, "max_position_embeddings", 2048))

    def start(self) -> None:
        """Start the engine thread."""
        self._thread.start()

    def stop(self, timeout: float = 10.0) -> None:
        """Fail what is still queued or running and end the thread."""
        self._inbox.put(_STOP)
        self._thread.join(timeout)

    def submit(self, sequence: Sequence) -> None:
        """Queue a sequence; its events arrive through its sink, from the engine thread."""
        self._inbox.put(sequence)

    def call(self, fn: Callable[[AdapterSlots], T]) -> Future[T]:
        """Run ``fn(slots)`` on the engine thread between two rounds; its result or exception
        lands in the returned future."""
        future: Future[T] = Future()
        self._inbox.put(_Call(fn, future))
        return future

    def _run(self) -> None:
        while self._receive(block=not (self._active or self._waiting)):
            while self._waiting and len(self._active) < self.max_active:
                self._active.append(self._start(self._waiting.popleft()))
            for sequence in list(self._active):
                if not self._step(sequence):
                    self._active.remove(sequence)
        for sequence in [*self._active, *self._waiting]:
            _deliver(sequence, ErrorEvent("the server is shutting down"))

    def _receive(self, *, block: bool) -> bool:
        """Take everything in the inbox (waiting for one item when idle); False on stop."""
        while True:
            try:
                item = self._inbox.get(block=block)
            except queue.Empty:
                return True
            block = False
            if item is _STOP:
                return False
            if isinstance(item, Sequence):
                self._waiting.append(item)
            else:
                self._run_call(item)

    def _run_call(self, call: _Call) -> None:
        if not call.future.set_running_or_notify_cancel():
            return
        try:
            call.future.set_result(call.fn(self.slots))
        except Exception as exc:  # handed to the caller through the future
            call.future.set_exception(exc)

    def _start(self, sequence: Sequence) -> Sequence:
        import torch

        seed = sequence.params.seed
        sequence.generator = torch.Generator().manual_seed(
            seed if seed is not None else random.getrandbits(63)
        )
        sequence.stream = TextStream(self.tokenizer, sequence.params.stop)
        return sequence

    def _step(self, sequence: Sequence) -> bool:
        """Generate one token of ``sequence``; False when it is finished."""
        import torch

        if sequence.cancelled:
            return False
        stream = sequence.stream
        assert stream is not None
        tokens = sequence.prompt_ids if sequence.cache is None else [sequence.last_token]
        try:
            with torch.inference_mode():
                output = self.slots.model(
                    input_ids=torch.tensor([tokens]),
                    cache=sequence.cache,
                    use_cache=True,
                    logits_to_keep=1,
                    **self.slots.forward_kwargs(sequence.slot),
                )
                token = pick_token(output.logits[0, -1], sequence.params, sequence.generator)
        except Exception as exc:  # one request failing must not stop the others
            log.exception("generation failed")
            _deliver(sequence, ErrorEvent(f"generation failed: {exc}"))
            return False
        sequence.cache = output.cache
        sequence.last_token = token
        sequence.generated += 1
        if token in self.stop_token_ids:
            return self._finish(sequence, "", "stop")
        text = stream.push(token)
        if stream.stopped:
            return self._finish(sequence, text, "stop")
        if sequence.generated >= sequence.params.max_tokens:
            return self._finish(sequence, text, "length")
        return _deliver(sequence, TokenEvent(text))

    def _finish(self, sequence: Sequence, text: str, reason: str) -> bool:
        assert sequence.stream is not None
        text += sequence.stream.finish()
        done = DoneEvent(text, reason, len(sequence.prompt_ids), sequence.generated)
        _deliver(sequence, done)
        return False


def _deliver(sequence: Sequence, event: Event) -> bool:
    """Hand ``event`` to the request; False (and the sequence cancelled) if it is gone."""
    try:
        sequence.sink(event)
    except RuntimeError:  # the event loop closed under us: nobody is listening any more
        sequence.cancel()
        return False
    return not sequence.cancelled


def _stop_token_ids(model: Any, tokenizer: Any) -> frozenset[int]:
    """End-of-sequence ids from the generation config and the tokenizer."""
    ids: set[int] = set()
    config = getattr(model, "generation_config", None)
    configured = getattr(config, "eos_token_id", None)
    if isinstance(configured, int):
        ids.add(configured)
    elif configured:
        ids.update(configured)
    if tokenizer.eos_token_id is not None:
        ids.add(tokenizer.eos_token_id)
    return frozenset(ids)
