"""A training pod preempted mid-run: the next pod resumes from the last checkpoint.

The trainer really trains (node agent, tiny model). The S3 gate holds its second checkpoint
upload, so the pod is provably mid-training with one complete checkpoint in S3 when it is
evicted (as the scheduler's preemption and a node drain evict: a DisruptionTarget
condition, then a graceful delete). The Job has backoffLimit 0: a preemption must not count
as a failure. The next pod must resume from the checkpoint (its progress never falls back
to step 0), the FineTuneJob must count two attempts and record the checkpoint, and the
final Adapter must verify.
"""

from __future__ import annotations

import json
from pathlib import Path

from kubernetes import client

from localcluster import Cluster, S3Info
from support.agent import Agent
from support.polling import eventually
from support.realrun import Run, finetunejob, operator_for, upload_inputs
from support.resources import conditions, make_secret

from .conftest import gate_in_front_of

NAME = "preempted-bot"


def test_a_preempted_pod_resumes_from_the_last_checkpoint(
    api_client: client.ApiClient,
    cluster: Cluster,
    s3: S3Info,
    bucket: str,
    agent: Agent,
    tiny_model: Path,
    run_namespace: str,
    kubetune_crds: list[str],
    tmp_path: Path,
) -> None:
    ns, core = run_namespace, client.CoreV1Api(api_client)
    gate = gate_in_front_of(s3)
    upload_inputs(s3, bucket, tiny_model)
    make_secret(api_client, ns, s3)
    run = Run(api_client, ns, NAME, agent)
    operator = operator_for(agent, cluster.info.kubeconfig, tmp_path / "operator.log", ns)
    operator.start()
    try:
        gate.arm(rb"PUT /[^ ]*/checkpoints/step-000006/")
        run.start(finetunejob(NAME, bucket, gate.endpoint, agent, backoffLimit=0))
        eventually(gate.tripped.is_set, timeout=300, interval=0.5, what="the 2nd checkpoint")
        first = eventually(run.running_training_pod, what="the training pod")
        assert _complete_steps(s3, bucket) == [3]

        core.create_namespaced_pod_eviction(
            first.metadata.name,
            ns,
            client.V1Eviction(metadata=client.V1ObjectMeta(name=first.metadata.name, namespace=ns)),
        )
        agent_log = agent.root / "agent.log"
        eventually(
            lambda: f"stopping {ns}/{first.metadata.name}" in agent_log.read_text(),
            what="the agent stopping the evicted pod",
        )
        gate.release()  # the held upload fails; the trainer is already stopping

        second = eventually(
            lambda: (
                (p := run.running_training_pod()) and p.metadata.uid != first.metadata.uid and p
            ),
            timeout=120,
            what="a second training pod",
        )
        steps: list[int] = []

        def succeeded() -> dict | None:
            progress = run.status().get("progress") or {}
            if "step" in progress:
                steps.append(progress["step"])
            return run.phase("Succeeded")

        status = eventually(succeeded, timeout=300, interval=0.1, what="Succeeded")
        adapter = eventually(
            lambda: (a := run.adapter()).get("status", {}).get("phase") == "Ready" and a,
            what="Adapter Ready",
        )
    finally:
        operator.stop()
        gate.close()

    summary = _termination_summary(core, ns, second.metadata.name)
    resumed = summary["resumedFromStep"]
    assert resumed in (3, 6), summary  # 6 if the held upload went through on a retry
    assert summary["step"] == 12
    # From the moment the second pod ran, progress never fell back below the checkpoint.
    assert steps
    assert min(steps) >= resumed, steps
    assert steps[-1] == 12

    assert status["attempts"] == 2
    assert status["checkpointUri"].endswith("/checkpoints/step-000012/")
    assert conditions(status)["Succeeded"]["reason"] == "Completed"
    assert adapter["status"]["verifiedDigest"] == adapter["spec"]["digest"]
    assert adapter["spec"]["digest"] == summary["manifestDigest"]
    pods = run.training_pods()
    assert [p.metadata.uid for p in pods] == [second.metadata.uid]  # the evicted one is gone
    events = core.list_namespaced_event(
        ns, field_selector=f"involvedObject.name={NAME},reason=Preempted"
    ).items
    assert len(events) == 1


def _complete_steps(s3: S3Info, bucket: str) -> list[int]:
    pages = s3.client().get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix="adapters/")
    keys = [o["Key"] for page in pages for o in page.get("Contents", [])]
    return sorted(
        int(k.split("/")[-2].removeprefix("step-")) for k in keys if k.endswith("/COMPLETE")
    )


def _termination_summary(core: client.CoreV1Api, ns: str, pod: str) -> dict:
    status = core.read_namespaced_pod(pod, ns).status.container_statuses[0]
    return json.loads(status.state.terminated.message)
