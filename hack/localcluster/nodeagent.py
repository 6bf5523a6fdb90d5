"""A small kubelet for the local cluster: pods on its node run as real local processes.

kwok simulates every other node; the pods that must really run in the local lifecycle (the
trainer, the reference inference server) are scheduled here instead. The agent registers a
Node that kwok does not manage, tainted so that only pods that tolerate it land on it, keeps
it Ready (status heartbeat plus a Lease in kube-node-lease, as a kubelet does), watches the
pods bound to it and runs them (see :mod:`localcluster.nodeagent_pods`).

What a container sees differs from a real node in a few documented ways: the image is
ignored and ``command`` is looked up on the agent's PATH; volumes are directories under the
agent's directory (ConfigMap and Secret volumes follow their sources every few seconds) and
mount paths are rewritten in command, args and env (the mapping is in ``KUBETUNE_PATH_MAP``;
a directory argument holding mounts becomes a directory of links to them); the termination
message is read from ``KUBETUNE_TERMINATION_LOG``;
every pod has IP 127.0.0.1 and shares the host's network, so a declared container port that
something on the machine already holds is moved to a free one (in arguments, env and probes;
logged by the agent). There is no kubelet endpoint, so ``kubectl logs`` and ``exec``
do not work; logs are files under ``<dir>/pods/<namespace>_<name>_<uid>/<container>/``.

In-cluster credentials: a client's in-cluster config reads the token and CA from the fixed
``/var/run/secrets/kubernetes.io/serviceaccount``, which a local process cannot have. The
agent sets ``KUBERNETES_SERVICE_HOST``/``PORT`` to the apiserver and materializes the
projected service-account volume with a real bound token (TokenRequest); for a container
that mounts that volume, it also writes a kubeconfig (server: the apiserver; CA and
``tokenFile``: the mounted files) and sets ``KUBECONFIG`` to it, unless the container sets
its own. Clients that fall back from in-cluster config to ``KUBECONFIG`` (the kubernetes
client's usual pattern, kopf's login, kubetune's operator) so act as the pod's
ServiceAccount with exactly its RBAC, as in a real cluster. The token is requested once per
pod start, bound to the pod; it is not rotated as a kubelet rotates it, but for admission's
default volume (3607s) the apiserver issues a bound token valid for a year, as it does for
kubelets.

Run it with ``hack/cluster agent`` or ``python -m localcluster.nodeagent --kubeconfig K``.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import platform
import shutil
import signal
import sys
import threading
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from kubernetes import client, config, watch
from kubernetes.client.rest import ApiException

from localcluster import processes
from localcluster.nodeagent_api import PodApi, micro_time
from localcluster.nodeagent_pods import PodContext, PodWorker, now, pod_dir
from localcluster.nodeagent_processes import LocalProcess
from localcluster.nodes import GPU_RESOURCE, POOL_LABEL

DEFAULT_NODE = "local-agent-0"
AGENT_POOL = "local"
AGENT_TAINT = {"key": "kubetune.io/local-agent", "value": "true", "effect": "NoSchedule"}
FIELD_MANAGER = "kubetune-nodeagent"
LEASE_NAMESPACE = "kube-node-lease"
WATCH_TIMEOUT = 60
"""Seconds per watch request; the watch resumes from the last resourceVersion after it."""
INHERITED_ENV_DENIED = ("KUBECONFIG", "AWS_", "KUBERNETES_")
"""Prefixes of the agent's own variables that containers do not inherit: credentials stay
with the agent, as they do with a kubelet (pods get them from Secrets)."""

log = logging.getLogger("localcluster.nodeagent")


def _memory() -> str:
    with open("/proc/meminfo") as meminfo:
        kib = next(int(line.split()[1]) for line in meminfo if line.startswith("MemTotal:"))
    return f"{kib}Ki"


@dataclass(frozen=True)
class AgentSettings:
    """The node the agent registers and how it runs pods."""

    root: Path
    """The agent's directory: pod volumes, logs and its record of child processes."""
    node: str = DEFAULT_NODE
    cpu: str = field(default_factory=lambda: str(os.cpu_count() or 1))
    memory: str = field(default_factory=_memory)
    pods: str = "110"
    gpus: str = "1"
    """Advertised ``nvidia.com/gpu``: training pods request one; here they run on CPU."""
    heartbeat: float = 10.0
    """Seconds between Lease renewals and node status updates."""
    lease_seconds: int = 40
    backoff: float = 1.0
    """First restart back-off in seconds (doubles per restart up to a minute)."""
    shutdown_grace: float = 5.0
    """Seconds a container gets between SIGTERM and SIGKILL when the agent stops."""


