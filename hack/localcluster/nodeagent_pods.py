"""One pod on the node agent: its containers as local processes, its status as a kubelet's.

Each pod gets a worker thread. The worker materializes the volumes, runs the init containers
one after another, then the main containers, restarts them per ``restartPolicy`` with an
exponential back-off, runs readiness probes, enforces ``activeDeadlineSeconds``, and on
graceful deletion stops the processes (SIGTERM to the group, SIGKILL after the grace period),
reports the terminal phase and removes the pod with grace period 0, as the kubelet finishes
a graceful delete. It wakes on events (process exit, pod update) rather than polling.

Files of a pod live under ``<agent dir>/pods/<namespace>_<name>_<uid>/``:
``volumes/<volume>/`` (removed when the pod is deleted, because it holds Secrets),
``<container>/<restartCount>.log`` (stdout and stderr) and ``<container>/termination-log``.
"""

from __future__ import annotations

import json
import logging
import shutil
import signal
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, NamedTuple

from localcluster import nodeagent_env as envs
from localcluster.nodeagent_processes import LocalProcess, Readiness, port_free, read_tail
from localcluster.nodeagent_status import (
    ADDRESSES,
    DEADLINE_MESSAGE,
    LOST_EXIT_CODE,
    LOST_MESSAGE,
    LOST_REASON,
    ContainerRecord,
    PodRun,
    adopt,
    build_pod_status,
    exit_reason,
    plan_phase,
    should_restart,
    termination_message,
)
from localcluster.nodeagent_volumes import link_mounts, materialize, refresh
from localcluster.processes import free_port

log = logging.getLogger("localcluster.nodeagent")

CONFIG_RETRY = 2.0
"""Seconds before retrying a pod whose Secret, ConfigMap or volume is not there yet."""
VOLUME_SYNC = 2.0
"""Seconds between refreshes of ConfigMap and Secret volumes from the API (a kubelet takes up
to a minute; programs that re-read their config, such as the reference runtime's routes, see
changes sooner here)."""
# Retry timers beside the containers' restart timers; ":" cannot occur in a container name.
_VOLUMES, _REPORT, _SYNC = ":volumes", ":report", ":sync"


def now() -> str:
    """The current time as the API's RFC 3339 seconds."""
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _parse_time(value: str) -> float:
    return datetime.strptime(value, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC).timestamp()


@dataclass
class PodContext:
    """What every worker shares with the agent: the API, the node's env and its settings."""

    sources: envs.Sources
    patch_status: Callable[[Mapping[str, Any], dict[str, Any]], dict[str, Any] | None]
    """Write a pod's status (resourceVersion-checked); the updated pod, or None if gone."""
    delete_pod: Callable[[Mapping[str, Any]], None]
    track: Callable[[LocalProcess, bool], None]
    """Record (True) or forget (False) a child, so a restarted agent can clean up."""
    root: Path
    base_env: dict[str, str]
    backoff: float = 1.0
    max_backoff: float = 60.0
    shutdown_grace: float = 5.0


class _Running(NamedTuple):
    process: LocalProcess
    readiness: Readiness


@dataclass
class _Flags:
    deleting: bool = False
    gone: bool = False
    shutdown: bool = False
    finished: bool = False


def pod_dir(root: Path, pod: Mapping[str, Any]) -> Path:
    """Where a pod's volumes, logs and termination messages live."""
    meta = pod["metadata"]
    return root / "pods" / f"{meta['namespace']}_{meta['name']}_{meta['uid']}"


