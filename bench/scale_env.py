"""The scale benchmark's world: a local cluster with an audit log, MinIO, the chart's RBAC.

The operator runs as the chart's ServiceAccount (a bound token, the Role the chart renders
for a watched namespace), so the apiserver's audit log attributes every request it makes to
one user and the count per job is exact. The Job controller runs as its own ServiceAccount
(the controller-manager uses per-controller credentials), which gives the baseline's count.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from kubernetes import client, config

from localcluster import Cluster, S3Info, S3Server
from localcluster.nodes import NodePool
from support.helm import render, service_account_kubeconfig
from support.polling import eventually

CRDS = Path(__file__).resolve().parents[1] / "crds"
RELEASE_NAMESPACE = "kt-system"
OURS_NAMESPACE = "bench-ftj"
BASELINE_NAMESPACE = "bench-jobs"
JOB_CONTROLLER = "system:serviceaccount:kube-system:job-controller"
GPUS_PER_NODE = 8
RBAC_KINDS = {"ServiceAccount", "Role", "RoleBinding", "ClusterRole", "ClusterRoleBinding"}


def audit_policy(users: list[str]) -> str:
    """Metadata for the users we count (no bodies: small and cheap), nothing else."""
    return yaml.safe_dump(
        {
            "apiVersion": "audit.k8s.io/v1",
            "kind": "Policy",
            "omitStages": ["RequestReceived"],
            "rules": [{"level": "Metadata", "users": users}, {"level": "None"}],
        }
    )


@dataclass
class World:
    cluster: Cluster
    s3_server: S3Server
    api: client.ApiClient
    audit_log: Path
    operator_user: str
    operator_kubeconfig: Path

    @property
    def s3(self) -> S3Info:
        return self.s3_server.info

    def down(self) -> None:
        self.s3_server.down()
        self.cluster.down()


def _chart_rbac() -> tuple[list[dict[str, Any]], str]:
    """The chart's ServiceAccount and RBAC for a release watching the benchmark namespace."""
    objects = [
        o
        for o in render(f"--set=watchNamespaces={{{OURS_NAMESPACE}}}", "--set=crds.enabled=false")
        if o["kind"] in RBAC_KINDS
    ]
    account = next(o for o in objects if o["kind"] == "ServiceAccount")["metadata"]["name"]
    return objects, account


def start_world(root: Path, jobs: int, controller_qps: int) -> World:
    """Cluster (GPU nodes for every training pod), MinIO, CRDs, namespaces, the operator's
    identity; everything torn down again if any step fails."""
    rbac, account = _chart_rbac()
    operator_user = f"system:serviceaccount:{RELEASE_NAMESPACE}:{account}"
    audit_log = root / "audit.log"
    policy = root / "audit-policy.yaml"
    root.mkdir(parents=True, exist_ok=True)
    policy.write_text(audit_policy([operator_user, JOB_CONTROLLER]))
    nodes = math.ceil(jobs / GPUS_PER_NODE) + 1
    cluster = Cluster(
        root / "cluster",
        pools=(NodePool("gpu", count=nodes, cpu="96", memory="2Ti", gpus=GPUS_PER_NODE),),
        apiserver_args=(
            f"--audit-policy-file={policy}",
            f"--audit-log-path={audit_log}",
            "--audit-log-format=json",
            # The default rotates at 100 MB, and the counts read one file: 3,000 jobs write more.
            "--audit-log-maxsize=100000",
        ),
        controller_manager_args=(
            f"--kube-api-qps={controller_qps}",
            f"--kube-api-burst={2 * controller_qps}",
        ),
    )
    s3_server = S3Server(root / "s3")
    try:
        cluster.up()
        s3_server.up()
        api = config.new_client_from_config(config_file=str(cluster.info.kubeconfig))
        _install(cluster, api, rbac)
        kubeconfig = service_account_kubeconfig(
            api,
            cluster.info,
            RELEASE_NAMESPACE,
            account,
            root / "operator.kubeconfig",
            seconds=4 * 3600,
        )
    except BaseException:
        s3_server.down()
        cluster.down()
        raise
    return World(cluster, s3_server, api, audit_log, operator_user, kubeconfig)


def _install(cluster: Cluster, api: client.ApiClient, rbac: list[dict[str, Any]]) -> None:
    core = client.CoreV1Api(api)
    for name in (RELEASE_NAMESPACE, OURS_NAMESPACE, BASELINE_NAMESPACE):
        core.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name=name)))
        eventually(lambda name=name: core.read_namespaced_service_account("default", name))
    crds = [str(p) for p in sorted(CRDS.glob("*.kubetune.io.yaml"))]
    cluster.kubectl("apply", "--server-side", *(f"-f={p}" for p in crds))
    cluster.kubectl("wait", "--for=condition=Established", "crd", "--all", "--timeout=60s")
    cluster.kubectl("apply", "-f", "-", input=yaml.safe_dump_all(rbac))
