"""InferenceDeployment handlers: every trigger runs the same level-triggered reconcile.

Triggers are the object's own spec changes, a ``rollout-action`` annotation, its Adapters
(a new Ready version of a family it follows), its Deployments' progress, and a timer that
ticks while a canary runs (pauses ending, analysis due). Each reconcile reads the Adapters
and children by label, measures the canary in Prometheus when a check is due, asks
:mod:`kubetune.rollout` what to do, applies the manifests :mod:`kubetune.builders.serving`
renders for the planned status, and writes status once, with a resourceVersion
precondition; events follow only a successful write.
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
from collections.abc import Callable
from datetime import datetime
from typing import Any

import kopf
from pydantic import ValidationError

from kubetune import analysis, k8s, metrics
from kubetune.api import (
    Adapter,
    InferenceDeployment,
    InferenceDeploymentStatus,
    RuntimeType,
    TrafficRouting,
    constants,
)
from kubetune.builders.serving import (
    Track,
    deployment_name,
    endpoints,
    pod_selector,
)
from kubetune.builders.serving_children import build_children
from kubetune.controllers.common import SETTINGS, in_thread, object_lock, parse, transient
from kubetune.rollout import (
    Measurement,
    Observed,
    Plan,
    is_analysis_due,
    parse_duration,
    plan_rollout,
    plan_routing,
    resolve_adapters,
    summarize_pods,
)
from kubetune.status import now

INFD = (constants.GROUP, constants.VERSION, "inferencedeployments")
PLURAL = "inferencedeployments"
HTTPROUTE_CRD = "httproutes.gateway.networking.k8s.io"
CHILD_KINDS = ("Deployment", "Service", "ConfigMap")
log = logging.getLogger(__name__)


@kopf.on.resume(*INFD)
@kopf.on.create(*INFD)
@kopf.on.update(*INFD, field="spec")
def inferencedeployment_changed(namespace: str, name: str, **_: Any) -> None:
    reconcile(namespace, name)


def _has_action(body: kopf.Body, **_: Any) -> bool:
    return constants.ANNOTATION_ROLLOUT_ACTION in (body["metadata"].get("annotations") or {})


@kopf.on.event(*INFD, when=_has_action)
def inferencedeployment_action(namespace: str, name: str, **_: Any) -> None:
    """promote or abort, set by a user or an Argo CD action; removed once acted on."""
    reconcile(namespace, name)


def _has_canary(body: kopf.Body, **_: Any) -> bool:
    return bool((body.get("status") or {}).get("canary"))


@kopf.timer(*INFD, interval=SETTINGS.rollout.tick, backoff=SETTINGS.rollout.tick, when=_has_canary)
def inferencedeployment_tick(namespace: str, name: str, **_: Any) -> None:
    """While a canary runs: end pauses, run analysis checks when due. A failed tick (the
    apiserver restarting) is retried at the next tick, not after kopf's default minute,
    which would stall a pause or an analysis step."""
    reconcile(namespace, name)


Follows = tuple[str, tuple[tuple[str | None, str | None], ...]]
"""An InferenceDeployment's name and the (adapterRef, selector family) of each served entry."""


@kopf.index(*INFD)
def inferencedeployments_following(
    namespace: str, name: str, spec: kopf.Spec, **_: Any
) -> dict[str, Follows]:
    """Per namespace, which adapters each InferenceDeployment follows, kept from the watch:
    an Adapter event looks its followers up here instead of listing every deployment
    (one list per Adapter event, found by bench/operator_scale.py)."""
    served = spec.get("adapters") or []
    return {
        namespace: (
            name,
            tuple((s.get("adapterRef"), (s.get("selector") or {}).get("family")) for s in served),
        )
    }


@kopf.on.event(constants.GROUP, constants.VERSION, "adapters")
async def inferencedeployment_adapter_changed(
    body: kopf.Body, inferencedeployments_following: kopf.Index[str, Follows], **_: Any
) -> None:
    """A new or newly Ready Adapter may be the next version of a family a deployment follows.
    Looked up in the event loop: an Adapter that no deployment follows (most of them) takes
    no handler thread, and its event's body waits in no executor queue."""
    meta = body["metadata"]
    family = (meta.get("labels") or {}).get(constants.LABEL_ADAPTER_FAMILY)
    followers = [
        name
        for name, served in inferencedeployments_following.get(meta["namespace"], [])
        if any(ref == meta["name"] or (family and family == f) for ref, f in served)
    ]
    for name in followers:
        await in_thread(None, reconcile, meta["namespace"], name)


