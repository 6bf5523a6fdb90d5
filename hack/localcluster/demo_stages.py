"""The demo's setup stages (the cluster up to the applied examples), and the names and the
:class:`Demo` handle they share with the later stages in :mod:`localcluster.demo_rollout`.

Every stage waits for a fact it can check (a process ready, an object's status, an answer
over HTTP) and raises with what it saw when the fact does not come; it records what it found
as notes, which the e2e test reads from the event log. The order and titles are in
:mod:`localcluster.demo`.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager, redirect_stderr, redirect_stdout
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any, TypeVar

import yaml
from kubernetes import client, config
from kubernetes.client.rest import ApiException

from kubetune.api.constants import LABEL_ADAPTER_FAMILY, LABEL_ADAPTER_VERSION
from localcluster import Cluster, S3Server, demo_artifacts, processes
from localcluster.demo_timeline import Stage, Timeline
from localcluster.nodeagent import AGENT_POOL, AGENT_TAINT, DEFAULT_NODE
from localcluster.nodes import POOL_LABEL
from localcluster.tinymodel import build_tiny_model
from localcluster.tools import ensure_tools

REPO = Path(__file__).resolve().parents[2]
OVERLAY = REPO / "examples" / "local"
CHART = REPO / "helm" / "kubetune"
NAMESPACE = "ml-team"
"""The examples' namespace."""
RELEASE, RELEASE_NAMESPACE = "kubetune", "kubetune-system"
BUCKET = "kubetune-demo"
SECRET = "s3-local"
BASE = {"name": "kubetune-demo/tiny-llama", "revision": "main"}
"""The base model as examples/local names it."""
FAMILY, SERVED = "support-bot", "support-bot"
BASELINE, TRAINED = "support-bot-v2", "support-bot-v3"
FINETUNEJOB, INFERENCEDEPLOYMENT = "support-bot-v3", "support"
SERVING_PORT = 8000
"""The reference runtime's port; pods on the agent's node share the host's network."""
QUESTION = "What color is the banana?"
GROUP, VERSION = "kubetune.io", "v1alpha1"
TOLERATION = {"key": AGENT_TAINT["key"], "operator": "Exists", "effect": "NoSchedule"}

T = TypeVar("T")


def wait_for(
    check: Callable[[], T | None],
    *,
    what: str | Callable[[], str],
    timeout: float,
    every: float = 1,
) -> T:
    """Poll ``check`` until it returns something truthy; TimeoutError naming ``what`` (a
    callable is asked at the deadline, so that it can say what was seen)."""
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise TimeoutError(f"{what() if callable(what) else what}: not within {timeout:.0f}s")
        time.sleep(every)


@dataclass
class Demo:
    """One demo's state directory and handles on what runs there."""

    root: Path
    timeline: Timeline
    found: dict[str, Any] = field(default_factory=dict)
    """What stages learned that later stages need (the artifact URI, the serving URL)."""

    @property
    def cluster(self) -> Cluster:
        return Cluster(self.root / "cluster")

    @property
    def s3(self) -> S3Server:
        return S3Server(self.root / "s3")

    @property
    def state_file(self) -> Path:
        return self.root / "demo.json"

    @cached_property
    def api(self) -> client.ApiClient:
        return config.new_client_from_config(config_file=str(self.cluster.info.kubeconfig))

    def get(self, plural: str, name: str) -> dict[str, Any] | None:
        """A kubetune object in the examples' namespace, or None."""
        try:
            return client.CustomObjectsApi(self.api).get_namespaced_custom_object(  # type: ignore[no-any-return]
                GROUP, VERSION, NAMESPACE, plural, name
            )
        except ApiException as exc:
            if exc.status == 404:
                return None
            raise

    def status(self, plural: str, name: str) -> dict[str, Any]:
        return (self.get(plural, name) or {}).get("status") or {}

    def kubectl(self, *args: str, input: str | None = None) -> str:
        """The cluster's kubectl; its output, or an error with its stderr."""
        result = self.cluster.kubectl(*args, check=False, input=input)
        if result.returncode != 0:
            raise RuntimeError(f"kubectl {' '.join(args)}: {result.stderr.strip()}")
        return result.stdout

    def logs(self) -> list[tuple[str, Path]]:
        """Where to look when something fails."""
        return [
            ("events", self.root / "events.jsonl"),
            ("node agent", self.root / "agent" / "agent.log"),
            ("pods (one directory per pod and container)", self.root / "agent" / "pods"),
            ("helm", self.root / "helm.log"),
            ("control plane", self.root / "cluster"),
            ("S3", self.root / "s3" / "minio.log"),
        ]


def start_cluster(demo: Demo, stage: Stage) -> None:
    info = demo.cluster.up()
    s3 = demo.s3.up()
    stage.note(f"apiserver {info.server}", server=info.server)
    stage.note(f"S3 (MinIO) {s3.endpoint}", endpoint=s3.endpoint)


