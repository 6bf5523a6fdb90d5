"""The operator as a process: restarts, two replicas, least-privilege credentials, metrics."""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml
from kubernetes import client

from localcluster import Cluster, S3Info
from support.factories import s3_finetunejob
from support.helm import CHART, helm, service_account_kubeconfig
from support.operator import OperatorProcess
from support.polling import eventually
from support.resources import create, fresh_namespace, phase_is, read_job, status_of
from support.trainerside import finish_training, pass_validation, running_pod

from .conftest import make_secret

NAME = "support-bot"


def _count(api: client.ApiClient, namespace: str) -> tuple[int, int]:
    jobs = client.BatchV1Api(api).list_namespaced_job(namespace).items
    adapters = client.CustomObjectsApi(api).list_namespaced_custom_object(
        "kubetune.io", "v1alpha1", namespace, "adapters"
    )["items"]
    return len(jobs), len(adapters)


def _replicas(cluster: Cluster, namespace: str, logs: Path) -> list[OperatorProcess]:
    """Two operators electing a leader in ``namespace``, as the chart runs them."""
    election = {
        "KUBETUNE_NAMESPACES": namespace,
        "KUBETUNE_LEADER_ELECTION": "true",
        "POD_NAMESPACE": namespace,
    }
    return [
        OperatorProcess(
            cluster.info.kubeconfig, logs / f"{i}.log", identity=f"replica-{i}", **election
        )
        for i in range(2)
    ]


def _lease_holder(api: client.ApiClient, namespace: str) -> str | None:
    lease = client.CoordinationV1Api(api).read_namespaced_lease("kubetune-operator", namespace)
    return lease.spec.holder_identity  # type: ignore[no-any-return]


def test_operator_killed_mid_job_resumes_without_duplicates(
    api_client: client.ApiClient,
    cluster: Cluster,
    s3: S3Info,
    bucket: str,
    own_namespace: str,
    kubetune_crds: list[str],
    tmp_path: Path,
) -> None:
    ns = own_namespace
    make_secret(api_client, ns, s3)
    first = OperatorProcess(cluster.info.kubeconfig, tmp_path / "a.log", KUBETUNE_NAMESPACES=ns)
    first.start()
    create(api_client, ns, "finetunejobs", s3_finetunejob(NAME, bucket, s3.endpoint))
    pass_validation(api_client, ns, NAME)
    eventually(lambda: phase_is(api_client, ns, NAME, "Running"), what="Running")
    before = status_of(api_client, ns, "finetunejobs", NAME)

    first.kill()
    # While no operator runs, the training finishes: the restarted one must notice.
    finish_training(api_client, s3.client(), ns, NAME)
    second = OperatorProcess(cluster.info.kubeconfig, tmp_path / "b.log", KUBETUNE_NAMESPACES=ns)
    second.start()
    try:
        after = eventually(lambda: phase_is(api_client, ns, NAME, "Succeeded"), what="Succeeded")
        eventually(
            lambda: status_of(api_client, ns, "adapters", f"{NAME}-v1").get("phase") == "Ready"
        )
        assert _count(api_client, ns) == (2, 1)  # one validation Job, one training Job, one Adapter
        assert after["startTime"] == before["startTime"]
        assert after["dataset"] == before["dataset"]
        assert after["attempts"] == 1
    finally:
        second.stop()


def test_of_two_replicas_only_the_leader_acts(
    api_client: client.ApiClient,
    cluster: Cluster,
    s3: S3Info,
    bucket: str,
    own_namespace: str,
    kubetune_crds: list[str],
    tmp_path: Path,
) -> None:
    ns = own_namespace
    make_secret(api_client, ns, s3)
    replicas = _replicas(cluster, ns, tmp_path)
    for replica in replicas:
        replica.start()
    try:
        holder = eventually(lambda: _lease_holder(api_client, ns))
        leader = next(r for r in replicas if r.identity == holder)
        standby = next(r for r in replicas if r.identity != holder)

        create(api_client, ns, "finetunejobs", s3_finetunejob(NAME, bucket, s3.endpoint))
        pass_validation(api_client, ns, NAME)
        eventually(lambda: phase_is(api_client, ns, NAME, "Running"), what="Running")
        assert 'kubetune_reconciles_total{kind="FineTuneJob",result="success"}' in leader.metrics()
        assert "kubetune_reconciles_total{" not in standby.metrics()

        leader.kill()
        eventually(
            lambda: _lease_holder(api_client, ns) == standby.identity,
            timeout=60,
            what="the standby takes over the lease",
        )
        finish_training(api_client, s3.client(), ns, NAME)
        eventually(lambda: phase_is(api_client, ns, NAME, "Succeeded"), what="Succeeded")
        eventually(
            lambda: 'kubetune_finetunejobs{phase="Succeeded"} 1.0' in standby.metrics(),
            what="the new leader's phase gauge",
        )
        eventually(lambda: _count(api_client, ns) == (2, 1), what="one Adapter")
    finally:
        for replica in replicas:
            replica.stop()