@kopf.on.event(
    "apps", "v1", "deployments", labels={constants.LABEL_INFERENCEDEPLOYMENT: kopf.PRESENT}
)
def inferencedeployment_pods_changed(body: kopf.Body, **_: Any) -> None:
    """Serving pods becoming ready (or stuck) change Available, Progressing and the steps."""
    meta = body["metadata"]
    reconcile(meta["namespace"], meta["labels"][constants.LABEL_INFERENCEDEPLOYMENT])


def reconcile(namespace: str, name: str) -> None:
    """Reconcile one deployment from a fresh read, one at a time per object in this process.

    Triggers run concurrently (kopf runs timers beside event handlers): a tick holding an
    older copy once applied the routes of a canary that an abort had just rolled back,
    since children are applied before the status write that would have caught the staleness.
    """
    started = time.monotonic()
    try:
        with object_lock(namespace, name):
            _with_fresh_reads(namespace, name, _reconcile)
    except k8s.TransientError as exc:
        metrics.record_reconcile("InferenceDeployment", started, ok=False)
        raise transient(exc) from exc
    metrics.record_reconcile("InferenceDeployment", started, ok=True)


def _with_fresh_reads(
    namespace: str, name: str, act: Callable[[InferenceDeployment], None]
) -> None:
    """Run ``act`` on the object as it is now, again whenever its status write conflicts
    (another replica during a leader handover). A deleted or deleting one is left to the
    garbage collector."""
    for _ in range(5):
        body = k8s.get_custom(PLURAL, namespace, name)
        if body is None or body["metadata"].get("deletionTimestamp"):
            return
        try:
            act(parse(InferenceDeployment, body))
        except k8s.ConflictError:
            continue
        return
    raise kopf.TemporaryError(f"{name}: status kept changing under this handler", delay=1)


def _reconcile(infd: InferenceDeployment) -> None:
    namespace = infd.metadata["namespace"]
    adapters = _adapters(namespace)
    routing = plan_routing(
        infd.spec.runtime.type,
        gateway_api=infd.spec.runtime.type == RuntimeType.VLLM and k8s.has_crd(HTTPROUTE_CRD),
    )
    children = _children(infd, routing)
    observed_at = now()
    plan = plan_rollout(
        Observed(
            deployment=infd,
            resolution=resolve_adapters(infd.spec, adapters.values()),
            now=observed_at,
            adapters=adapters,
            pods=summarize_pods(children.get(("Deployment", n)) for n in _deployments(infd)),
            routing=routing,
            measurement=_measure_if_due(infd, observed_at),
            action=(infd.metadata.get("annotations") or {}).get(
                constants.ANNOTATION_ROLLOUT_ACTION
            ),
            selector=pod_selector(infd),
            endpoints=endpoints(infd),
        )
    )
    if plan.apply:
        _apply(infd, plan.status, adapters, routing, children)
    _execute(infd, plan)


def _adapters(namespace: str) -> dict[str, Adapter]:
    found = {}
    for body in k8s.list_custom("adapters", namespace):
        try:
            adapter = Adapter.model_validate(body)
        except ValidationError:
            log.warning("Adapter %s does not parse; ignored", body["metadata"]["name"])
            continue
        found[adapter.metadata["name"]] = adapter
    return found


def _children(
    infd: InferenceDeployment, routing: TrafficRouting
) -> dict[tuple[str, str], dict[str, Any]]:
    selector = f"{constants.LABEL_INFERENCEDEPLOYMENT}={infd.metadata['name']}"
    kinds = [*CHILD_KINDS, "HTTPRoute"] if routing == TrafficRouting.GATEWAY else CHILD_KINDS
    return {
        (kind, item["metadata"]["name"]): item
        for kind in kinds
        for item in k8s.list_labelled(kind, infd.metadata["namespace"], selector)
    }