class PodWorker:
    """Runs one pod until it is terminal, deleted, or the agent shuts down."""

    def __init__(self, pod: dict[str, Any], ctx: PodContext) -> None:
        self.pod, self.ctx = pod, ctx
        self.name = f"{pod['metadata']['namespace']}/{pod['metadata']['name']}"
        self.dir = pod_dir(ctx.root, pod)
        init, main = pod["spec"].get("initContainers") or [], pod["spec"]["containers"]
        self.run = PodRun(
            start_time=(pod.get("status") or {}).get("startTime") or now(),
            init=[ContainerRecord(c["name"], c.get("image", "")) for c in init],
            main=[ContainerRecord(c["name"], c.get("image", "")) for c in main],
        )
        if init:
            for record in self.run.main:
                record.reason = "PodInitializing"
        self._specs = {c["name"]: c for c in [*init, *main]}
        self._running: dict[str, _Running] = {}
        self._restart_at: dict[str, float] = {}
        self._volumes: dict[str, str] | None = None
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._flags = _Flags()
        self._adopt(pod.get("status") or {})
        self.thread = threading.Thread(target=self._main, name=f"pod {self.name}", daemon=True)

    def _adopt(self, status: Mapping[str, Any]) -> None:
        """Continue from the status a previous agent wrote for this pod (see ``adopt``)."""
        previous = {
            s["name"]: s
            for s in [
                *status.get("initContainerStatuses", []),
                *status.get("containerStatuses", []),
            ]
        }
        for record in [*self.run.init, *self.run.main]:
            if record.name in previous and adopt(record, previous[record.name]):
                self._exited(record, LOST_EXIT_CODE, reason=LOST_REASON, message=LOST_MESSAGE)

    # Called from the agent's threads.

    def update(self, pod: dict[str, Any]) -> bool:
        """Take a newer version of the pod; False when the worker has finished."""
        with self._lock:
            if self._flags.finished:
                return False
            # Watch events can trail our own status writes; keep the newest (etcd revisions
            # are integers on this cluster).
            if int(pod["metadata"]["resourceVersion"]) > int(
                self.pod["metadata"]["resourceVersion"]
            ):
                self.pod = pod
            if pod["metadata"].get("deletionTimestamp"):
                self._flags.deleting = True
        self._wake.set()
        return True

    def gone(self) -> None:
        """The pod was removed from the API (force-deleted): stop without reporting."""
        self._flags.gone = True
        self._wake.set()

    def shutdown(self) -> None:
        """The agent stops: kill the processes, leave the pod as it is (as a dying kubelet)."""
        self._flags.shutdown = True
        self._wake.set()

    # The worker thread.

    def _main(self) -> None:
        try:
            self._loop()
        except Exception:
            log.exception("pod %s failed in the node agent", self.name)
        finally:
            self._stop_all(self.ctx.shutdown_grace)
            with self._lock:  # from now on the agent handles this pod's events itself
                self._flags.finished = True

    def _loop(self) -> None:
        while True:
            self._wake.clear()
            if self._flags.shutdown:
                return
            self._collect(stopping=False)
            if self._flags.gone or self._flags.deleting:
                log.info("stopping %s: it is being deleted", self.name)
                self._stop_all(self._grace())
                if not self._flags.gone:
                    self._report()
                    self.ctx.delete_pod(self.pod)
                shutil.rmtree(self.dir / "volumes", ignore_errors=True)
                return
            deadline = self._deadline()
            if deadline is not None and time.monotonic() >= deadline:
                self.run.failure = ("DeadlineExceeded", DEADLINE_MESSAGE)
                self._stop_all(self._grace())
            if plan_phase(self.run) in ("Succeeded", "Failed") and not self._running:
                if not self._report():  # the final status must reach the apiserver
                    self._wake.wait(CONFIG_RETRY)
                    continue
                with self._lock:
                    if not self._flags.deleting:
                        self._flags.finished = True
                        return
                continue
            self._step()
            self._report()
            self._wake.wait(self._timeout(deadline))

    def _grace(self) -> float:
        meta, spec = self.pod["metadata"], self.pod["spec"]
        grace = meta.get("deletionGracePeriodSeconds")
        return float(spec.get("terminationGracePeriodSeconds", 30) if grace is None else grace)

    def _deadline(self) -> float | None:
        """When activeDeadlineSeconds runs out (monotonic clock), counted from startTime."""
        seconds = self.pod["spec"].get("activeDeadlineSeconds")
        if not seconds:
            return None
        return time.monotonic() + _parse_time(self.run.start_time) + seconds - time.time()

    def _timeout(self, deadline: float | None) -> float:
        """How long to sleep: until the next probe, restart or deadline (events wake earlier)."""
        moments = [r.readiness.next_at for r in self._running.values() if r.readiness.probe]
        moments += self._restart_at.values()
        if deadline is not None:
            moments.append(deadline)
        return max(0.05, min(moments, default=time.monotonic() + 30) - time.monotonic())

    def _step(self) -> None:
        if self._volumes is None:
            try:
                self._volumes = materialize(self._view(), self.dir / "volumes", self.ctx.sources)
            except envs.ConfigError as exc:
                for record in [*self.run.init, *self.run.main]:
                    record.reason, record.message = "ContainerCreating", str(exc)
                self._restart_at[_VOLUMES] = time.monotonic() + CONFIG_RETRY
                return
            self._restart_at.pop(_VOLUMES, None)
            self._restart_at[_SYNC] = time.monotonic() + VOLUME_SYNC
            for record in self.run.init:
                record.reason, record.message = "ContainerCreating", None
            for record in self.run.main:
                record.message = None
                record.reason = "PodInitializing" if self.run.init else "ContainerCreating"
        elif self._due(_SYNC):
            self._sync_volumes()
        for record in self.run.init:
            if record.state == "terminated":
                if record.exit_code == 0:
                    continue
                return
            if record.name not in self._running and self._due(record.name):
                self._start(record)
            return
        for record in self.run.main:
            running = self._running.get(record.name)
            if running is not None:
                record.ready = running.readiness.check(record.ready)
            elif record.state == "waiting" and self._due(record.name):
                self._start(record)

    def _sync_volumes(self) -> None:
        """Bring ConfigMap and Secret volumes up to date, as a kubelet does; while a source is
        missing or unreadable, its files stay as they were."""
        try:
            refresh(self._view(), self.dir / "volumes", self.ctx.sources)
        except Exception as exc:  # the apiserver is away or the source is gone: try again later
            log.debug("volumes of %s not refreshed: %s", self.name, exc)
        self._restart_at[_SYNC] = time.monotonic() + VOLUME_SYNC

    def _view(self) -> dict[str, Any]:
        """The pod with its addresses, which field refs may read before the first report."""
        return {**self.pod, "status": {**(self.pod.get("status") or {}), **ADDRESSES}}

    def _due(self, name: str) -> bool:
        return time.monotonic() >= self._restart_at.get(name, 0.0)

    def _start(self, record: ContainerRecord) -> None:
        container = self._localized(self._specs[record.name])
        self._restart_at.pop(record.name, None)
        home = self.dir / record.name
        home.mkdir(parents=True, exist_ok=True)
        termination = home / "termination-log"
        assert self._volumes is not None
        try:
            own = envs.resolve_env(self._view(), container, self.ctx.sources)
            path_map = envs.build_path_map(container, self._volumes, str(termination))
        except envs.ConfigError as exc:
            record.reason, record.message = "CreateContainerConfigError", str(exc)
            self._restart_at[record.name] = time.monotonic() + CONFIG_RETRY
            return
        values = [*(container.get("command") or []), *(container.get("args") or [])]
        for parent, mounts in envs.mount_parents(path_map, [*values, *own.values()]).items():
            link_mounts(home / "mounts" / parent.lstrip("/"), mounts)
            path_map[parent] = str(home / "mounts" / parent.lstrip("/"))
        restarted = record.last_terminated is not None
        record.restart_count += restarted
        termination.write_bytes(b"")
        env = {
            **self.ctx.base_env,
            "HOSTNAME": self.pod["metadata"]["name"],
            **self._kubeconfig_env(path_map, home),
            **{k: envs.rewrite_paths(v, path_map) for k, v in own.items()},
            envs.TERMINATION_LOG_ENV: str(termination),
            envs.PATH_MAP_ENV: json.dumps(path_map),
        }
        record.started_at, record.finished_at, record.exit_code = now(), None, None
        try:
            argv, cwd = envs.build_command(container, own, path_map, path=env.get("PATH"))
            process = LocalProcess(
                argv,
                env=env,
                cwd=cwd or str(home),
                log=home / f"{record.restart_count}.log",
                on_exit=self._wake.set,
            )
        except (envs.StartError, OSError) as exc:
            self._exited(record, 128, reason="StartError", message=str(exc))
            return
        self.ctx.track(process, True)
        probe = container.get("readinessProbe")
        if probe and "exec" in probe:
            command = [envs.rewrite_paths(a, path_map) for a in probe["exec"]["command"]]
            probe = {**probe, "exec": {"command": command}}
        readiness = Readiness(probe, container, env=env, cwd=cwd or str(home))
        self._running[record.name] = _Running(process, readiness)
        record.state, record.reason, record.message = "running", "", None
        record.container_id, record.ready = f"local://{process.pid}", probe is None
        log.info("started %s container %s as PID %d", self.name, record.name, process.pid)

    def _localized(self, container: dict[str, Any]) -> dict[str, Any]:
        """The container with its taken ports moved to free ones (see ``localize_ports``)."""
        taken = envs.taken_ports(container, is_free=port_free)
        if not taken:
            return container
        port_map = {port: free_port() for port in taken}
        log.warning(
            "%s container %s: ports taken on this machine, moved: %s",
            self.name,
            container["name"],
            ", ".join(f"{old} -> {new}" for old, new in port_map.items()),
        )
        return envs.localize_ports(container, port_map)

    def _kubeconfig_env(self, path_map: Mapping[str, str], home: Path) -> dict[str, str]:
        """KUBECONFIG for a container that mounts its service-account token (the container's
        own KUBECONFIG, set after this, wins)."""
        host = self.ctx.base_env.get("KUBERNETES_SERVICE_HOST")
        port = self.ctx.base_env.get("KUBERNETES_SERVICE_PORT", "443")
        kubeconfig = envs.build_service_account_kubeconfig(f"https://{host}:{port}", path_map)
        if host is None or kubeconfig is None:
            return {}
        path = home / "kubeconfig"
        path.write_text(json.dumps(kubeconfig))  # JSON is YAML: every kubeconfig loader reads it
        path.chmod(0o600)
        return {"KUBECONFIG": str(path)}

    def _collect(self, *, stopping: bool) -> None:
        """Record the containers that exited since the last look."""
        for name, running in list(self._running.items()):
            code = running.process.exit_code
            if code is None:
                continue
            del self._running[name]
            self.ctx.track(running.process, False)
            record = next(r for r in [*self.run.init, *self.run.main] if r.name == name)
            home = self.dir / name
            policy = self._specs[name].get("terminationMessagePolicy")
            written = (home / "termination-log").read_bytes()
            message = termination_message(
                written,
                read_tail(home / f"{record.restart_count}.log"),
                policy=policy,
                exit_code=code,
            )
            self._exited(record, code, reason=exit_reason(code), message=message, stopping=stopping)

    def _exited(
        self,
        record: ContainerRecord,
        code: int,
        *,
        reason: str,
        message: str | None,
        stopping: bool = False,
    ) -> None:
        log.info("%s container %s exited with %d (%s)", self.name, record.name, code, reason)
        record.state, record.exit_code, record.finished_at = "terminated", code, now()
        record.reason, record.message, record.ready = reason, message, False
        if record.started_at is None:
            record.started_at = record.finished_at
        policy = self.pod["spec"].get("restartPolicy", "Always")
        if policy == "Always" and any(r is record for r in self.run.init):
            policy = "OnFailure"  # init containers run to completion; they only retry on failure
        if stopping or self.run.failure or not should_restart(policy, code):
            return
        delay = min(self.ctx.backoff * 2**record.restart_count, self.ctx.max_backoff)
        record.last_terminated = record.terminated()
        record.state, record.reason = "waiting", "CrashLoopBackOff"
        record.message = f"back-off {delay:g}s restarting failed container={record.name}"
        self._restart_at[record.name] = time.monotonic() + delay

    def _stop_all(self, grace: float) -> None:
        """SIGTERM every running container's group; SIGKILL what is left after ``grace``
        (or after the agent's shutdown grace, once the agent is stopping)."""
        for running in self._running.values():
            running.process.signal_group(signal.SIGTERM)
        began, killed = time.monotonic(), False
        while any(r.process.exit_code is None for r in self._running.values()):
            limit = min(grace, self.ctx.shutdown_grace) if self._flags.shutdown else grace
            if not killed and time.monotonic() - began >= limit:
                for running in self._running.values():
                    running.process.signal_group(signal.SIGKILL)
                killed = True
            # Exits set the event; the timeout bounds the wait for the grace period.
            self._wake.wait(0.1)
            self._wake.clear()
        self._collect(stopping=True)

    def _report(self) -> bool:
        """Write the status if it changed; False when it could not be written (retried)."""
        status = build_pod_status(self.pod, self.run, now=now())
        if status == self.pod.get("status"):
            return True
        try:
            updated = self.ctx.patch_status(self.pod, status)
        except Exception as exc:  # the apiserver is away; the processes must not die for it
            log.warning("status of %s not written, retrying: %s", self.name, exc)
            self._restart_at[_REPORT] = time.monotonic() + CONFIG_RETRY
            return False
        self._restart_at.pop(_REPORT, None)
        if updated is None:
            self._flags.gone = True
            return True
        with self._lock:
            self.pod = updated
            if updated["metadata"].get("deletionTimestamp"):
                self._flags.deleting = True
        return True
