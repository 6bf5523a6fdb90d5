"""Leader election with a coordination.k8s.io Lease, as kube-controller-manager does it.

Kopf's peering pauses operators of lower priority but lets equal peers run side by side;
a Lease gives the guarantee the chart's two replicas need: at most one acts. A replica that
cannot renew before the lease expires exits, and Kubernetes restarts it as a standby.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

from kubernetes import client
from kubernetes.client.rest import ApiException

log = logging.getLogger(__name__)


class LeaseElector:
    def __init__(
        self,
        api: client.ApiClient,
        *,
        namespace: str,
        name: str,
        identity: str,
        lease_seconds: int = 15,
        renew_seconds: float = 5.0,
    ) -> None:
        self.leases = client.CoordinationV1Api(api)
        self.namespace, self.name, self.identity = namespace, name, identity
        self.lease_seconds, self.renew_seconds = lease_seconds, renew_seconds

    def try_acquire(self) -> bool:
        """Acquire or renew the lease; True while this replica holds it."""
        now = datetime.now(UTC)
        try:
            lease = self.leases.read_namespaced_lease(self.name, self.namespace)
        except ApiException as exc:
            if exc.status != 404:
                raise
            return self._create(now)
        spec = lease.spec
        holder = spec.holder_identity
        expires = (spec.renew_time or now) + timedelta(seconds=spec.lease_duration_seconds or 0)
        if holder != self.identity and holder and expires > now:
            return False
        if holder != self.identity:
            spec.lease_transitions = (spec.lease_transitions or 0) + 1
            spec.acquire_time = now
            log.info("taking over lease %s from %s", self.name, holder or "nobody")
        spec.holder_identity = self.identity
        spec.renew_time = now
        spec.lease_duration_seconds = self.lease_seconds
        try:
            # The resourceVersion in ``lease`` makes this a compare-and-swap.
            self.leases.replace_namespaced_lease(self.name, self.namespace, lease)
        except ApiException as exc:
            if exc.status == 409:
                return False
            raise
        return True

    def _create(self, now: datetime) -> bool:
        body = client.V1Lease(
            metadata=client.V1ObjectMeta(name=self.name, namespace=self.namespace),
            spec=client.V1LeaseSpec(
                holder_identity=self.identity,
                lease_duration_seconds=self.lease_seconds,
                acquire_time=now,
                renew_time=now,
                lease_transitions=0,
            ),
        )
        try:
            self.leases.create_namespaced_lease(self.namespace, body)
        except ApiException as exc:
            if exc.status == 409:
                return False
            raise
        return True

    def acquire(self, stop: threading.Event) -> bool:
        """Block until this replica leads (True) or ``stop`` is set (False)."""
        while not stop.is_set():
            try:
                if self.try_acquire():
                    log.info(
                        "leading as %s (lease %s/%s)", self.identity, self.namespace, self.name
                    )
                    return True
            except Exception as exc:  # any failure: not yet (see keep)
                log.warning("lease %s: %s", self.name, exc)
            stop.wait(self.renew_seconds)
        return False

    def release(self) -> None:
        """Give the lease up, so that a standby takes over at its next try instead of after
        the lease expires (client-go's ReleaseOnCancel). A failure only costs that wait."""
        try:
            # Bounded: an apiserver that does not answer must not hold the pod's exit.
            timeout = self.renew_seconds
            lease = self.leases.read_namespaced_lease(
                self.name, self.namespace, _request_timeout=timeout
            )
            if lease.spec.holder_identity != self.identity:
                return
            lease.spec.holder_identity = ""
            lease.spec.lease_duration_seconds = 1
            lease.spec.renew_time = datetime.now(UTC)
            self.leases.replace_namespaced_lease(
                self.name, self.namespace, lease, _request_timeout=timeout
            )
            log.info("released lease %s/%s", self.namespace, self.name)
        except Exception as exc:  # a failed release only costs the lease's expiry
            log.warning("releasing lease %s: %s", self.name, exc)

    def keep(self, on_lost: Callable[[], None], stop: threading.Event) -> threading.Thread:
        """Renew in the background; call ``on_lost`` once the lease could not be kept, or
        release it once ``stop`` is set (join the thread before exiting)."""

        def renew() -> None:
            deadline = datetime.now(UTC) + timedelta(seconds=self.lease_seconds)
            while not stop.wait(self.renew_seconds):
                try:
                    if self.try_acquire():
                        deadline = datetime.now(UTC) + timedelta(seconds=self.lease_seconds)
                        continue
                    log.error("lease %s was taken by another replica", self.name)
                except Exception as exc:
                    # Whatever the failure (an ApiException, urllib3's MaxRetryError when the
                    # apiserver is unreachable, which is no OSError), the lease was not renewed:
                    # escaping here would end this thread and leave a leader that no longer
                    # renews but still acts once a standby takes the lease.
                    log.warning("renewing lease %s: %s", self.name, exc)
                    if datetime.now(UTC) < deadline:
                        continue
                on_lost()
                return
            self.release()

        thread = threading.Thread(target=renew, name="lease-renewal", daemon=True)
        thread.start()
        return thread
