"""The node agent's calls to the apiserver, on plain JSON as it comes over the wire.

Pods are handled as dicts (what the watch delivers), not as the client's models: the status
code reads and writes the same camelCase fields the kubelet does, and nothing is lost in a
round trip through a model.
"""

from __future__ import annotations

import base64
import json
import logging
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from kubernetes import client
from kubernetes.client.rest import ApiException

from localcluster.nodeagent_env import ConfigError

log = logging.getLogger("localcluster.nodeagent")

CONFLICT_RETRIES = 5


def micro_time() -> str:
    """Now as a MicroTime (what a Lease's renewTime must be)."""
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _json(response: Any) -> dict[str, Any]:
    return dict(json.loads(response.data))


class PodApi:
    """Pods, ConfigMaps, Secrets and tokens for the agent (implements ``Sources``)."""

    def __init__(self, core: client.CoreV1Api) -> None:
        self._core = core

    def list_pods(self, field_selector: str) -> dict[str, Any]:
        """The pods bound to the node, with the list's resourceVersion."""
        return _json(
            self._core.list_pod_for_all_namespaces(
                field_selector=field_selector, _preload_content=False
            )
        )

    def patch_status(self, pod: Mapping[str, Any], status: dict[str, Any]) -> dict[str, Any] | None:
        """Replace the kubelet-owned status fields, guarded by resourceVersion.

        A JSON merge patch replaces lists (conditions, container statuses) whole; the
        resourceVersion in it makes the apiserver refuse a write based on a stale pod, and on
        such a conflict the same status is written over the fresh pod. None: pod is gone.
        """
        meta = pod["metadata"]
        for _ in range(CONFLICT_RETRIES):
            body = {"metadata": {"resourceVersion": meta["resourceVersion"]}, "status": status}
            try:
                return _json(
                    self._core.patch_namespaced_pod_status(
                        meta["name"],
                        meta["namespace"],
                        body,
                        _content_type="application/merge-patch+json",
                        _preload_content=False,
                    )
                )
            except ApiException as exc:
                if exc.status == 404:
                    return None
                if exc.status != 409:
                    raise
            fresh = _json(
                self._core.read_namespaced_pod(
                    meta["name"], meta["namespace"], _preload_content=False
                )
            )
            if fresh["metadata"]["uid"] != meta["uid"]:
                return None
            meta = fresh["metadata"]
        raise RuntimeError(f"status of pod {meta['name']} kept conflicting")

    def delete_pod(self, pod: Mapping[str, Any]) -> None:
        """Finish a graceful delete: remove the pod (this uid only) with grace period 0."""
        meta = pod["metadata"]
        try:
            self._core.delete_namespaced_pod(
                meta["name"],
                meta["namespace"],
                grace_period_seconds=0,
                body=client.V1DeleteOptions(
                    grace_period_seconds=0, preconditions=client.V1Preconditions(uid=meta["uid"])
                ),
                _preload_content=False,
            )
        except ApiException as exc:
            if exc.status not in (404, 409):
                raise

    def config_map(self, namespace: str, name: str) -> dict[str, bytes] | None:
        """The ConfigMap's data and binaryData as bytes; None if it does not exist."""
        found = self._read(self._core.read_namespaced_config_map, namespace, name)
        if found is None:
            return None
        data = {k: v.encode() for k, v in (found.get("data") or {}).items()}
        binary = {k: base64.b64decode(v) for k, v in (found.get("binaryData") or {}).items()}
        return {**data, **binary}

    def secret(self, namespace: str, name: str) -> dict[str, bytes] | None:
        """The Secret's decoded data; None if it does not exist."""
        found = self._read(self._core.read_namespaced_secret, namespace, name)
        if found is None:
            return None
        return {k: base64.b64decode(v) for k, v in (found.get("data") or {}).items()}

    def token(
        self,
        namespace: str,
        service_account: str,
        audience: str,
        seconds: int,
        pod: tuple[str, str] | None = None,
    ) -> str:
        """A token for the pod's service account, bound to the pod (see ``Sources.token``)."""
        bound = None
        if pod is not None:
            bound = client.V1BoundObjectReference(
                api_version="v1", kind="Pod", name=pod[0], uid=pod[1]
            )
        request = client.AuthenticationV1TokenRequest(
            spec=client.V1TokenRequestSpec(
                audiences=[audience] if audience else [],
                expiration_seconds=seconds,
                bound_object_ref=bound,
            )
        )
        try:
            response = self._core.create_namespaced_service_account_token(
                service_account, namespace, request, _preload_content=False
            )
        except ApiException as exc:
            raise ConfigError(f"token for service account {service_account}: {exc.reason}") from exc
        return str(_json(response)["status"]["token"])

    @staticmethod
    def _read(read: Any, namespace: str, name: str) -> dict[str, Any] | None:
        try:
            return _json(read(name, namespace, _preload_content=False))
        except ApiException as exc:
            if exc.status == 404:
                return None
            raise
