"""Which adapter answers a request: the model name resolved to a version, with weighted splits.

A canary runs inside the same pods: ``support-bot -> {support-bot-v3: 90, support-bot-v4: 10}``.

* A request without a ``user`` goes by smooth weighted round-robin (nginx's algorithm): over
  any run of ``sum(weights)`` consecutive requests each version gets exactly its weight, and
  the versions interleave instead of arriving in bursts. The split is therefore exact and
  deterministic — what a canary analysis that counts requests per version wants — and needs
  no random numbers.
* A request that names a ``user`` (the OpenAI field) is hashed into ``[0, sum(weights))`` and
  lands in its version's slice, so one user stays on one version while the weights hold, in
  every replica alike. Slices are laid out in the route's order; with the canary listed last,
  raising its weight only moves users from stable to canary, never back and forth.

A :class:`RouteTable` is an immutable snapshot built when a config is applied; the round-robin
counters live in it, so a new table starts them afresh.
"""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

BASE = None
"""The version of requests served by the base model without an adapter."""


@dataclass(frozen=True)
class Target:
    """What a request resolved to: the name it asked for and the version that answers."""

    requested: str
    version: str | None  # None: the base model


class WeightedChoice:
    """Picks among versions in proportion to their weights (zero weights never picked)."""

    def __init__(self, weights: Mapping[str, int]) -> None:
        self.weights = {v: w for v, w in weights.items() if w > 0}
        if not self.weights:
            raise ValueError("at least one version needs a positive weight")
        self.total = sum(self.weights.values())
        self._current = dict.fromkeys(self.weights, 0)
        self._lock = threading.Lock()

    def next(self) -> str:
        """The next version by smooth weighted round-robin."""
        with self._lock:
            for version, weight in self.weights.items():
                self._current[version] += weight
            chosen = max(self._current, key=lambda v: self._current[v])
            self._current[chosen] -= self.total
            return chosen

    def for_key(self, key: str) -> str:
        """The version whose slice ``key`` hashes into; stable for a given key and weights."""
        bucket = int.from_bytes(hashlib.sha256(key.encode()).digest()[:8], "big") % self.total
        for version, weight in self.weights.items():
            if bucket < weight:
                return version
            bucket -= weight
        raise AssertionError("unreachable: bucket below total")


class RouteTable:
    """Model names clients may request, and how each resolves to a version."""

    def __init__(
        self,
        base_name: str,
        versions: Iterable[str] = (),
        routes: Mapping[str, Mapping[str, int]] | None = None,
    ) -> None:
        """``versions`` are the loaded adapters; route entries naming others are left out,
        and a route none of whose versions is loaded is not offered at all."""
        self.base_name = base_name
        self.versions = frozenset(versions)
        self.routes: dict[str, WeightedChoice] = {}
        for name, weights in (routes or {}).items():
            available = {v: w for v, w in weights.items() if v in self.versions}
            if any(available.values()):
                self.routes[name] = WeightedChoice(available)

    def resolve(self, model: str, *, user: str | None = None) -> Target | None:
        """The target of a request for ``model``, or None when no such model is served."""
        if model == self.base_name:
            return Target(model, BASE)
        if model in self.versions:
            return Target(model, model)
        choice = self.routes.get(model)
        if choice is None:
            return None
        version = choice.for_key(f"{model}\0{user}") if user else choice.next()
        return Target(model, version)

    def names(self) -> list[str]:
        """Every requestable model name: the base, the served names, the versions."""
        return [self.base_name, *sorted(self.routes), *sorted(self.versions)]

    def weights(self) -> dict[str, dict[str, int]]:
        """The effective weights of each served name (only loaded versions)."""
        return {name: dict(choice.weights) for name, choice in self.routes.items()}