def start_agent(demo: Demo, stage: Stage) -> None:
    """The node agent, detached so that it outlives ``hack/demo``; its pods find this Python
    environment's commands (kubetune, kubetune-train, kubetune-serve) on PATH."""
    root = demo.root / "agent"
    root.mkdir(parents=True, exist_ok=True)
    hack = str(REPO / "hack")
    env = {
        "PYTHONPATH": os.pathsep.join(filter(None, [hack, os.environ.get("PYTHONPATH")])),
        "PATH": os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "")]),
        "HF_HUB_OFFLINE": "1",  # the tiny model comes from S3; nothing from the hub
        # Pods inherit the agent's environment, as processes on a node do: the trainer
        # reports progress every 2s instead of 10s, so the demo shows it step by step.
        "KUBETUNE_PROGRESS_INTERVAL": "2",
    }
    argv = [sys.executable, "-m", "localcluster.nodeagent", "--kubeconfig"]
    argv += [str(demo.cluster.info.kubeconfig), "--dir", str(root), "--node", DEFAULT_NODE]
    # Requests are not enforced on the agent: advertise room for the demo's pods on any machine.
    argv += ["--cpu", str(max(8, os.cpu_count() or 1))]
    pid, started = processes.spawn(argv, log=root / "agent.log", env=env)
    demo.state_file.write_text(json.dumps({"agent": {"pid": pid, "started": started}}))
    core = client.CoreV1Api(demo.api)

    def ready() -> bool:
        if not processes.runs(pid, started):
            raise RuntimeError(f"the node agent exited; see {root / 'agent.log'}")
        try:
            node = core.read_node(DEFAULT_NODE)
        except ApiException:
            return False
        conditions = node.status.conditions or []
        ok = any(c.type == "Ready" and c.status == "True" for c in conditions)
        return ok and all(t.key != "node.kubernetes.io/not-ready" for t in node.spec.taints or [])

    wait_for(ready, what=f"node {DEFAULT_NODE} Ready", timeout=60, every=0.5)
    stage.note(f"node {DEFAULT_NODE} Ready (PID {pid})", node=DEFAULT_NODE, pid=pid)


def helm_values(s3_endpoint: str, s3_region: str) -> dict[str, Any]:
    """The chart's values for the demo: one operator replica, run for real on the agent's
    node, on free ports; validation pods there too; the demo's S3 as the default endpoint."""

    def placement() -> dict[str, Any]:
        return {"nodeSelector": {POOL_LABEL: AGENT_POOL}, "tolerations": [dict(TOLERATION)]}

    return {
        "replicaCount": 1,
        "watchNamespaces": [NAMESPACE],
        "operator": {
            "logFormat": "text",
            # Pods on the agent share the host's network: ports nothing else holds.
            "metricsPort": processes.free_port(),
            "healthPort": processes.free_port(),
            "extraEnv": [
                # Progress and rollout checks at a demo's pace rather than a cluster's.
                {"name": "KUBETUNE_PROGRESS_INTERVAL", "value": "2"},
                {"name": "KUBETUNE_ROLLOUT_TICK", "value": "2"},
            ],
        },
        "defaults": {
            "s3": {"endpoint": s3_endpoint, "region": s3_region},
            "validation": placement(),
        },
        **placement(),
    }


def install_operator(demo: Demo, stage: Stage) -> None:
    core = client.CoreV1Api(demo.api)
    for namespace in (NAMESPACE, RELEASE_NAMESPACE):
        core.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name=namespace)))
    s3 = demo.s3.info
    values = demo.root / "values.yaml"
    values.write_text(yaml.safe_dump(helm_values(s3.endpoint, s3.region), sort_keys=False))
    helm = str(ensure_tools(["helm"])["helm"])
    kubeconfig = str(demo.cluster.info.kubeconfig)
    install = [helm, "upgrade", "--install", RELEASE, str(CHART), "--namespace", RELEASE_NAMESPACE]
    install += ["--values", str(values), "--wait", "--timeout", "180s", "--kubeconfig", kubeconfig]
    with (demo.root / "helm.log").open("a") as log:
        result = subprocess.run(install, stdout=log, stderr=subprocess.STDOUT, check=False)
    if result.returncode != 0:
        raise RuntimeError(f"helm install failed; see {demo.root / 'helm.log'}")
    listing = [helm, "list", "-n", RELEASE_NAMESPACE, "-o", "json", "--kubeconfig", kubeconfig]
    releases = json.loads(
        subprocess.run(listing, capture_output=True, text=True, check=True).stdout
    )
    release = next(r for r in releases if r["name"] == RELEASE)
    pods = core.list_namespaced_pod(RELEASE_NAMESPACE).items
    ready = [
        p
        for p in pods
        if any(c.type == "Ready" and c.status == "True" for c in p.status.conditions or [])
    ]
    if not ready:
        raise RuntimeError(f"no operator pod is Ready in {RELEASE_NAMESPACE}")
    pod = ready[0]
    stage.note(
        f"release {RELEASE} {release['status']} (chart {release['chart']})",
        release=RELEASE,
        status=release["status"],
        chart=release["chart"],
    )
    stage.note(
        f"operator pod {pod.metadata.name} Ready on {pod.spec.node_name}, "
        f"as ServiceAccount {pod.spec.service_account_name}",
        pod=pod.metadata.name,
        node=pod.spec.node_name,
        ready=True,
        serviceAccount=pod.spec.service_account_name,
    )


