"""FineTuneJob handlers: every trigger runs the same level-triggered reconcile.

Triggers are the FineTuneJob's own changes and events of its Jobs and pods; a poller
(:mod:`kubetune.controllers.polling`) refreshes progress from S3 while it trains. Each
reconcile reads the current state by deterministic names, asks :mod:`kubetune.lifecycle`
what to do, does it, and writes status once, only when it changed.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from typing import Any

import kopf
from kubernetes.client.rest import ApiException
from pydantic import ValidationError

from kubetune import artifacts, k8s, metrics
from kubetune.api import (
    FineTuneJob,
    FineTuneJobConditionType,
    FineTuneJobPhase,
    FineTuneJobStatus,
    Reason,
    constants,
)
from kubetune.api.finetunejob import Progress
from kubetune.builders.adapter import adapter_name, build_adapter
from kubetune.builders.training import (
    build_config_map,
    build_rendezvous_service,
    build_training_job,
    build_validation_job,
    training_job_name,
    validation_job_name,
)
from kubetune.controllers.common import (
    SETTINGS,
    in_thread,
    object_lock,
    parse,
    store_for,
    transient,
)
from kubetune.controllers.polling import Poller, slim
from kubetune.failures import image_pull_failure, was_preempted
from kubetune.lifecycle import (
    TERMINAL,
    Action,
    Observed,
    Plan,
    job_signal,
    needs_artifact_check,
    needs_pods,
    plan_finetunejob,
)
from kubetune.status import is_true, now
from kubetune.storage.s3 import ArtifactStore, StorageError

Cond = FineTuneJobConditionType
JOB_NAME_LABEL = "batch.kubernetes.io/job-name"
FTJ = (constants.GROUP, constants.VERSION, "finetunejobs")
PLURAL = "finetunejobs"
log = logging.getLogger(__name__)


_OWN_CHANGES = ThreadPoolExecutor(max_workers=16, thread_name_prefix="finetunejob-changed")
"""A FineTuneJob's own changes (created, spec edited, resumed) reconcile on these threads,
not in kopf's executor: a new FineTuneJob gets its validation Job without waiting behind
the Job events and progress ticks of the thousands already running (bench/operator_scale.py
measures apply -> Job created). A creation waits on six requests, about a second on a
loaded apiserver: four threads (tried) kept up with only four arrivals a second."""


@kopf.on.resume(*FTJ)
@kopf.on.create(*FTJ)
@kopf.on.update(*FTJ, field="spec")
async def finetunejob_changed(body: kopf.Body, **_: Any) -> None:
    await in_thread(_OWN_CHANGES, reconcile, body)


@kopf.on.delete(*FTJ, optional=True)
def finetunejob_deleted(body: kopf.Body, **_: Any) -> None:
    """Children go with it (owner references); only the phase gauge must forget it."""
    metrics.forget(body["metadata"]["uid"])


_reconciled: dict[str, tuple[Any, ...]] = {}
"""Job uid -> the :func:`~kubetune.lifecycle.job_signal` of its last event reconciled."""


def _job_news(body: kopf.Body, type: str | None, **_: Any) -> bool:
    """Whether a Job event may change a decision. Filtered here, the other events never take
    a handler thread (the queue that new FineTuneJobs wait in)."""
    return type == "DELETED" or _reconciled.get(body["metadata"]["uid"]) != job_signal(body)


@kopf.on.event(
    "batch", "v1", "jobs", labels={constants.LABEL_FINETUNEJOB: kopf.PRESENT}, when=_job_news
)
def finetunejob_job_changed(body: kopf.Body, type: str | None, **_: Any) -> None:
    uid = body["metadata"]["uid"]
    if type == "DELETED":
        _reconciled.pop(uid, None)
        _reconcile_owner(body)
        return
    seen = dict(body)
    _reconcile_owner(body, seen=seen)
    _reconciled[uid] = job_signal(seen)  # only once reconciled: a failed one is not skipped


def _pod_cannot_pull(body: kopf.Body, **_: Any) -> bool:
    return image_pull_failure([dict(body)]) is not None


@kopf.on.event(
    "", "v1", "pods", labels={constants.LABEL_FINETUNEJOB: kopf.PRESENT}, when=_pod_cannot_pull
)
def finetunejob_pod_waiting(body: kopf.Body, **_: Any) -> None:
    """A pod that cannot pull its image changes nothing in its Job: watch the pod itself."""
    _reconcile_owner(body, stuck_pod=dict(body))


def _pod_preempted(body: kopf.Body, type: str | None, **_: Any) -> bool:
    return type == "DELETED" and was_preempted(dict(body))


@kopf.on.event(
    "", "v1", "pods", labels={constants.LABEL_FINETUNEJOB: kopf.PRESENT}, when=_pod_preempted
)
def finetunejob_pod_preempted(body: kopf.Body, **_: Any) -> None:
    """Count an attempt lost to preemption; the pod failure policy does not count it."""
    namespace = body["metadata"]["namespace"]
    owner = body["metadata"]["labels"][constants.LABEL_FINETUNEJOB]

    def count(job: FineTuneJob) -> None:
        status = (job.status or FineTuneJobStatus()).model_copy(deep=True)
        status.attempts += 1
        _write_status(job, status)

    job = _with_fresh_reads(namespace, owner, count)
    if job is None:
        return
    message = (
        f"pod {body['metadata']['name']} was preempted; "
        "the next attempt resumes from the last checkpoint"
    )
    kopf.event(_ref(job), type="Warning", reason=str(Reason.PREEMPTED), message=message)


def _is_training(body: kopf.Body, **_: Any) -> bool:
    return (body.get("status") or {}).get("phase") == FineTuneJobPhase.RUNNING


@kopf.on.event(*FTJ)
async def finetunejob_training(body: kopf.Body, type: str | None, **_: Any) -> None:
    """Which FineTuneJobs train, for the progress poller; in the event loop (no thread)."""
    meta = body["metadata"]
    if type != "DELETED" and _is_training(body) and not meta.get("deletionTimestamp"):
        PROGRESS.track(meta["uid"], slim(body))
    else:
        PROGRESS.forget(meta["uid"])


@kopf.on.startup()
def finetunejob_pollers_start(**_: Any) -> None:
    PROGRESS.start()
    RETRIES.start()


@kopf.on.cleanup()
def finetunejob_pollers_stop(**_: Any) -> None:
    PROGRESS.stop()
    RETRIES.stop()


def copy_progress(body: dict[str, Any]) -> None:
    """Copy the trainer's progress from S3 into status while it trains (a tick of
    :data:`PROGRESS`; a failed one, e.g. while the apiserver restarts, waits one interval)."""
    job = parse(FineTuneJob, body)
    run = artifacts.run_id(job.spec)
    try:
        report = _store(job).read_json(artifacts.progress_uri(job.spec.output.uri, run))
    except StorageError as exc:
        log.info("no progress for %s: %s", job.metadata["name"], exc.message)
        return
    except ApiException as exc:
        if exc.status != 404:
            raise
        return  # its Secret is gone (the namespace is going away); nothing to report
    if not report:
        return
    status = (job.status or FineTuneJobStatus()).model_copy(deep=True)
    # The report is whatever the pod's image wrote: take only what fits the status.
    report = {k: v for k, v in report.items() if not _non_finite(v)}
    try:
        status.progress = Progress.model_validate_known(report)
    except ValidationError as exc:
        log.info("progress of %s not understood, ignored: %s", job.metadata["name"], exc)
        return
    checkpoint, tokens = report.get("checkpointUri"), report.get("trainedTokens")
    if isinstance(checkpoint, str) and checkpoint.startswith("s3://") and len(checkpoint) < 1024:
        status.checkpoint_uri = checkpoint
    if isinstance(tokens, int) and not isinstance(tokens, bool) and tokens >= 0:
        status.trained_tokens = tokens
    try:
        _write_status(job, status)
    except k8s.ConflictError:
        log.info("%s changed while reading progress; the next tick retries", job.metadata["name"])


PROGRESS = Poller(
    copy_progress, interval=SETTINGS.training.progress_interval, name="finetunejob-progress"
)


def _non_finite(value: Any) -> bool:
    """NaN and infinity: JSON from Python may carry them, the apiserver refuses them."""
    return isinstance(value, float) and not math.isfinite(value)


def _reconcile_owner(
    child: kopf.Body,
    *,
    seen: dict[str, Any] | None = None,
    stuck_pod: dict[str, Any] | None = None,
) -> None:
    namespace = child["metadata"]["namespace"]
    owner = child["metadata"]["labels"][constants.LABEL_FINETUNEJOB]
    try:
        _reconcile_fresh(namespace, owner, seen=seen, stuck_pod=stuck_pod)
    except (kopf.TemporaryError, k8s.TransientError):
        # kopf never retries an event handler: the FineTuneJob would wait for its next event,
        # which may never come (a finished Job has no more). 16 of 3,000 did, after 504s from
        # an overloaded apiserver (bench/operator_scale.py).
        RETRIES.track((namespace, owner), {"namespace": namespace, "name": owner})
        raise


def retry_owner(ref: dict[str, str]) -> None:
    """Reconcile a FineTuneJob whose child's event could not be handled, from a fresh read,
    until one reconcile succeeds (a tick of :data:`RETRIES`)."""
    key = (ref["namespace"], ref["name"])
    try:
        _reconcile_fresh(*key)
    except kopf.PermanentError:
        RETRIES.forget(key)  # no retry can help (see parse); the error is in the log
        raise
    RETRIES.forget(key)


RETRIES = Poller(retry_owner, interval=5.0, name="finetunejob-retry")


def _reconcile_fresh(namespace: str, name: str, **observed: Any) -> None:
    """Reconcile the FineTuneJob as it is now, unless it is gone or going."""
    with object_lock(namespace, name):  # read under the lock: the latest write is seen
        body = k8s.get_custom(PLURAL, namespace, name)
        if body is not None and not body["metadata"].get("deletionTimestamp"):
            reconcile(body, **observed)


def _with_fresh_reads(
    namespace: str, name: str, act: Callable[[FineTuneJob], None], body: Any = None
) -> FineTuneJob | None:
    """Run ``act`` on the FineTuneJob, reading it again whenever its status write conflicts;
    one at a time per FineTuneJob (a re-entrant lock: a child's event holds it already)."""
    with object_lock(namespace, name):
        for _ in range(5):
            if body is None:
                body = k8s.get_custom(PLURAL, namespace, name)
                if body is None:
                    return None
            job = parse(FineTuneJob, body)
            try:
                act(job)
            except k8s.ConflictError:
                body = None
                continue
            return job
    raise kopf.TemporaryError(f"{name}: status kept changing under this handler", delay=1)


def _store(job: FineTuneJob) -> ArtifactStore:
    return store_for(job.spec.output, job.metadata["namespace"])


def reconcile(
    body: Any, *, seen: dict[str, Any] | None = None, stuck_pod: dict[str, Any] | None = None
) -> None:
    """``seen``: a child Job as its event delivered it, observed as is instead of read again;
    ``stuck_pod``: a pod whose event says it cannot pull its image."""
    started = time.monotonic()
    meta = body["metadata"]
    try:
        _with_fresh_reads(
            meta["namespace"],
            meta["name"],
            lambda job: _execute(job, plan_finetunejob(_observe(job, seen, stuck_pod))),
            body,
        )
    except (k8s.TransientError, StorageError) as exc:
        metrics.record_reconcile("FineTuneJob", started, ok=False)
        raise transient(exc) from exc
    metrics.record_reconcile("FineTuneJob", started, ok=True)


def _observe(
    job: FineTuneJob,
    seen: dict[str, Any] | None = None,
    stuck_pod: dict[str, Any] | None = None,
) -> Observed:
    """What the plan needs, with as few reads as it allows (bench/operator_scale.py counts
    them): the Job an event delivered is not read again; once the dataset is validated the
    validation Job matters only to a finished run's cleanup; pods are listed only for the
    verdict of a finished Job, and a pod that cannot pull its image comes with its event."""
    ns = job.metadata["namespace"]
    status = job.status or FineTuneJobStatus()
    validated = is_true(status.conditions, Cond.VALIDATED) and status.phase not in TERMINAL

    def read(name: str) -> dict[str, Any] | None:
        # A finished run's plan deletes Jobs it sees unfinished. An event's Job may be older
        # than the verdict just read (another trigger saw the Job finish and wrote it): taken
        # as is, it got a completed training Job and its pods deleted. So read afresh then.
        if seen is not None and seen["metadata"]["name"] == name and status.phase not in TERMINAL:
            return seen
        return k8s.get_job(ns, name)

    validation = None if validated else read(validation_job_name(job))
    training = read(training_job_name(job))
    relevant = training or validation
    pods: list[dict[str, Any]] = []
    if relevant is not None and status.phase not in TERMINAL and needs_pods(relevant):
        pods = k8s.list_job_pods(ns, relevant["metadata"]["name"])
    elif relevant is not None and stuck_pod is not None:
        labels = stuck_pod["metadata"].get("labels") or {}
        if labels.get(JOB_NAME_LABEL) == relevant["metadata"]["name"]:
            pods = [stuck_pod]
    obs = Observed(job=job, validation=validation, training=training, pods=pods, now=now())
    if not validated and validation is None and training is None:
        obs = replace(obs, failure=_missing_secret(job))
    elif needs_artifact_check(obs):
        obs = replace(obs, **_artifact(job))
    return obs


def _artifact(job: FineTuneJob) -> dict[str, Any]:
    """Whether the run's manifest exists, and a failure when it is not one (e.g. it lists a
    file outside the adapter prefix): a run never publishes an Adapter from such a manifest."""
    prefix = artifacts.adapter_uri(job.spec.output.uri, artifacts.run_id(job.spec))
    try:
        _store(job).load_manifest(prefix)
    except StorageError as exc:
        if exc.reason == Reason.NOT_FOUND:
            return {"artifact_exists": False}
        if exc.reason == Reason.MANIFEST_INVALID:
            return {"artifact_exists": True, "failure": (exc.reason, exc.message)}
        raise
    return {"artifact_exists": True}


def _missing_secret(job: FineTuneJob) -> tuple[Reason, str] | None:
    """A check CEL cannot make: every Secret the spec names exists (pods would hang otherwise)."""
    spec = job.spec
    refs = {
        "baseModel.credentialsSecretRef": spec.base_model.credentials_secret_ref,
        "baseModel.tokenSecretRef": spec.base_model.token_secret_ref,
        "dataset.credentialsSecretRef": spec.dataset.credentials_secret_ref,
        "output.credentialsSecretRef": spec.output.credentials_secret_ref,
    }
    checked: set[str] = set()  # specs usually name one Secret for all three: read it once
    for field, ref in refs.items():
        if ref is None or ref.name in checked:
            continue
        checked.add(ref.name)
        try:
            k8s.read_secret(job.metadata["namespace"], ref.name)
        except ApiException as exc:
            if exc.status == 404:
                return Reason.SECRET_NOT_FOUND, f"spec.{field}: Secret {ref.name!r} not found"
            raise
    return None


def _execute(job: FineTuneJob, plan: Plan) -> None:
    run = artifacts.run_id(job.spec)
    if plan.status.phase in TERMINAL and (
        job.status is None or job.status.phase != plan.status.phase
    ):
        # Record (and announce) the verdict before cleaning up (see Plan); then settle.
        job = _write_status(job, plan.status)
        _announce(job, plan)
        plan = plan_finetunejob(_observe(job))
    for action in plan.actions:
        match action:
            case Action.START_VALIDATION:
                k8s.create(build_config_map(job))
                k8s.create(build_validation_job(job, SETTINGS, run))
            case Action.START_TRAINING:
                k8s.create(build_config_map(job))
                if job.spec.resources.nodes > 1:
                    k8s.create(build_rendezvous_service(job))
                k8s.create(build_training_job(job, SETTINGS, run))
            case Action.SUSPEND_TRAINING | Action.RESUME_TRAINING:
                k8s.set_job_suspended(
                    job.metadata["namespace"],
                    training_job_name(job),
                    action == Action.SUSPEND_TRAINING,
                )
            case Action.STOP_VALIDATION:
                k8s.delete_job(job.metadata["namespace"], validation_job_name(job))
            case Action.STOP_TRAINING:
                k8s.delete_job(job.metadata["namespace"], training_job_name(job))
            case Action.CREATE_ADAPTER:
                _publish_adapter(job, plan.status, run)
    _announce(_write_status(job, plan.status), plan)


def _announce(job: FineTuneJob, plan: Plan) -> None:
    """Events and metrics for a status that has been written."""
    for kind, reason, message in plan.events:
        kopf.event(_ref(job), type=kind, reason=reason, message=message)
    metrics.observe_finetunejob(job, plan.status)


def _ref(job: FineTuneJob) -> dict[str, Any]:
    return {"apiVersion": job.api_version, "kind": job.kind, "metadata": job.metadata}


def _publish_adapter(job: FineTuneJob, status: FineTuneJobStatus, run: str) -> None:
    uri = artifacts.adapter_uri(job.spec.output.uri, run)
    store = _store(job)
    manifest_bytes = store.read(artifacts.join(uri, artifacts.MANIFEST_NAME))
    digest = artifacts.digest(manifest_bytes)
    manifest = artifacts.Manifest.model_validate_json(manifest_bytes)
    k8s.create(build_adapter(job, manifest, uri, digest))
    status.adapter_ref = adapter_name(job)
    status.artifact_uri = uri
    if status.trained_tokens is None and isinstance(manifest.metrics.get("trained_tokens"), int):
        status.trained_tokens = int(manifest.metrics["trained_tokens"])


def _write_status(job: FineTuneJob, status: FineTuneJobStatus) -> FineTuneJob:
    """Write ``status`` if it changed; the job as it now is (for a further write)."""
    before = (job.status or FineTuneJobStatus()).model_dump(
        mode="json", by_alias=True, exclude_none=True
    )
    after = status.model_dump(mode="json", by_alias=True, exclude_none=True)
    if before == after and job.status is not None:
        return job
    written = k8s.patch_status(
        PLURAL,
        job.metadata["namespace"],
        job.metadata["name"],
        after,
        resource_version=job.metadata["resourceVersion"],
    )
    metadata = {**job.metadata, "resourceVersion": written["metadata"]["resourceVersion"]}
    return job.model_copy(update={"status": status.model_copy(deep=True), "metadata": metadata})
