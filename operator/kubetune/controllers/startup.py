"""Kopf's own settings: where it keeps its bookkeeping, and how loudly it reports."""

from __future__ import annotations

import gc
import logging
from typing import Any

import kopf

from kubetune.api import constants
from kubetune.controllers.common import SETTINGS
from kubetune.controllers.diffbase import SlimAnnotationsDiffBaseStorage


@kopf.on.startup()
def operator_configure(settings: kopf.OperatorSettings, **_: Any) -> None:
    # Handler progress and diff bases live in annotations: the strict status schema would
    # prune anything kopf wrote there, and status belongs to the API's users.
    settings.persistence.progress_storage = kopf.AnnotationsProgressStorage(
        prefix=constants.KOPF_STORAGE_PREFIX
    )
    settings.persistence.diffbase_storage = SlimAnnotationsDiffBaseStorage(
        prefix=constants.KOPF_STORAGE_PREFIX, key="last-handled-configuration"
    )
    settings.persistence.finalizer = constants.FINALIZER_CLEANUP
    # Our own events say what happened; kopf's "Handler succeeded" events would drown them.
    settings.posting.level = logging.WARNING
    settings.watching.server_timeout = 300
    # Handlers block on the apiserver: the threads mostly wait, they do not compute. Each
    # thread keeps one of the k8s.CONNECTIONS alive; more threads also hold more events in
    # flight (peak RSS at 1,000 FineTuneJobs grew with them, bench/operator_scale.py).
    settings.execution.max_workers = 16
    # With explicit namespaces (no globs), kopf need not scan (list/watch) all namespaces:
    # the chart then grants no cluster-scoped namespace access at all.
    namespaces = SETTINGS.process.namespaces
    if namespaces and not any(set(n) & set("*?[!") for n in namespaces):
        settings.scanning.disabled = True
    # What exists now (modules, pydantic schemas, kopf's registry: ~250k objects) lives as
    # long as the process. Frozen, it no longer counts as long-lived, so a full collection
    # comes after far fewer new survivors and cyclic garbage (boto3 clients, exceptions)
    # is freed before it piles up in a burst of events (bench/operator_scale.py, peak RSS).
    gc.freeze()