def test_sigterm_stops_the_leader_at_once_and_hands_the_lease_over(
    api_client: client.ApiClient, cluster: Cluster, own_namespace: str, tmp_path: Path
) -> None:
    """A rolling update or drain sends SIGTERM and SIGKILLs after the pod's grace period: the
    leader must have exited by then, cleanly, and left the lease to the standby."""
    ns = own_namespace
    grace = yaml.safe_load((CHART / "values.yaml").read_text())["terminationGracePeriodSeconds"]
    replicas = _replicas(cluster, ns, tmp_path)
    try:
        for replica in replicas:
            replica.start()
        holder = eventually(lambda: _lease_holder(api_client, ns), what="a lease holder")
        leader = next(r for r in replicas if r.identity == holder)
        standby = next(r for r in replicas if r is not leader)
        assert leader.proc is not None
        leader.proc.terminate()
        assert leader.proc.wait(timeout=grace) == 0, leader.tail()
        assert "Signal SIGTERM is received" in leader.tail()
        # released, not left to expire
        assert _lease_holder(api_client, ns) in ("", None, standby.identity)
        eventually(
            lambda: _lease_holder(api_client, ns) == standby.identity,
            what="the standby takes the lease",
        )
    finally:
        for replica in replicas:
            replica.stop()


@pytest.fixture
def release_namespace(api_client: client.ApiClient) -> Iterator[str]:
    with fresh_namespace(api_client, "rel") as name:
        yield name


def test_the_charts_service_account_is_enough_for_the_whole_lifecycle(
    api_client: client.ApiClient,
    cluster: Cluster,
    s3: S3Info,
    bucket: str,
    own_namespace: str,
    release_namespace: str,
    kubetune_crds: list[str],
    tmp_path: Path,
) -> None:
    """The RBAC the chart grants is sufficient: the operator runs with nothing else."""
    ns, release = own_namespace, f"r{secrets.token_hex(3)}"
    kubeconfig = str(cluster.info.kubeconfig)
    helm(
        "install",
        release,
        str(CHART),
        "--namespace",
        release_namespace,
        "--kubeconfig",
        kubeconfig,
        "--set",
        "crds.enabled=false",
        "--set",
        "watchNamespaces={" + ns + "}",
    )
    try:
        token_config = service_account_kubeconfig(
            api_client,
            cluster.info,
            release_namespace,
            f"{release}-kubetune",
            tmp_path / "sa.kubeconfig",
        )
        make_secret(api_client, ns, s3)
        operator = OperatorProcess(
            token_config,
            tmp_path / "op.log",
            KUBETUNE_NAMESPACES=ns,
            KUBETUNE_LEADER_ELECTION="true",
            POD_NAMESPACE=release_namespace,
        )
        operator.start()
        try:
            create(api_client, ns, "finetunejobs", s3_finetunejob(NAME, bucket, s3.endpoint))
            pass_validation(api_client, ns, NAME)
            eventually(lambda: phase_is(api_client, ns, NAME, "Running"), what="Running")
            running_pod(api_client, ns, f"{NAME}-train")
            assert read_job(api_client, ns, f"{NAME}-train").metadata.owner_references
            finish_training(api_client, s3.client(), ns, NAME)
            eventually(lambda: phase_is(api_client, ns, NAME, "Succeeded"), what="Succeeded")
            eventually(
                lambda: status_of(api_client, ns, "adapters", f"{NAME}-v1").get("phase") == "Ready",
                what="Adapter Ready",
            )
            assert "Forbidden" not in operator.log.read_text(), operator.tail()
        finally:
            operator.stop()
    finally:
        helm("uninstall", release, "--namespace", release_namespace, "--kubeconfig", kubeconfig)
