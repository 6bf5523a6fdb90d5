"""Adapter handlers: verify the artifact; guard and clean up on deletion."""

from __future__ import annotations

import time
from typing import Any

import kopf

from kubetune import k8s, metrics
from kubetune.api import (
    Adapter,
    AdapterConditionType,
    AdapterPhase,
    AdapterStatus,
    ConditionStatus,
    DeletionPolicy,
    Reason,
    constants,
)
from kubetune.controllers.common import parse, store_for, transient
from kubetune.status import now, set_condition
from kubetune.storage.s3 import StorageError

ADP = (constants.GROUP, constants.VERSION, "adapters")
PLURAL = "adapters"


@kopf.on.resume(*ADP)
@kopf.on.create(*ADP)
def adapter_verify(body: kopf.Body, **_: Any) -> None:
    """Ready only after the manifest's digest and every file's sha256 verify."""
    started = time.monotonic()
    adapter = parse(Adapter, body)
    status = (adapter.status or AdapterStatus()).model_copy(deep=True)
    if status.phase == AdapterPhase.READY and status.verified_digest == adapter.spec.digest:
        return
    generation = adapter.metadata.get("generation")
    status.observed_generation = generation
    try:
        # Fresh credentials: a denial here fails the Adapter for good.
        manifest = store_for(adapter.spec, adapter.metadata["namespace"], cached=False).verify(
            adapter.spec.uri, adapter.spec.digest
        )
    except StorageError as exc:
        if exc.reason == Reason.S3_UNAVAILABLE:
            # Not a verdict: say why it waits (once), then retry.
            changed = [
                set_condition(
                    status.conditions,
                    kind,
                    ConditionStatus.UNKNOWN,
                    exc.reason,
                    exc.message,
                    generation=generation,
                )
                for kind in (AdapterConditionType.VERIFIED, AdapterConditionType.READY)
            ]
            if any(changed):
                status.phase = AdapterPhase.VERIFYING
                _write(adapter, status)
            metrics.record_reconcile("Adapter", started, ok=False)
            raise transient(exc) from exc
        for kind in (AdapterConditionType.VERIFIED, AdapterConditionType.READY):
            set_condition(
                status.conditions, kind, False, exc.reason, exc.message, generation=generation
            )
        status.phase = AdapterPhase.FAILED
        _write(adapter, status)
        kopf.warn(dict(body), reason=str(exc.reason), message=exc.message)
        metrics.record_reconcile("Adapter", started, ok=True)
        return
    message = f"{len(manifest.files)} files, {manifest.size_bytes} bytes verified"
    for kind in (AdapterConditionType.VERIFIED, AdapterConditionType.READY):
        set_condition(
            status.conditions, kind, True, Reason.VERIFIED, message, generation=generation
        )
    status.phase = AdapterPhase.READY
    status.verified_digest = adapter.spec.digest
    status.size_bytes = manifest.size_bytes
    status.files = len(manifest.files)
    status.verified_at = now()
    _write(adapter, status)
    kopf.info(dict(body), reason=str(Reason.VERIFIED), message=message)
    metrics.record_reconcile("Adapter", started, ok=True)


@kopf.on.delete(*ADP)
def adapter_deleted(body: kopf.Body, **_: Any) -> None:
    """Refuse while an InferenceDeployment serves it; delete the S3 objects if asked to."""
    adapter = parse(Adapter, body)
    namespace, name = adapter.metadata["namespace"], adapter.metadata["name"]
    users = [
        d["metadata"]["name"]
        for d in k8s.list_custom("inferencedeployments", namespace)
        if name in _adapters_of(d)
    ]
    if users:
        message = f"in use by InferenceDeployment {', '.join(sorted(users))}; deletion waits"
        kopf.warn(dict(body), reason=str(Reason.IN_USE), message=message)
        raise kopf.TemporaryError(message, delay=15)
    if adapter.spec.deletion_policy == DeletionPolicy.DELETE:
        try:
            # Deleting data: with the credentials as they are now, not as cached a minute ago.
            store = store_for(adapter.spec, namespace, cached=False)
            manifest = store.load_manifest(adapter.spec.uri, adapter.spec.digest)
            store.delete_artifact(adapter.spec.uri, manifest)
        except StorageError as exc:
            if exc.reason == Reason.NOT_FOUND:
                return
            message = (
                f"deletionPolicy Delete: the artifact cannot be deleted yet ({exc.message}); "
                f"deletion waits. Removing the finalizer {constants.FINALIZER_CLEANUP} "
                "keeps the objects."
            )
            kopf.warn(dict(body), reason=str(exc.reason), message=message)
            raise kopf.TemporaryError(message, delay=15) from exc


def _adapters_of(deployment: dict[str, Any]) -> set[str]:
    """Adapter names an InferenceDeployment names in its spec or serves per its status."""
    spec, status = deployment.get("spec") or {}, deployment.get("status") or {}
    names = {a.get("adapterRef") for a in spec.get("adapters") or []}
    for track in ("stable", "canary"):
        for served in (status.get(track) or {}).get("adapters") or []:
            names.add(served.get("adapterRef") if isinstance(served, dict) else served)
    return {n for n in names if n}


def _write(adapter: Adapter, status: AdapterStatus) -> None:
    k8s.patch_status(
        PLURAL,
        adapter.metadata["namespace"],
        adapter.metadata["name"],
        status.model_dump(mode="json", by_alias=True, exclude_none=True),
        resource_version=adapter.metadata["resourceVersion"],
    )
