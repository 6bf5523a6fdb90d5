"""The one module that talks to the apiserver (besides kopf's own watches).

Objects travel as plain dicts in the API's camelCase, the same shape builders produce and
models parse. Creation is create-and-accept-409 (never check-then-create), so two handler
runs, or two operator processes, cannot make a child twice.
"""

from __future__ import annotations

import base64
import json
from functools import cache
from typing import Any

import urllib3
from kubernetes import client, config
from kubernetes.client.rest import ApiException

from kubetune.api import constants

RETRYABLE = {429, 500, 502, 503, 504}


class TransientError(Exception):
    """The apiserver could not answer now; the handler should be retried."""


class ConflictError(Exception):
    """The object changed since it was read; read it again and decide again."""


CONNECTIONS = 32
"""Kept-alive connections to the apiserver: at least one per handler thread (kopf's 16 and
the controllers' own 16), or every call beyond the pool's size pays a new TLS handshake."""


@cache
def api() -> client.ApiClient:
    """One API client per process: in-cluster config, else the kubeconfig."""
    configuration = client.Configuration()
    try:
        config.load_incluster_config(client_configuration=configuration)
    except config.ConfigException:
        config.load_kube_config(client_configuration=configuration)
    configuration.connection_pool_maxsize = CONNECTIONS
    return client.ApiClient(configuration)


def _raw(fn: Any, *args: Any, **kwargs: Any) -> Any:
    """Call ``fn`` and parse its answer as plain JSON. The client's model classes cost about
    2 ms an object to build and to turn back into a dict, the largest share of the operator's
    CPU with a thousand jobs (bench/operator_scale.py); the dict is what callers use anyway."""
    return json.loads(_call(fn, *args, _preload_content=False, **kwargs).data)


def _call(fn: Any, *args: Any, **kwargs: Any) -> Any:
    try:
        return fn(*args, **kwargs)
    except ApiException as exc:
        if exc.status in RETRYABLE:
            raise TransientError(f"apiserver answered {exc.status}: {exc.reason}") from exc
        raise
    except (ConnectionError, OSError, urllib3.exceptions.HTTPError) as exc:
        # urllib3's errors (MaxRetryError when nothing listens, ProtocolError, timeouts) are
        # not OSErrors: the client lets them through.
        raise TransientError(f"apiserver unreachable: {exc}") from exc


def _missing_is_none(fn: Any, *args: Any, **kwargs: Any) -> dict[str, Any] | None:
    try:
        return dict(_raw(fn, *args, **kwargs))
    except ApiException as exc:
        if exc.status == 404:
            return None
        raise


def create(manifest: dict[str, Any]) -> bool:
    """Create ``manifest``; False (not an error) when it already exists."""
    kind, ns = manifest["kind"], manifest["metadata"].get("namespace")
    creators = {
        "Job": lambda **kw: client.BatchV1Api(api()).create_namespaced_job(ns, manifest, **kw),
        "ConfigMap": lambda **kw: client.CoreV1Api(api()).create_namespaced_config_map(
            ns, manifest, **kw
        ),
        "Service": lambda **kw: client.CoreV1Api(api()).create_namespaced_service(
            ns, manifest, **kw
        ),
        "Deployment": lambda **kw: client.AppsV1Api(api()).create_namespaced_deployment(
            ns, manifest, **kw
        ),
    }
    group, _, version = manifest["apiVersion"].partition("/")
    if kind in creators:
        fn = creators[kind]
    else:
        plural = manifest_plural(manifest)

        def fn(**kw: Any) -> Any:
            return client.CustomObjectsApi(api()).create_namespaced_custom_object(
                group, version, ns, plural, manifest, **kw
            )

    try:
        # Read the answer (and drop it) so that the connection goes back to the pool: an
        # unread response kept it, and the next call paid a TLS handshake.
        _call(fn, _preload_content=False).data  # noqa: B018
    except ApiException as exc:
        if exc.status == 409:
            return False
        raise
    return True


def manifest_plural(manifest: dict[str, Any]) -> str:
    from kubetune.api import KINDS

    return next(k.plural for k in KINDS if k.__name__ == manifest["kind"])


def get_job(namespace: str, name: str) -> dict[str, Any] | None:
    return _missing_is_none(client.BatchV1Api(api()).read_namespaced_job, name, namespace)


def list_job_pods(namespace: str, job_name: str) -> list[dict[str, Any]]:
    pods = _raw(
        client.CoreV1Api(api()).list_namespaced_pod,
        namespace,
        label_selector=f"batch.kubernetes.io/job-name={job_name}",
    )
    return list(pods.get("items") or [])


def set_job_suspended(namespace: str, name: str, suspend: bool) -> None:
    _call(
        client.BatchV1Api(api()).patch_namespaced_job,
        name,
        namespace,
        {"spec": {"suspend": suspend}},
    )


def delete_job(namespace: str, name: str) -> None:
    try:
        _call(
            client.BatchV1Api(api()).delete_namespaced_job,
            name,
            namespace,
            propagation_policy="Background",
        )
    except ApiException as exc:
        if exc.status != 404:
            raise


def get_custom(plural: str, namespace: str, name: str) -> dict[str, Any] | None:
    return _missing_is_none(
        client.CustomObjectsApi(api()).get_namespaced_custom_object,
        constants.GROUP,
        constants.VERSION,
        namespace,
        plural,
        name,
    )