def _deployments(infd: InferenceDeployment) -> list[str]:
    """The Deployments that should exist in the current state (before this reconcile)."""
    status = infd.status or InferenceDeploymentStatus()
    if status.stable is None:
        return []
    names = [deployment_name(infd)]
    if status.canary is not None and infd.spec.runtime.type == RuntimeType.VLLM:
        names.append(deployment_name(infd, Track.CANARY))
    return names


def _measure_if_due(infd: InferenceDeployment, at: datetime) -> Measurement | None:
    status, rollout = infd.status, infd.spec.rollout
    canary = status.canary if status else None
    if canary is None or rollout is None or rollout.analysis is None or status is None:
        return None
    spec = rollout.analysis
    if not is_analysis_due(spec, canary, at):
        return None
    url = spec.prometheus_url or SETTINGS.rollout.prometheus_url
    if url is None:
        return Measurement(
            error="no Prometheus: set spec.rollout.analysis.prometheusUrl or "
            "KUBETUNE_PROMETHEUS_URL"
        )
    window, namespace = parse_duration(spec.interval), infd.metadata["namespace"]
    if infd.spec.runtime.type == RuntimeType.KUBETUNE:
        stable = {a.adapter_ref for a in (status.stable.adapters if status.stable else [])}
        versions = [a.adapter_ref for a in canary.adapters if a.adapter_ref not in stable]
        if not versions:
            return Measurement(error="the canary adds no adapter version to measure")
        queries = analysis.kubetune_queries(namespace, versions, window)
    else:
        queries = analysis.vllm_queries(namespace, deployment_name(infd, Track.CANARY), window)
    client = analysis.PrometheusClient(url, timeout=SETTINGS.rollout.query_timeout)
    return analysis.measure(client, queries)


def _apply(
    infd: InferenceDeployment,
    status: InferenceDeploymentStatus,
    adapters: dict[str, Adapter],
    routing: TrafficRouting,
    existing: dict[tuple[str, str], dict[str, Any]],
) -> None:
    """Apply what changed since the last apply (by a hash annotation); delete the rest."""
    wanted = build_children(infd, status, adapters, SETTINGS, routing)
    for manifest in wanted.apply:
        digest = hashlib.sha256(json.dumps(manifest, sort_keys=True).encode()).hexdigest()[:16]
        key = (manifest["kind"], manifest["metadata"]["name"])
        applied = (existing.get(key, {}).get("metadata", {}).get("annotations") or {}).get(
            constants.ANNOTATION_APPLIED_HASH
        )
        if applied != digest:
            manifest["metadata"].setdefault("annotations", {})[
                constants.ANNOTATION_APPLIED_HASH
            ] = digest
            k8s.apply(manifest)
    for kind, name in wanted.delete:
        if (kind, name) in existing:
            k8s.delete(kind, infd.metadata["namespace"], name)


def _execute(infd: InferenceDeployment, plan: Plan) -> None:
    meta = infd.metadata
    before = (infd.status or InferenceDeploymentStatus()).model_dump(mode="json", exclude_none=True)
    after = plan.status.model_dump(mode="json", exclude_none=True)
    if before != after or infd.status is None:
        k8s.patch_status(
            PLURAL,
            meta["namespace"],
            meta["name"],
            _merge_patch(before, after),
            resource_version=meta["resourceVersion"],
        )
    if plan.remove_action:
        action = (meta.get("annotations") or {})[constants.ANNOTATION_ROLLOUT_ACTION]
        k8s.remove_annotation(
            PLURAL, meta["namespace"], meta["name"], constants.ANNOTATION_ROLLOUT_ACTION, action
        )
    ref = {"apiVersion": infd.api_version, "kind": infd.kind, "metadata": meta}
    for kind, reason, message in plan.events:
        kopf.event(ref, type=kind, reason=reason, message=message)


def _merge_patch(before: dict[str, Any], after: dict[str, Any]) -> dict[str, Any]:
    """``after`` as a JSON merge patch over ``before``: fields it dropped (a finished canary,
    a reset analysis) become explicit nulls, which a merge patch needs to remove them."""
    patch: dict[str, Any] = {key: None for key in before if key not in after}
    for key, value in after.items():
        old = before.get(key)
        patch[key] = (
            _merge_patch(old, value) if isinstance(old, dict) and isinstance(value, dict) else value
        )
    return patch
