"""A FineTuneJob trained for real by the node agent, for e2e tests that disturb it.

Small on purpose: a tiny Llama, LoRA in fp32, a few dozen fruit records and a checkpoint
every few steps, so a whole run takes well under a minute on two cores while still passing
through validation, training, checkpoints, the artifact upload and Adapter verification.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from kubernetes import client

from localcluster import S3Info
from support.agent import TAINT_KEY, Agent
from support.factories import s3_finetunejob
from support.fruits import fruit_records, jsonl
from support.operator import OperatorProcess
from support.polling import HopelessError
from support.resources import conditions, create, get, status_of

BASE_MODEL = "tests/tiny-llama"
"""The name the real runs' base model goes by (the artifact's manifest names it)."""
TRAINING = {
    "maxSteps": 12,
    "saveSteps": 3,
    "learningRate": 5e-3,
    "batchSize": 4,
    "maxSeqLength": 48,
    "packing": True,
    "loggingSteps": 1,
    "precision": "fp32",
    "seed": 7,
}


def upload_inputs(s3: S3Info, bucket: str, model: Path) -> None:
    """The tiny model and the fruit data, where :func:`finetunejob` reads them."""
    s3_client = s3.client()
    for path in model.iterdir():
        s3_client.upload_file(str(path), bucket, f"models/tiny/{path.name}")
    s3_client.put_object(Bucket=bucket, Key="data/train.jsonl", Body=jsonl(fruit_records(40)))


def finetunejob(
    name: str,
    bucket: str,
    endpoint: str,
    agent: Agent,
    *,
    validation_split: float = 0.0,
    **spec: Any,
) -> dict[str, Any]:
    """A small real run on the agent's node, of the inputs :func:`upload_inputs` wrote;
    ``spec`` overrides fields."""
    fields: dict[str, Any] = {
        "method": "lora",
        "lora": {"r": 8, "alpha": 16, "dropout": 0.0},
        "training": dict(TRAINING),
        "resources": {"gpus": 1, **on_agent(agent)},
        **spec,
    }
    return s3_finetunejob(
        name,
        bucket,
        endpoint,
        adapter=name,
        base_model=BASE_MODEL,
        validation_split=validation_split,
        **fields,
    )


def on_agent(agent: Agent) -> dict[str, Any]:
    """Node selector and toleration that place a pod on the agent's node."""
    return {
        "nodeSelector": {"kubernetes.io/hostname": agent.node},
        "tolerations": [{"key": TAINT_KEY, "operator": "Exists"}],
    }


def operator_for(agent: Agent, kubeconfig: Path, log: Path, namespace: str) -> OperatorProcess:
    """An operator watching ``namespace`` that places validation pods on the agent too."""
    return OperatorProcess(
        kubeconfig,
        log,
        KUBETUNE_NAMESPACES=namespace,
        KUBETUNE_VALIDATION_NODE_SELECTOR=json.dumps(on_agent(agent)["nodeSelector"]),
        KUBETUNE_VALIDATION_TOLERATIONS=json.dumps(on_agent(agent)["tolerations"]),
    )


@dataclass
class Run:
    """One FineTuneJob and what it left behind: status, pods, trainer logs, S3 objects."""

    api: client.ApiClient
    namespace: str
    name: str
    agent: Agent

    def start(self, body: dict[str, Any]) -> None:
        create(self.api, self.namespace, "finetunejobs", body)

    def status(self) -> dict[str, Any]:
        return status_of(self.api, self.namespace, "finetunejobs", self.name)

    def phase(self, phase: str) -> dict[str, Any] | None:
        """The status once the run is in ``phase``; fails at once on an unexpected Failed."""
        status = self.status()
        if status.get("phase") == "Failed" and phase != "Failed":
            raise HopelessError(f"the run failed: {conditions(status).get('Failed')}")
        return status if status.get("phase") == phase else None

    def adapter(self) -> dict[str, Any]:
        return get(self.api, self.namespace, "adapters", f"{self.name}-v1")

    def training_pods(self) -> list[client.V1Pod]:
        return (
            client.CoreV1Api(self.api)
            .list_namespaced_pod(self.namespace, label_selector=f"job-name={self.name}-train")
            .items
        )

    def running_training_pod(self) -> client.V1Pod | None:
        return next(
            (
                p
                for p in self.training_pods()
                if p.status.phase == "Running" and not p.metadata.deletion_timestamp
            ),
            None,
        )

    def trainer_log(self) -> str:
        """Every training pod's trainer output, oldest pod first."""
        logs = sorted(
            self.agent.root.glob(f"pods/{self.namespace}_{self.name}-train-*/trainer/*.log"),
            key=lambda p: p.stat().st_mtime,
        )
        return "\n".join(p.read_text(errors="replace") for p in logs)
