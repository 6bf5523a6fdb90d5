"""One local control plane: etcd, kube-apiserver, controller-manager, scheduler and kwok.

State (PIDs, ports, credentials) lives in ``<root>/state.json`` so that ``down`` and
``status`` work from another process, e.g. ``hack/cluster down`` after ``hack/cluster up``.
"""

from __future__ import annotations

import json
import secrets
import shutil
import subprocess
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import yaml

from localcluster import processes
from localcluster.nodes import DEFAULT_POOLS, KWOK_LABEL, NodePool, build_nodes
from localcluster.pki import Pki, write_pki
from localcluster.tools import ensure_tools

STAGES_DIR = Path(__file__).resolve().parent / "stages"
SERVICE_CIDR = "10.96.0.0/16"
SERVICE_IP = "10.96.0.1"
START_TIMEOUT = 60.0
# Start order; ``down`` stops in reverse.
COMPONENTS = ("etcd", "kube-apiserver", "kube-controller-manager", "kube-scheduler", "kwok")


@dataclass
class ClusterInfo:
    """What a client needs to reach a running cluster, and what ``down`` needs to stop it."""

    root: Path
    kubeconfig: Path
    server: str
    token: str
    ca_file: Path
    bin_dir: dict[str, str] = field(default_factory=dict)
    ports: dict[str, int] = field(default_factory=dict)
    pids: dict[str, int] = field(default_factory=dict)
    starts: dict[str, int] = field(default_factory=dict)
    argv: dict[str, list[str]] = field(default_factory=dict)
    """Each component's command line, so ``restart`` starts it exactly as ``up`` did."""

    def save(self) -> None:
        data = asdict(self)
        data.update(root=str(self.root), kubeconfig=str(self.kubeconfig), ca_file=str(self.ca_file))
        (self.root / "state.json").write_text(json.dumps(data, indent=2))

    @classmethod
    def load(cls, root: Path) -> ClusterInfo:
        data = json.loads((root / "state.json").read_text())
        data.update(
            root=Path(data["root"]),
            kubeconfig=Path(data["kubeconfig"]),
            ca_file=Path(data["ca_file"]),
        )
        return cls(**data)


def _kubeconfig(server: str, ca: Path, user: dict[str, str]) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [
            {
                "name": "kubetune-local",
                "cluster": {"server": server, "certificate-authority": str(ca)},
            }
        ],
        "users": [{"name": "user", "user": user}],
        "contexts": [
            {"name": "kubetune-local", "context": {"cluster": "kubetune-local", "user": "user"}}
        ],
        "current-context": "kubetune-local",
    }


def _write_yaml(path: Path, data: Any) -> Path:
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    path.chmod(0o600)
    return path


