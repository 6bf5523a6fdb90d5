"""Names, labels and owner references of child objects: the only place they are spelled."""

from __future__ import annotations

import hashlib
from typing import Any

from kubetune.api import constants

DNS_LABEL_MAX = 63


def child_name(owner: str, suffix: str, *, limit: int = DNS_LABEL_MAX) -> str:
    """``<owner>-<suffix>``, shortened with a stable hash when it would exceed ``limit``.

    Job names end up in pod labels (job-name), which are limited to 63 characters.
    """
    name = f"{owner}-{suffix}"
    if len(name) <= limit:
        return name
    digest = hashlib.sha256(owner.encode()).hexdigest()[:8]
    keep = limit - len(suffix) - len(digest) - 2
    return f"{owner[:keep].rstrip('-')}-{digest}-{suffix}"


def owner_reference(owner: dict[str, Any]) -> dict[str, Any]:
    """A controller reference to ``owner``: children are garbage-collected with it."""
    meta = owner["metadata"]
    return {
        "apiVersion": owner["apiVersion"],
        "kind": owner["kind"],
        "name": meta["name"],
        "uid": meta["uid"],
        "controller": True,
        "blockOwnerDeletion": True,
    }


def labels(component: str, **extra: str) -> dict[str, str]:
    """Labels every child carries; ``extra`` adds the owner's own label."""
    return {
        constants.LABEL_MANAGED_BY: constants.MANAGED_BY,
        constants.LABEL_COMPONENT: component,
        **extra,
    }


def child_metadata(
    owner: dict[str, Any], name: str, component: str, **extra: str
) -> dict[str, Any]:
    """Metadata of a namespaced child of ``owner``."""
    return {
        "name": name,
        "namespace": owner["metadata"]["namespace"],
        "labels": labels(component, **extra),
        "ownerReferences": [owner_reference(owner)],
    }