def upload_data(demo: Demo, stage: Stage) -> None:
    s3 = demo.s3.info
    s3_client = s3.client()
    s3_client.create_bucket(Bucket=BUCKET)
    with _quiet(demo.root / "work" / "build.log"):
        model = build_tiny_model(demo.root / "work" / "tiny-llama")
    size = demo_artifacts.upload_directory(s3_client, model, BUCKET, "models/tiny-llama")
    stage.note(
        f"base model s3://{BUCKET}/models/tiny-llama/ ({size / 1e6:.1f} MB)",
        uri=f"s3://{BUCKET}/models/tiny-llama/",
        bytes=size,
    )
    data = demo_artifacts.dataset()
    s3_client.put_object(Bucket=BUCKET, Key="datasets/fruits.jsonl", Body=data)
    stage.note(
        f"dataset s3://{BUCKET}/datasets/fruits.jsonl "
        f"({demo_artifacts.DATASET_RECORDS} chat records, {len(data)} bytes)",
        uri=f"s3://{BUCKET}/datasets/fruits.jsonl",
        records=demo_artifacts.DATASET_RECORDS,
    )
    client.CoreV1Api(demo.api).create_namespaced_secret(
        NAMESPACE,
        client.V1Secret(
            metadata=client.V1ObjectMeta(name=SECRET),
            string_data={
                "AWS_ACCESS_KEY_ID": s3.access_key,
                "AWS_SECRET_ACCESS_KEY": s3.secret_key,
            },
        ),
    )
    stage.note(f"Secret {NAMESPACE}/{SECRET} holds the S3 credentials", secret=SECRET)


def import_baseline(demo: Demo, stage: Stage) -> None:
    lora = {"r": 8, "alpha": 16, "targetModules": ["q_proj", "k_proj", "v_proj", "o_proj"]}
    out = demo.root / "work" / BASELINE
    with _quiet(demo.root / "work" / "build.log"):
        digest = demo_artifacts.build_baseline_adapter(
            demo.root / "work" / "tiny-llama", out, base=BASE, lora=lora
        )
    prefix = f"adapters/{FAMILY}/baseline/"
    demo_artifacts.upload_directory(demo.s3.info.client(), out, BUCKET, prefix)
    version = BASELINE.rsplit("-", 1)[1]
    adapter = {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": "Adapter",
        "metadata": {
            "name": BASELINE,
            "labels": {LABEL_ADAPTER_FAMILY: FAMILY, LABEL_ADAPTER_VERSION: version},
        },
        "spec": {
            "baseModel": BASE,
            "uri": f"s3://{BUCKET}/{prefix}",
            "digest": digest,
            "credentialsSecretRef": {"name": SECRET},
            "lora": lora,
        },
    }
    client.CustomObjectsApi(demo.api).create_namespaced_custom_object(
        GROUP, VERSION, NAMESPACE, "adapters", adapter
    )
    status = wait_for(
        lambda: phase_in(demo.status("adapters", BASELINE), "Ready"),
        what=f"Adapter {BASELINE} Ready",
        timeout=60,
    )
    stage.note(
        f"Adapter {BASELINE} Ready ({status.get('phase')}, digest {digest[:19]}…)",
        adapter=BASELINE,
        phase=status.get("phase"),
    )


def apply_examples(demo: Demo, stage: Stage) -> None:
    kubectl = demo.cluster.info.bin_dir["kubectl"]
    rendered = subprocess.run(
        [kubectl, "kustomize", "--load-restrictor", "LoadRestrictionsNone", str(OVERLAY)],
        capture_output=True,
        text=True,
        check=False,
    )
    if rendered.returncode != 0:
        raise RuntimeError(f"kubectl kustomize {OVERLAY}: {rendered.stderr.strip()}")
    for line in demo.kubectl("apply", "-f", "-", input=rendered.stdout).splitlines():
        stage.note(line, applied=line.split()[0])


@contextmanager
def _quiet(log: Path) -> Iterator[None]:
    """Progress bars and warnings of the ML libraries go to ``log``, not over the timeline."""
    log.parent.mkdir(parents=True, exist_ok=True)
    with (
        log.open("a") as out,
        redirect_stdout(out),
        redirect_stderr(out),
        warnings.catch_warnings(),
    ):
        warnings.simplefilter("ignore")
        yield


def phase_in(status: dict[str, Any], *phases: str) -> dict[str, Any] | None:
    return status if status.get("phase") in phases else None
