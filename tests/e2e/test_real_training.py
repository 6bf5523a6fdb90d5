"""A FineTuneJob trained for real, end to end, on CPU.

The operator schedules the validation pod and the training pod onto the node agent's node,
which runs the real ``kubetune-train`` (4-bit QLoRA on a tiny Llama) as local processes;
the trainer reads the model and the data from S3, publishes the adapter and its manifest,
and the operator turns the result into a verified Adapter. Nothing is simulated.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from kubernetes import client

from localcluster import Cluster, S3Info
from support.agent import Agent
from support.polling import eventually
from support.realrun import Run, finetunejob, operator_for, upload_inputs
from support.resources import conditions, get, make_secret, status_of

NAME = "fruit-bot"


def _finetunejob(bucket: str, s3: S3Info, agent: Agent) -> dict[str, Any]:
    return finetunejob(
        NAME,
        bucket,
        s3.endpoint,
        agent,
        validation_split=0.2,
        method="qlora",
        quantization={"bits": 4, "type": "nf4", "doubleQuant": True, "computeDtype": "float32"},
        training={
            "maxSteps": 20,
            "learningRate": 5e-3,
            "batchSize": 8,
            "maxSeqLength": 64,
            "packing": True,
            "evalSteps": 10,
            "seed": 42,
        },
    )


def test_a_real_qlora_run_from_apply_to_a_verified_adapter(
    api_client: client.ApiClient,
    cluster: Cluster,
    s3: S3Info,
    bucket: str,
    agent: Agent,
    run_namespace: str,
    tiny_model: Path,
    kubetune_crds: list[str],
    tmp_path: Path,
) -> None:
    ns = run_namespace
    upload_inputs(s3, bucket, tiny_model)
    make_secret(api_client, ns, s3)
    operator = operator_for(agent, cluster.info.kubeconfig, tmp_path / "operator.log", ns)
    operator.start()
    try:
        run = Run(api_client, ns, NAME, agent)
        run.start(_finetunejob(bucket, s3, agent))
        status = eventually(
            lambda: run.phase("Succeeded"),
            timeout=600,
            interval=2,
            what="the run to succeed",
        )
        assert status["dataset"]["records"] > 0
        assert status["trainedTokens"] > 0
        assert conditions(status)["Validated"]["reason"] == "DatasetValid"
        adapter = eventually(
            lambda: (
                (s := status_of(api_client, ns, "adapters", f"{NAME}-v1")).get("phase") == "Ready"
                and s
            ),
            what="Adapter Ready",
        )
        assert adapter["files"] >= 2
        assert adapter["sizeBytes"] > 0
        spec = get(api_client, ns, "adapters", f"{NAME}-v1")["spec"]
        assert spec["metrics"]["evalLoss"] > 0
        assert spec["source"]["dataset"]["sha256"] == status["dataset"]["sha256"]
    finally:
        operator.stop()