def list_custom(plural: str, namespace: str) -> list[dict[str, Any]]:
    result = _call(
        client.CustomObjectsApi(api()).list_namespaced_custom_object,
        constants.GROUP,
        constants.VERSION,
        namespace,
        plural,
    )
    return list(result.get("items", []))


def patch_status(
    plural: str, namespace: str, name: str, status: dict[str, Any], *, resource_version: str
) -> dict[str, Any]:
    """Merge ``status`` into the object's status if it is still at ``resource_version``.

    The precondition turns a lost update (two handlers writing from stale reads) into a
    ConflictError, after which the caller reads again and decides again.
    """
    body = {"metadata": {"resourceVersion": resource_version}, "status": status}
    try:
        written = _call(
            client.CustomObjectsApi(api()).patch_namespaced_custom_object_status,
            constants.GROUP,
            constants.VERSION,
            namespace,
            plural,
            name,
            body,
        )
    except ApiException as exc:
        if exc.status == 409:
            raise ConflictError(f"{plural}/{name} changed since it was read") from exc
        raise
    return dict(written)


def read_secret(namespace: str, name: str) -> dict[str, str]:
    """The decoded data of a Secret; values stay in memory, never in logs or objects. Bytes
    that are not UTF-8 become U+FFFD (callers check what they need), never an exception."""
    secret = _raw(client.CoreV1Api(api()).read_namespaced_secret, name, namespace)
    return {
        k: base64.b64decode(v).decode(errors="replace")
        for k, v in (secret.get("data") or {}).items()
    }


# Serving children (InferenceDeployment): server-side apply, so that one call creates or
# updates, and fields other controllers own (an HPA's replicas aside) are left alone.

FIELD_MANAGER = "kubetune"
_APPLY = "application/apply-patch+yaml"
_BUILTIN = {
    "Deployment": (client.AppsV1Api, "deployment"),
    "Service": (client.CoreV1Api, "service"),
    "ConfigMap": (client.CoreV1Api, "config_map"),
}
_CUSTOM = {"HTTPRoute": ("gateway.networking.k8s.io", "v1", "httproutes")}


def apply(manifest: dict[str, Any]) -> None:
    """Create or update ``manifest`` by server-side apply, taking over conflicting fields."""
    kind, meta = manifest["kind"], manifest["metadata"]
    options = {"field_manager": FIELD_MANAGER, "force": True, "_content_type": _APPLY}
    if kind in _CUSTOM:
        group, version, plural = _CUSTOM[kind]
        custom = client.CustomObjectsApi(api())
        _call(
            custom.patch_namespaced_custom_object,
            group,
            version,
            meta["namespace"],
            plural,
            meta["name"],
            manifest,
            **options,
        )
        return
    api_class, suffix = _BUILTIN[kind]
    patch = getattr(api_class(api()), f"patch_namespaced_{suffix}")
    _call(patch, meta["name"], meta["namespace"], manifest, **options)


def list_labelled(kind: str, namespace: str, selector: str) -> list[dict[str, Any]]:
    """Objects of ``kind`` in ``namespace`` matching the label ``selector``."""
    if kind in _CUSTOM:
        group, version, plural = _CUSTOM[kind]
        result = _call(
            client.CustomObjectsApi(api()).list_namespaced_custom_object,
            group,
            version,
            namespace,
            plural,
            label_selector=selector,
        )
        return list(result.get("items", []))
    api_class, suffix = _BUILTIN[kind]
    found = _raw(
        getattr(api_class(api()), f"list_namespaced_{suffix}"), namespace, label_selector=selector
    )
    return list(found.get("items") or [])


def delete(kind: str, namespace: str, name: str) -> None:
    """Delete an object of ``kind``; one that is already gone is not an error."""
    try:
        if kind in _CUSTOM:
            group, version, plural = _CUSTOM[kind]
            _call(
                client.CustomObjectsApi(api()).delete_namespaced_custom_object,
                group,
                version,
                namespace,
                plural,
                name,
            )
        else:
            api_class, suffix = _BUILTIN[kind]
            _call(getattr(api_class(api()), f"delete_namespaced_{suffix}"), name, namespace)
    except ApiException as exc:
        if exc.status != 404:
            raise


def has_crd(name: str) -> bool:
    """Whether the CustomResourceDefinition ``name`` (e.g. httproutes.gateway.networking.k8s.io)
    is installed: optional integrations are detected, never assumed."""
    ext = client.ApiextensionsV1Api(api())
    return _missing_is_none(ext.read_custom_resource_definition, name) is not None


def remove_annotation(plural: str, namespace: str, name: str, key: str, value: str) -> None:
    """Remove annotation ``key`` if it still holds ``value`` (a JSON patch test), so that a
    newer value set meanwhile survives; a changed or vanished annotation is not an error."""
    path = "/metadata/annotations/" + key.replace("~", "~0").replace("/", "~1")
    patch = [{"op": "test", "path": path, "value": value}, {"op": "remove", "path": path}]
    try:
        _call(
            client.CustomObjectsApi(api()).patch_namespaced_custom_object,
            constants.GROUP,
            constants.VERSION,
            namespace,
            plural,
            name,
            patch,
            _content_type="application/json-patch+json",
        )
    except ApiException as exc:
        if exc.status not in (404, 409, 422):
            raise