def build_node(settings: AgentSettings) -> dict[str, Any]:
    """The agent's Node: labelled for the local pool, tainted, not labelled for kwok."""
    return {
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {
            "name": settings.node,
            "labels": {
                POOL_LABEL: AGENT_POOL,
                "kubernetes.io/hostname": settings.node,
                "kubernetes.io/os": "linux",
                "kubernetes.io/arch": "amd64",
            },
        },
        "spec": {"taints": [AGENT_TAINT]},
    }


def build_node_status(settings: AgentSettings, *, ready_since: str, heartbeat: str) -> dict:
    """The Node's status (for server-side apply): capacity and a Ready heartbeat."""
    resources = {
        "cpu": settings.cpu,
        "memory": settings.memory,
        "pods": settings.pods,
        GPU_RESOURCE: settings.gpus,
    }
    conditions = [
        ("MemoryPressure", "False", "KubeletHasSufficientMemory"),
        ("DiskPressure", "False", "KubeletHasNoDiskPressure"),
        ("PIDPressure", "False", "KubeletHasSufficientPID"),
        ("Ready", "True", "KubeletReady"),
    ]
    return {
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {"name": settings.node},
        "status": {
            "capacity": resources,
            "allocatable": dict(resources),
            "conditions": [
                {
                    "type": kind,
                    "status": status,
                    "reason": reason,
                    "message": "kubetune local node agent",
                    "lastHeartbeatTime": heartbeat,
                    "lastTransitionTime": ready_since,
                }
                for kind, status, reason in conditions
            ],
            "addresses": [
                {"type": "InternalIP", "address": "127.0.0.1"},
                {"type": "Hostname", "address": settings.node},
            ],
            "nodeInfo": {
                "architecture": "amd64",
                "operatingSystem": "linux",
                "kernelVersion": platform.release(),
                "osImage": platform.freedesktop_os_release().get("PRETTY_NAME", "linux"),
                "containerRuntimeVersion": "local://kubetune-nodeagent",
                "kubeletVersion": "kubetune-nodeagent",
                "kubeProxyVersion": "",
                "machineID": "",
                "systemUUID": "",
                "bootID": "",
            },
        },
    }


def inherited_env(environ: Mapping[str, str]) -> dict[str, str]:
    """The agent's variables a container starts from (PATH, HOME, the venv, HF caches ...)."""
    return {k: v for k, v in environ.items() if not k.startswith(INHERITED_ENV_DENIED)}


