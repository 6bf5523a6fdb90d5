"""Which Adapter answers each served name, and whether it can be served here.

``spec.adapters`` names adapters by ``adapterRef`` (pinned) or ``selector`` (the newest
Ready Adapter of a family). Resolution turns that into a concrete, ordered set whose
revision string changes exactly when a different Adapter would answer some name; a change
of that revision is what starts a canary. Every reason an adapter cannot be served is
found here, before anything is deployed, so that it lands in a condition instead of a
crash-looping pod.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from kubetune.api import (
    Adapter,
    AdapterPhase,
    InferenceDeploymentSpec,
    Reason,
    ResolvedAdapter,
    ServedAdapter,
    constants,
)


@dataclass(frozen=True)
class Problem:
    """Why the desired adapters cannot be served (yet)."""

    reason: Reason
    message: str
    waiting: bool = False
    """True when it should clear by itself (an Adapter still being verified)."""


@dataclass(frozen=True)
class Resolution:
    """The adapters the spec asks for now, or the first problem found resolving them."""

    adapters: list[ResolvedAdapter] = field(default_factory=list)
    problem: Problem | None = None

    @property
    def revision(self) -> str:
        return revision_of(self.adapters)


def revision_of(adapters: Iterable[ResolvedAdapter]) -> str:
    """The resolved Adapter names, comma-separated in served-name order (the status's
    ``revision``); Adapters are immutable, so equal revisions serve equal bytes."""
    return ",".join(a.adapter_ref for a in sorted(adapters, key=lambda a: a.name))


def _newest_ready(served: ServedAdapter, adapters: Iterable[Adapter]) -> Adapter | None:
    selector = served.selector
    assert selector is not None
    wanted = {constants.LABEL_ADAPTER_FAMILY: selector.family, **(selector.match_labels or {})}
    candidates = [
        a
        for a in adapters
        if a.status is not None
        and a.status.phase == AdapterPhase.READY
        and not a.metadata.get("deletionTimestamp")
        and all((a.metadata.get("labels") or {}).get(k) == v for k, v in wanted.items())
    ]
    # RFC 3339 timestamps of one apiserver sort as strings; the name breaks ties so that two
    # Adapters created in the same second resolve the same way on every reconcile.
    return max(
        candidates,
        key=lambda a: (a.metadata.get("creationTimestamp") or "", a.metadata["name"]),
        default=None,
    )


def _check(
    served: ServedAdapter, adapter: Adapter | None, spec: InferenceDeploymentSpec
) -> Problem | None:
    if adapter is None:
        if served.selector is not None:
            return Problem(
                Reason.ADAPTER_NOT_FOUND,
                f"{served.name}: no Ready Adapter of family {served.selector.family!r}",
            )
        return Problem(
            Reason.ADAPTER_NOT_FOUND, f"{served.name}: Adapter {served.adapter_ref!r} not found"
        )
    name = adapter.metadata["name"]
    phase = adapter.status.phase if adapter.status else AdapterPhase.PENDING
    if phase == AdapterPhase.FAILED:
        return Problem(Reason.ADAPTER_NOT_READY, f"{served.name}: Adapter {name!r} failed")
    if phase != AdapterPhase.READY:
        return Problem(
            Reason.ADAPTER_NOT_READY,
            f"{served.name}: waiting for Adapter {name!r} to be verified ({phase})",
            waiting=True,
        )
    base, wanted = adapter.spec.base_model, spec.base_model
    if (base.name, base.revision) != (wanted.name, wanted.revision):
        return Problem(
            Reason.BASE_MODEL_MISMATCH,
            f"{served.name}: Adapter {name!r} was trained on {base.name}@{base.revision}, "
            f"not {wanted.name}@{wanted.revision}",
        )
    limit = spec.runtime.max_lora_rank
    if limit is not None and adapter.spec.lora.r > limit:
        return Problem(
            Reason.RANK_TOO_LARGE,
            f"{served.name}: Adapter {name!r} has rank {adapter.spec.lora.r}, above "
            f"runtime.maxLoraRank {limit}",
        )
    return None


def resolve_adapters(spec: InferenceDeploymentSpec, adapters: Iterable[Adapter]) -> Resolution:
    """The Adapter behind each served name, in served-name order, or the first problem."""
    known = list(adapters)
    by_name = {a.metadata["name"]: a for a in known}
    resolved: list[ResolvedAdapter] = []
    for served in sorted(spec.adapters, key=lambda s: s.name):
        if served.adapter_ref is not None:
            adapter = by_name.get(served.adapter_ref)
        else:
            adapter = _newest_ready(served, known)
        problem = _check(served, adapter, spec)
        if problem is not None:
            return Resolution(problem=problem)
        assert adapter is not None
        digest = adapter.status.verified_digest if adapter.status else None
        resolved.append(
            ResolvedAdapter(
                name=served.name,
                adapter_ref=adapter.metadata["name"],
                digest=digest or adapter.spec.digest,
            )
        )
    return Resolution(adapters=resolved)
