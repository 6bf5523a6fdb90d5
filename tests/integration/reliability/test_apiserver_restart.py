"""kube-apiserver restarted while a FineTuneJob trains: the operator's watches recover.

On a control plane of the module's own (the session's apiserver is never restarted), the
operator runs a FineTuneJob to Running; the apiserver is then restarted (and while it is
down the trainer's side of the run goes on: it publishes its artifact to S3). Afterwards
every trigger must still reach the operator through its watches, not through a restart of
its own: the progress timer, the training Job's completion, the new Adapter, and a
FineTuneJob created after the restart. Nothing may exist twice.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

from kubernetes import client

from kubetune import artifacts
from kubetune.api import FineTuneJob
from localcluster import Cluster, S3Info
from support.factories import s3_finetunejob
from support.operator import OperatorProcess
from support.polling import eventually
from support.resources import create, get, make_secret, new_namespace, phase_is, status_of
from support.trainerside import (
    finish_pod,
    pass_validation,
    publish_artifact,
    running_pod,
    write_progress,
)

from .conftest import install_crds

NAME = "steady-bot"


def test_the_operator_rides_out_an_apiserver_restart_mid_run(
    private_cluster: Cluster,
    private_api: client.ApiClient,
    s3: S3Info,
    bucket: str,
    tmp_path: Path,
) -> None:
    api, s3_client = private_api, s3.client()
    install_crds(api)
    ns = new_namespace(api, "rel")
    make_secret(api, ns, s3)
    operator = OperatorProcess(
        private_cluster.info.kubeconfig, tmp_path / "operator.log", KUBETUNE_NAMESPACES=ns
    )
    operator.start()
    try:
        create(api, ns, "finetunejobs", s3_finetunejob(NAME, bucket, s3.endpoint, adapter=NAME))
        pass_validation(api, ns, NAME)
        eventually(lambda: phase_is(api, ns, NAME, "Running"), what="Running")
        job = FineTuneJob.model_validate(get(api, ns, "finetunejobs", NAME))
        output, run = job.spec.output.uri, artifacts.run_id(job.spec)
        pod = running_pod(api, ns, f"{NAME}-train")
        write_progress(s3_client, output, run, step=5, totalSteps=20)
        eventually(lambda: _progress(api, ns) == 5, what="progress before the restart")

        private_cluster.stop("kube-apiserver")
        # The trainer's side goes on while the apiserver is away.
        uri, digest = publish_artifact(s3_client, output, run, {"adapter.bin": b"\x01" * 64})
        write_progress(s3_client, output, run, step=20, totalSteps=20)
        private_cluster.start("kube-apiserver")

        eventually(lambda: _progress(api, ns) == 20, what="progress after the restart")
        finish_pod(api, pod, 0, {"phase": "Succeeded", "reason": "Completed", "message": ""})
        eventually(lambda: phase_is(api, ns, NAME, "Succeeded"), timeout=90, what="Succeeded")
        adapter = eventually(
            lambda: (
                (s := status_of(api, ns, "adapters", f"{NAME}-v1")).get("phase") == "Ready" and s
            ),
            what="Adapter Ready",
        )
        later = s3_finetunejob("later-bot", bucket, s3.endpoint, adapter="later-bot")
        create(api, ns, "finetunejobs", later)
        eventually(lambda: phase_is(api, ns, "later-bot", "Validating"), what="a new run seen")
        assert operator.proc is not None
        assert operator.proc.poll() is None, operator.tail()  # it recovered, not restarted
        status = status_of(api, ns, "finetunejobs", NAME)
    finally:
        operator.stop()

    assert status["artifactUri"] == uri
    assert status["attempts"] == 1
    assert adapter["verifiedDigest"] == digest
    manifest = s3_client.get_object(
        Bucket=bucket, Key=uri.removeprefix(f"s3://{bucket}/") + "manifest.json"
    )["Body"].read()
    assert "sha256:" + hashlib.sha256(manifest).hexdigest() == digest
    jobs = client.BatchV1Api(api).list_namespaced_job(ns).items
    names = sorted(j.metadata.name for j in jobs)
    assert names == ["later-bot-validate", f"{NAME}-train", f"{NAME}-validate"]
    adapters = client.CustomObjectsApi(api).list_namespaced_custom_object(
        "kubetune.io", "v1alpha1", ns, "adapters"
    )["items"]
    assert len(adapters) == 1


def _progress(api: client.ApiClient, ns: str) -> int | None:
    return (status_of(api, ns, "finetunejobs", NAME).get("progress") or {}).get("step")