class NodeAgent:
    """Registers the node, keeps it Ready and runs the pods bound to it until ``stop``."""

    def __init__(self, kubeconfig: Path, settings: AgentSettings) -> None:
        self.settings = settings
        self.root = settings.root.resolve()
        self._client = config.new_client_from_config(config_file=str(kubeconfig))
        self._core = client.CoreV1Api(self._client)
        self._api = PodApi(self._core)
        self._stopping = threading.Event()
        self._workers: dict[str, PodWorker] = {}
        self._children: dict[int, int] = {}
        self._children_lock = threading.Lock()
        self._watch: watch.Watch | None = None
        self._threads: list[threading.Thread] = []
        self._ready_since = now()
        server = self._client.configuration.host.removeprefix("https://")
        host, _, port = server.rpartition(":")
        self._context = PodContext(
            sources=self._api,
            patch_status=self._api.patch_status,
            delete_pod=self._api.delete_pod,
            track=self._track,
            root=self.root,
            base_env={
                **inherited_env(os.environ),
                "KUBERNETES_SERVICE_HOST": host,
                "KUBERNETES_SERVICE_PORT": port or "443",
            },
            backoff=settings.backoff,
            shutdown_grace=settings.shutdown_grace,
        )

    def start(self) -> None:
        """Clean up after a previous agent, register the node and start watching."""
        (self.root / "pods").mkdir(parents=True, exist_ok=True)
        self._kill_stale_children()
        self._apply(build_node(self.settings))  # labels and taint, also on an existing node
        self._beat()
        for target, name in ((self._heartbeat_loop, "heartbeat"), (self._watch_loop, "watch")):
            thread = threading.Thread(target=target, name=name, daemon=True)
            thread.start()
            self._threads.append(thread)
        log.info("node %s registered; pods run under %s", self.settings.node, self.root)

    def stop(self) -> None:
        """Stop watching and kill every container process (the pods are left as they are)."""
        self._stopping.set()
        if self._watch is not None:
            self._watch.stop()
        for worker in list(self._workers.values()):
            worker.shutdown()
        for worker in list(self._workers.values()):
            worker.thread.join(self.settings.shutdown_grace + 5)
        for thread in self._threads:
            thread.join(5)
        self._client.close()

    # Node registration and heartbeat.

    def _apply(self, body: dict[str, Any], *, status: bool = False) -> None:
        patch = self._core.patch_node_status if status else self._core.patch_node
        patch(
            self.settings.node,
            body,
            field_manager=FIELD_MANAGER,
            force=True,
            _content_type="application/apply-patch+yaml",
        )

    def _beat(self) -> None:
        """Post the node's status and renew its Lease; register the node again if someone
        deleted it, as a kubelet does."""
        settings = self.settings
        status = build_node_status(settings, ready_since=self._ready_since, heartbeat=now())
        try:
            self._apply(status, status=True)
        except ApiException as exc:
            if exc.status != 404:
                raise
            self._apply(build_node(settings))
            self._apply(status, status=True)
        uid = self._core.read_node(settings.node).metadata.uid
        lease = {
            "apiVersion": "coordination.k8s.io/v1",
            "kind": "Lease",
            "metadata": {
                "name": settings.node,
                "namespace": LEASE_NAMESPACE,
                "ownerReferences": [
                    {"apiVersion": "v1", "kind": "Node", "name": settings.node, "uid": uid}
                ],
            },
            "spec": {
                "holderIdentity": settings.node,
                "leaseDurationSeconds": settings.lease_seconds,
                "renewTime": micro_time(),
            },
        }
        client.CoordinationV1Api(self._client).patch_namespaced_lease(
            settings.node,
            LEASE_NAMESPACE,
            lease,
            field_manager=FIELD_MANAGER,
            force=True,
            _content_type="application/apply-patch+yaml",
        )

    def _heartbeat_loop(self) -> None:
        while not self._stopping.wait(self.settings.heartbeat):
            try:
                self._beat()
            except Exception as exc:  # a missed beat is retried; the lease outlives a few
                log.warning("heartbeat failed: %s", exc)

    # Watching the pods bound to the node.

    def _watch_loop(self) -> None:
        """List, then watch from the list's resourceVersion; resume after each timeout or
        dropped connection from the last version seen, and list again when it expired."""
        selector = f"spec.nodeName={self.settings.node}"
        version: str | None = None
        while not self._stopping.is_set():
            try:
                if version is None:
                    version = self._relist(selector)
                self._watch = watch.Watch(return_type=object)
                for event in self._watch.stream(
                    self._core.list_pod_for_all_namespaces,
                    field_selector=selector,
                    resource_version=version,
                    allow_watch_bookmarks=True,
                    timeout_seconds=WATCH_TIMEOUT,
                ):
                    if event["type"] != "BOOKMARK":
                        self._handle(event["type"], event["raw_object"])
                version = self._watch.resource_version or version
            except ApiException as exc:
                if exc.status == 410:  # too old: the events in between are gone, list again
                    version = None
                else:
                    log.warning("pod watch failed (%s); resuming", exc.status)
                    self._stopping.wait(1)
            except Exception as exc:  # connection dropped: resume from the last version
                if not self._stopping.is_set():
                    log.warning("pod watch interrupted: %s; resuming", exc)
                    if self._watch is not None:
                        version = self._watch.resource_version or version
                    self._stopping.wait(1)

    def _relist(self, selector: str) -> str:
        listing = self._api.list_pods(selector)
        seen = {pod["metadata"]["uid"] for pod in listing["items"]}
        for uid in set(self._workers) - seen:
            self._handle("DELETED", self._workers[uid].pod)
        for pod in listing["items"]:
            self._handle("MODIFIED", pod)
        return str(listing["metadata"]["resourceVersion"])

    def _handle(self, kind: str, pod: dict[str, Any]) -> None:
        uid = pod["metadata"]["uid"]
        if kind == "DELETED":
            worker = self._workers.pop(uid, None)
            if worker is not None and worker.thread.is_alive():
                worker.gone()  # it stops the processes, then removes the volumes
            else:
                shutil.rmtree(pod_dir(self.root, pod) / "volumes", ignore_errors=True)
            return
        worker = self._workers.get(uid)
        if worker is not None and worker.update(pod):
            return
        if pod["metadata"].get("deletionTimestamp"):
            # Nothing runs for it (never started, or finished): finish the graceful delete.
            self._api.delete_pod(pod)
            shutil.rmtree(pod_dir(self.root, pod) / "volumes", ignore_errors=True)
            return
        phase = (pod.get("status") or {}).get("phase")
        if worker is not None or phase in ("Succeeded", "Failed"):
            return
        worker = PodWorker(pod, self._context)
        self._workers[uid] = worker
        worker.thread.start()

    # Child processes, recorded so that an agent killed with SIGKILL is cleaned up next time.

    def _track(self, process: LocalProcess, alive: bool) -> None:
        with self._children_lock:
            if alive and process.started is not None:
                self._children[process.pid] = process.started
            else:
                self._children.pop(process.pid, None)
            path = self.root / "children.json"
            path.write_text(json.dumps(self._children))

    def _kill_stale_children(self) -> None:
        path = self.root / "children.json"
        if not path.exists():
            return
        for pid, started in json.loads(path.read_text()).items():
            if processes.runs(int(pid), started):
                log.info("stopping PID %s left by a previous agent", pid)
                processes.stop(int(pid), started, grace=self.settings.shutdown_grace)
        path.unlink()


def main(argv: list[str] | None = None) -> int:
    """Run the agent in the foreground until SIGINT or SIGTERM."""
    parser = argparse.ArgumentParser(
        prog="python -m localcluster.nodeagent",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--kubeconfig", type=Path, required=True, help="the cluster to join")
    parser.add_argument(
        "--dir",
        type=Path,
        default=Path(".kubetune/agent"),
        help="pod volumes and logs (default: ./.kubetune/agent)",
    )
    parser.add_argument("--node", default=DEFAULT_NODE, help=f"node name (default: {DEFAULT_NODE})")
    parser.add_argument("--cpu", help="advertised CPUs (default: this machine's)")
    parser.add_argument("--memory", help="advertised memory, e.g. 64Gi (default: this machine's)")
    parser.add_argument("--gpus", default="1", help="advertised nvidia.com/gpu (default: 1)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    overrides = {k: getattr(args, k) for k in ("cpu", "memory") if getattr(args, k)}
    settings = AgentSettings(root=args.dir, node=args.node, gpus=args.gpus, **overrides)
    agent = NodeAgent(args.kubeconfig, settings)
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    agent.start()
    try:
        stop.wait()
    finally:
        agent.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
