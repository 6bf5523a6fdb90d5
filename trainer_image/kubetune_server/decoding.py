"""Turning logits into tokens and tokens into text, one step at a time.

The engine decodes token by token for many requests at once, so both halves are per-request
state machines rather than calls to ``generate``:

* :func:`pick_token` — greedy at temperature 0, otherwise temperature and nucleus (top-p)
  sampling from a per-request ``torch.Generator``, so a seeded request repeats exactly no
  matter what else the server is doing.
* :class:`TextStream` — incremental detokenization with OpenAI ``stop`` strings. Text is
  released only once it can no longer turn out to be part of a stop string, and never while
  it ends in a partial UTF-8 character (the tokenizer then yields U+FFFD), so a streamed
  response concatenates to exactly the non-streamed one.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

REPLACEMENT = "\ufffd"


@dataclass(frozen=True)
class SamplingParams:
    """How one request is decoded."""

    max_tokens: int = 16
    temperature: float = 1.0
    top_p: float = 1.0
    seed: int | None = None
    stop: tuple[str, ...] = ()


def pick_token(logits: Any, params: SamplingParams, generator: Any) -> int:
    """The next token id from the last position's logits (a 1-D float tensor)."""
    import torch

    if params.temperature <= 0:
        return int(torch.argmax(logits))
    probs = torch.softmax(logits.float() / params.temperature, dim=-1)
    if params.top_p < 1.0:
        sorted_probs, order = torch.sort(probs, descending=True)
        # Keep the smallest prefix whose mass reaches top_p (always at least one token).
        outside = torch.cumsum(sorted_probs, dim=-1) - sorted_probs >= params.top_p
        sorted_probs[outside] = 0.0
        probs = torch.zeros_like(probs).scatter(0, order, sorted_probs)
    return int(torch.multinomial(probs, 1, generator=generator))


class TextStream:
    """Accumulates generated tokens and releases text that is final."""

    def __init__(self, tokenizer: Any, stop: tuple[str, ...] = ()) -> None:
        self.tokenizer = tokenizer
        self.stop = tuple(s for s in stop if s)
        self.token_ids: list[int] = []
        self.sent = 0  # characters of the decoded text already released
        self.stopped = False

    def _text(self) -> str:
        return self.tokenizer.decode(self.token_ids, skip_special_tokens=True)

    def push(self, token_id: int) -> str:
        """Add one token; return the text it makes final. Sets :attr:`stopped` on a stop string."""
        self.token_ids.append(token_id)
        text = self._text()
        hit = self._first_stop(text)
        if hit is not None:
            self.stopped = True
            return self._release(text, hit)
        end = len(text)
        while end > self.sent and text[end - 1] == REPLACEMENT:
            end -= 1
        return self._release(text, end - self._held_back(text[:end]))

    def finish(self) -> str:
        """All text not yet released, at the end of generation (nothing after a stop)."""
        if self.stopped:
            return ""
        text = self._text()
        return self._release(text, len(text))

    def _first_stop(self, text: str) -> int | None:
        """Where the earliest stop string begins, searching only text that could hold a new one."""
        start = max(0, self.sent - max((len(s) for s in self.stop), default=0))
        found = [i for s in self.stop if (i := text.find(s, start)) >= 0]
        return min(found) if found else None

    def _held_back(self, text: str) -> int:
        """Length of the longest tail of ``text`` that is a proper prefix of a stop string."""
        longest = 0
        for stop in self.stop:
            for size in range(min(len(stop) - 1, len(text) - self.sent), longest, -1):
                if text.endswith(stop[:size]):
                    longest = size
                    break
        return longest

    def _release(self, text: str, end: int) -> str:
        end = max(end, self.sent)
        chunk = text[self.sent : end]
        self.sent = end
        return chunk
