"""What every controller needs: the settings, parsing with a clear error, S3 stores."""

from __future__ import annotations

import asyncio
import contextvars
import hashlib
import json
import threading
import weakref
from collections.abc import Callable
from concurrent.futures import Executor
from contextlib import AbstractContextManager
from typing import Any, TypeVar

import kopf
from kubernetes.client.rest import ApiException
from pydantic import BaseModel, ValidationError

from kubetune import k8s
from kubetune.api import Reason, S3Access
from kubetune.caching import TtlCache
from kubetune.settings import Settings
from kubetune.storage.s3 import ArtifactStore, StorageError, make_client

M = TypeVar("M", bound=BaseModel)

SETTINGS = Settings.from_env()


_LOCKS: weakref.WeakValueDictionary[tuple[str, str], Any] = weakref.WeakValueDictionary()
_LOCKS_GUARD = threading.Lock()


def object_lock(namespace: str, name: str) -> AbstractContextManager[bool]:
    """One reconcile of an object at a time in this process (a re-entrant lock per object,
    dropped once nobody holds it). Its triggers run concurrently on handler threads (its own
    events, its children's, timers, retries): without this, two reconciles read one version,
    both act, one write gets a 409. Per object, not striped: with a thousand FineTuneJobs a new
    one waited behind reconciles of others sharing its stripe (bench/operator_scale.py)."""
    with _LOCKS_GUARD:
        lock = _LOCKS.get((namespace, name))
        if lock is None:
            lock = _LOCKS[(namespace, name)] = threading.RLock()
        return lock


async def in_thread(executor: Executor | None, fn: Callable[..., None], *args: Any) -> None:
    """``fn(*args)`` on a thread of ``executor`` (None: kopf's), from an async handler.
    kopf.event() finds its queue through context variables: they travel with the call."""
    run = contextvars.copy_context().run
    await asyncio.get_running_loop().run_in_executor(executor, run, fn, *args)


def parse(model: type[M], body: Any) -> M:
    """The object as a model; an object that does not parse is a permanent error (the
    apiserver's schema makes that rare: it means the operator and the CRD disagree)."""
    try:
        return model.model_validate(dict(body))
    except ValidationError as exc:
        raise kopf.PermanentError(f"{model.__name__} does not parse: {exc}") from exc


_S3_KEYS = ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN")

CREDENTIALS: TtlCache[dict[str, str]] = TtlCache(ttl=60.0, size=256)
"""Secret data by (namespace, Secret): a rotated Secret is read within a minute, and a
verdict that a denial would make final reads it afresh (``cached=False``)."""

STORES: TtlCache[ArtifactStore] = TtlCache(ttl=3600.0)
"""Stores by (endpoint, region, a digest of the credentials): a fresh read of an unchanged
Secret keeps its client. Building one per verification left ~180 KB of cyclic garbage per
Adapter, which made the operator's peak RSS at 1,000 FineTuneJobs (bench/operator_scale.py)."""


def store_for(access: S3Access, namespace: str, *, cached: bool = True) -> ArtifactStore:
    """An S3 store with the endpoint, region and credentials ``access`` names."""
    secret = access.credentials_secret_ref
    endpoint = access.endpoint or SETTINGS.storage.endpoint
    region = access.region or SETTINGS.storage.region
    credentials: dict[str, str] | None = None
    if secret is not None:
        key = (namespace, secret.name)
        if not cached:
            CREDENTIALS.forget(key)
        credentials = CREDENTIALS.get(key, lambda: _credentials(namespace, secret.name))
    fingerprint = hashlib.sha256(json.dumps(credentials, sort_keys=True).encode()).hexdigest()
    return STORES.get(
        (endpoint, region, fingerprint),
        lambda: ArtifactStore(
            make_client(endpoint=endpoint, region=region, credentials=credentials)
        ),
    )


def _credentials(namespace: str, name: str) -> dict[str, str]:
    """The Secret's data; a missing Secret or a key that is not text is a reason
    (SecretNotFound, AccessDenied), not a traceback."""
    try:
        data = k8s.read_secret(namespace, name)
    except ApiException as exc:
        if exc.status == 404:
            raise StorageError(
                Reason.SECRET_NOT_FOUND, f"Secret {name!r} not found in namespace {namespace}"
            ) from exc
        raise
    for key in _S3_KEYS:
        value = data.get(key, "")
        if not (value.isascii() and value.isprintable()):
            raise StorageError(
                Reason.ACCESS_DENIED, f"Secret {name!r}: {key} is not printable ASCII text"
            )
    return data


def transient(exc: Exception) -> kopf.TemporaryError:
    return kopf.TemporaryError(str(exc), delay=10)
