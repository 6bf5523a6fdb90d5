"""S3 goes away while a real run checkpoints and while it uploads its adapter.

The S3 gate stops the world at the exact request (the first upload of a checkpoint, the
first file of the adapter); the test then stops the S3 server (a private one: the session's
is never stopped) and keeps it down. With the trainer's default deadline (300 s per
operation) a 60 s outage while checkpointing and another while uploading cost nothing:
the same pod retries, the run succeeds and the Adapter verifies. With the deadline set short
(the operator's KUBETUNE_TRAINER_S3_RETRY_SECONDS), an outage past it fails the run with
S3Unavailable and leaves no manifest, so no Adapter can ever point at a partial artifact.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from kubernetes import client

from localcluster import Cluster, S3Server
from support.agent import Agent
from support.polling import eventually
from support.realrun import TRAINING, Run, finetunejob, operator_for, upload_inputs
from support.resources import conditions, make_secret
from support.s3gate import S3Gate

from .conftest import gate_in_front_of

CHECKPOINT_OUTAGE = 60.0
"""Seconds S3 stays down while the run checkpoints: a server restart, with room to spare."""
UPLOAD_OUTAGE = 60.0
"""Seconds S3 stays down while the run uploads its adapter, the step where a lost write
would corrupt the artifact."""
SHORT_DEADLINE = 5


def outage(server: S3Server, gate: S3Gate, seconds: float, seen: Callable[[], bool]) -> None:
    """Stop S3 at the request the gate holds, keep it down ``seconds`` and until ``seen()``
    (the client noticed), then start it again on the same port with the same data."""
    eventually(gate.tripped.is_set, timeout=300, interval=0.2, what="the gate to trip")
    server.stop()
    down_since = time.monotonic()
    gate.release()
    try:
        eventually(
            lambda: time.monotonic() - down_since >= seconds and seen(),
            timeout=seconds + 60,
            interval=0.5,
            what=f"an S3 outage of {seconds:.0f}s that the trainer noticed",
        )
    finally:
        server.start()


def retried(run: Run, fragment: str) -> Callable[[], bool]:
    """The trainer logged a retry of an operation on a key containing ``fragment``."""
    return lambda: any(
        fragment in line and "retrying in" in line for line in run.trainer_log().splitlines()
    )


def test_s3_outages_while_checkpointing_and_uploading_cost_nothing(
    api_client: client.ApiClient,
    cluster: Cluster,
    private_s3: S3Server,
    private_bucket: str,
    agent: Agent,
    tiny_model: Path,
    run_namespace: str,
    kubetune_crds: list[str],
    tmp_path: Path,
) -> None:
    ns, s3, name = run_namespace, private_s3.info, "outage-bot"
    gate = gate_in_front_of(s3)
    upload_inputs(s3, private_bucket, tiny_model)
    make_secret(api_client, ns, s3)
    run = Run(api_client, ns, name, agent)
    operator = operator_for(agent, cluster.info.kubeconfig, tmp_path / "operator.log", ns)
    operator.start()
    try:
        gate.arm(rb"PUT /[^ ]*/checkpoints/step-000006/")
        run.start(finetunejob(name, private_bucket, gate.endpoint, agent))
        outage(private_s3, gate, CHECKPOINT_OUTAGE, retried(run, "checkpoints/step-000006/"))
        gate.arm(rb"PUT /[^ ]*/adapter/")
        outage(private_s3, gate, UPLOAD_OUTAGE, retried(run, "/adapter/"))
        upload_back = time.time()

        status = eventually(lambda: run.phase("Succeeded"), timeout=300, what="Succeeded")
        adapter = eventually(
            lambda: (a := run.adapter()).get("status", {}).get("phase") == "Ready" and a,
            what="Adapter Ready",
        )
    finally:
        operator.stop()
        gate.close()

    assert status["attempts"] == 1  # the same pod rode out both outages
    assert len(run.training_pods()) == 1
    assert adapter["status"]["verifiedDigest"] == adapter["spec"]["digest"]
    objects = _objects(s3.client(), private_bucket)
    prefix = adapter["spec"]["uri"].removeprefix(f"s3://{private_bucket}/")
    manifest = s3.client().get_object(Bucket=private_bucket, Key=prefix + "manifest.json")
    assert (
        "sha256:" + hashlib.sha256(manifest["Body"].read()).hexdigest() == adapter["spec"]["digest"]
    )
    # What the outages interrupted was finished by the same pod once S3 was back.
    log = run.trainer_log()
    assert log.index("checkpoints/step-000006/") < log.index("checkpoint at step 6 saved")
    assert objects[prefix + "manifest.json"]["LastModified"].timestamp() >= upload_back - 1
    assert status["checkpointUri"].endswith("/checkpoints/step-000012/")


def test_s3_down_past_the_deadline_fails_with_s3_unavailable_and_no_manifest(
    api_client: client.ApiClient,
    cluster: Cluster,
    private_s3: S3Server,
    private_bucket: str,
    agent: Agent,
    tiny_model: Path,
    run_namespace: str,
    kubetune_crds: list[str],
    tmp_path: Path,
) -> None:
    ns, s3, name = run_namespace, private_s3.info, "doomed-bot"
    gate = gate_in_front_of(s3)
    upload_inputs(s3, private_bucket, tiny_model)
    make_secret(api_client, ns, s3)
    run = Run(api_client, ns, name, agent)
    operator = operator_for(agent, cluster.info.kubeconfig, tmp_path / "operator.log", ns)
    operator.env["KUBETUNE_TRAINER_S3_RETRY_SECONDS"] = str(SHORT_DEADLINE)
    operator.start()
    try:
        gate.arm(rb"PUT /[^ ]*/adapter/")
        training = {**TRAINING, "maxSteps": 3}  # just enough to reach the upload
        run.start(
            finetunejob(
                name, private_bucket, gate.endpoint, agent, training=training, backoffLimit=0
            )
        )
        eventually(gate.tripped.is_set, timeout=300, interval=0.2, what="the adapter upload")
        private_s3.stop()
        gate.release()
        try:
            status = eventually(lambda: run.phase("Failed"), timeout=120, what="Failed")
        finally:
            private_s3.start()
    finally:
        operator.stop()
        gate.close()

    assert _adapters(api_client, ns) == []
    failed = conditions(status)["Failed"]
    assert failed["reason"] == "S3Unavailable", failed
    assert "KUBETUNE_S3_RETRY_SECONDS" in failed["message"]
    assert "/adapter/" in failed["message"]
    run_prefix = f"adapters/{name}/"
    keys = _objects(s3.client(), private_bucket, run_prefix)
    assert not [k for k in keys if k.endswith("manifest.json")], sorted(keys)
    assert any("/checkpoints/" in k for k in keys)  # what the run had done is kept


def _adapters(api: client.ApiClient, ns: str) -> list[dict[str, Any]]:
    return client.CustomObjectsApi(api).list_namespaced_custom_object(
        "kubetune.io", "v1alpha1", ns, "adapters"
    )["items"]


def _objects(s3_client: Any, bucket: str, prefix: str = "") -> dict[str, dict[str, Any]]:
    pages = s3_client.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix)
    return {o["Key"]: o for page in pages for o in page.get("Contents", [])}