class Cluster:
    """A control plane rooted at ``root``; ``up`` starts it, ``down`` removes every trace."""

    def __init__(
        self,
        root: Path,
        *,
        pools: tuple[NodePool, ...] = DEFAULT_POOLS,
        apiserver_args: tuple[str, ...] = (),
        controller_manager_args: tuple[str, ...] = (),
    ) -> None:
        self.root = Path(root).resolve()
        self.pools = pools
        self.apiserver_args = apiserver_args
        """Extra kube-apiserver flags, e.g. an audit log for the scale benchmark."""
        self.controller_manager_args = controller_manager_args
        """Extra kube-controller-manager flags, e.g. its client's rate limit at scale."""

    @property
    def info(self) -> ClusterInfo:
        return ClusterInfo.load(self.root)

    def up(self) -> ClusterInfo:
        """Start every component and wait until the simulated nodes are Ready."""
        if (self.root / "state.json").exists():
            raise RuntimeError(f"a cluster already has state in {self.root}; run down first")
        bins = ensure_tools(["kubernetes", "etcd", "kwok"])
        self.root.mkdir(parents=True, exist_ok=True)
        (self.root / "logs").mkdir(exist_ok=True)
        pki = write_pki(self.root / "pki", service_ip=SERVICE_IP)
        ports = {
            name: processes.free_port()
            for name in (
                "etcd",
                "etcd-peer",
                "kube-apiserver",
                "kube-controller-manager",
                "kube-scheduler",
            )
        }
        server = f"https://127.0.0.1:{ports['kube-apiserver']}"
        token = secrets.token_hex(24)
        info = ClusterInfo(
            root=self.root,
            kubeconfig=_write_yaml(
                self.root / "kubeconfig", _kubeconfig(server, pki.ca_cert, {"token": token})
            ),
            server=server,
            token=token,
            ca_file=pki.ca_cert,
            bin_dir={name: str(path) for name, path in bins.items()},
            ports=ports,
        )
        tokens = self.root / "tokens.csv"
        tokens.write_text(f'{token},kubetune-admin,kubetune-admin,"system:masters"\n')
        tokens.chmod(0o600)
        try:
            for component in COMPONENTS:
                self._start(component, info, pki)
                info.save()
            self._create_nodes(info)
        except BaseException:
            self._stop_all(info)
            raise
        return info

    def down(self) -> None:
        """Stop exactly the processes this cluster started and remove its directory."""
        if (self.root / "state.json").exists():
            self._stop_all(self.info)
        shutil.rmtree(self.root, ignore_errors=True)

    def stop(self, component: str) -> None:
        """Stop one component (SIGTERM, then SIGKILL), e.g. to inject an apiserver outage."""
        info = self.info
        processes.stop(info.pids[component], info.starts[component])

    def start(self, component: str) -> None:
        """Start a stopped component again with its original command line; wait until ready.

        Components that exited meanwhile (the controller-manager gives up when the apiserver
        vanishes while it is still starting) are started too, as a kubelet restarts its
        static pods.
        """
        info = self.info
        if processes.runs(info.pids[component], info.starts[component]):
            raise RuntimeError(f"{component} is already running")
        for name in COMPONENTS:
            if name == component or not processes.runs(info.pids[name], info.starts[name]):
                self._launch(name, info, info.argv[name])
        info.save()

    def restart(self, component: str) -> None:
        self.stop(component)
        self.start(component)

    def status(self) -> dict[str, bool]:
        """Which components run, and whether the apiserver answers /readyz."""
        info = self.info
        result = {c: processes.runs(info.pids[c], info.starts[c]) for c in info.pids}
        result["apiserver-ready"] = processes.http_ok(
            f"{info.server}/readyz", ca=info.ca_file, token=info.token
        )
        return result

    def kubectl(
        self, *args: str, check: bool = True, input: str | None = None
    ) -> subprocess.CompletedProcess[str]:
        """Run the cluster's own kubectl against it."""
        info = self.info
        return subprocess.run(
            [info.bin_dir["kubectl"], f"--kubeconfig={info.kubeconfig}", *args],
            check=check,
            capture_output=True,
            text=True,
            input=input,
        )

    def _argv(self, component: str, info: ClusterInfo, pki: Pki) -> list[str]:
        root, ports = self.root, info.ports
        etcd_url = f"http://127.0.0.1:{ports['etcd']}"
        peer_url = f"http://127.0.0.1:{ports['etcd-peer']}"

        def component_kubeconfig(who: str) -> str:
            user = {
                "client-certificate": str(pki.client_cert(who)),
                "client-key": str(pki.client_key(who)),
            }
            return str(
                _write_yaml(root / f"{who}.kubeconfig", _kubeconfig(info.server, pki.ca_cert, user))
            )

        match component:
            case "etcd":
                return [
                    "--name=local",
                    f"--data-dir={root / 'etcd'}",
                    f"--listen-client-urls={etcd_url}",
                    f"--advertise-client-urls={etcd_url}",
                    f"--listen-peer-urls={peer_url}",
                    f"--initial-advertise-peer-urls={peer_url}",
                    f"--initial-cluster=local={peer_url}",
                    "--unsafe-no-fsync",
                    "--log-level=warn",
                ]
            case "kube-apiserver":
                return [
                    f"--etcd-servers={etcd_url}",
                    "--bind-address=127.0.0.1",
                    f"--secure-port={ports['kube-apiserver']}",
                    "--advertise-address=127.0.0.1",
                    "--endpoint-reconciler-type=none",
                    f"--tls-cert-file={pki.serving_cert}",
                    f"--tls-private-key-file={pki.serving_key}",
                    f"--client-ca-file={pki.ca_cert}",
                    f"--token-auth-file={root / 'tokens.csv'}",
                    "--authorization-mode=Node,RBAC",
                    "--anonymous-auth=false",
                    "--service-account-issuer=https://kubernetes.default.svc.cluster.local",
                    f"--service-account-key-file={pki.sa_pub}",
                    f"--service-account-signing-key-file={pki.sa_key}",
                    f"--service-cluster-ip-range={SERVICE_CIDR}",
                    "--allow-privileged=true",
                    f"--cert-dir={root / 'apiserver-certs'}",
                    "--profiling=false",
                    *self.apiserver_args,
                ]
            case "kube-controller-manager":
                return [
                    f"--kubeconfig={component_kubeconfig('controller-manager')}",
                    f"--service-account-private-key-file={pki.sa_key}",
                    f"--root-ca-file={pki.ca_cert}",
                    "--use-service-account-credentials=true",
                    "--leader-elect=false",
                    "--bind-address=127.0.0.1",
                    f"--secure-port={ports['kube-controller-manager']}",
                    f"--cert-dir={root / 'kcm-certs'}",
                    f"--service-cluster-ip-range={SERVICE_CIDR}",
                    "--profiling=false",
                    *self.controller_manager_args,
                ]
            case "kube-scheduler":
                return [
                    f"--kubeconfig={component_kubeconfig('scheduler')}",
                    "--leader-elect=false",
                    "--bind-address=127.0.0.1",
                    f"--secure-port={ports['kube-scheduler']}",
                    f"--cert-dir={root / 'scheduler-certs'}",
                    "--profiling=false",
                ]
            case "kwok":
                stages = root / "kwok-stages.yaml"
                stages.write_text(
                    "\n---\n".join(p.read_text() for p in sorted(STAGES_DIR.glob("*.yaml")))
                )
                return [
                    f"--kubeconfig={component_kubeconfig('kwok')}",
                    f"--config={stages}",
                    "--manage-all-nodes=false",
                    f"--manage-nodes-with-label-selector={KWOK_LABEL[0]}={KWOK_LABEL[1]}",
                    "--cidr=10.244.0.1/16",
                    "--node-ip=10.0.0.1",
                    "--node-lease-duration-seconds=40",
                ]
        raise ValueError(component)

    def _start(self, component: str, info: ClusterInfo, pki: Pki) -> None:
        info.argv[component] = [info.bin_dir[component], *self._argv(component, info, pki)]
        self._launch(component, info, info.argv[component])

    def _launch(self, component: str, info: ClusterInfo, argv: list[str]) -> None:
        log = self.root / "logs" / f"{component}.log"
        info.pids[component], info.starts[component] = processes.start(
            argv,
            log=log,
            what=component,
            ready=self._probe(component, info),
            timeout=START_TIMEOUT,
            cwd=self.root,
        )

    def _probe(self, component: str, info: ClusterInfo) -> Callable[[], bool] | None:
        """A readiness check per component; kwok is proven ready by its nodes turning Ready."""
        ports = info.ports
        match component:
            case "etcd":
                url = f"http://127.0.0.1:{ports['etcd']}/health"
                return lambda: processes.http_ok(url)
            case "kube-apiserver":
                url = f"{info.server}/readyz"
                return lambda: processes.http_ok(url, ca=info.ca_file, token=info.token)
            case "kube-controller-manager" | "kube-scheduler":
                # Self-signed serving certs; /healthz is always allowed without credentials.
                url = f"https://127.0.0.1:{ports[component]}/healthz"
                return lambda: processes.http_ok(url, verify=False)
        return None

    def _create_nodes(self, info: ClusterInfo) -> None:
        manifest = yaml.safe_dump_all(build_nodes(self.pools))
        self.kubectl("create", "-f", "-", input=manifest)
        selector = f"{KWOK_LABEL[0]}={KWOK_LABEL[1]}"
        self.kubectl(
            "wait",
            "--for=condition=Ready",
            "node",
            "-l",
            selector,
            f"--timeout={START_TIMEOUT:.0f}s",
        )

    def _stop_all(self, info: ClusterInfo) -> None:
        for component in reversed(COMPONENTS):
            if component in info.pids:
                processes.stop(info.pids[component], info.starts[component])
