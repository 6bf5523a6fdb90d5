"""Kopf's diff base ("essence") of an object, built without copying what it throws away.

On every watch event of every watched kind, kopf deep-copies the whole body and then drops
``metadata`` and ``status``; with a thousand FineTuneJobs that copy of pods' and Jobs'
status and managedFields was 15% of the operator's CPU, on the event loop that every new
FineTuneJob waits for (bench/operator_scale.py, py-spy). The essence is kopf's own: it is
built by kopf's code from a body that lacks only the parts kopf discards.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import kopf

_KEPT_METADATA = ("labels", "annotations", "ownerReferences")
"""What kopf reads of metadata to build an essence: the first two it keeps, the owners name
its storage keys."""


class SlimAnnotationsDiffBaseStorage(kopf.AnnotationsDiffBaseStorage):
    def build(
        self, *, body: kopf.Body, extra_fields: Iterable[Any] | None = None
    ) -> kopf.BodyEssence:
        extra = list(extra_fields or [])
        return super().build(body=kopf.Body(_slim(body, extra)), extra_fields=extra)


def _slim(body: kopf.Body, extra_fields: list[Any]) -> dict[str, Any]:
    """``body`` less what kopf drops: status and metadata, unless a handler asked for a field
    of them (``field=`` of an on.update handler)."""
    roots = {(f.split(".") if isinstance(f, str) else list(f))[0] for f in extra_fields if f}
    slim = {k: v for k, v in body.items() if k not in {"metadata", "status"} or k in roots}
    if "metadata" not in roots:
        meta = body.get("metadata") or {}
        slim["metadata"] = {k: meta[k] for k in _KEPT_METADATA if k in meta}
    return slim
