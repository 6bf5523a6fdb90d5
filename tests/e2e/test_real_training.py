"""A FineTuneJob trained for real, end to end, on CPU.

The operator schedules the validation pod and the training pod onto the node agent's node,
which runs the real ``kubetune-train`` (4-bit QLoRA on a tiny Llama) as local processes;
the trainer reads the model and the data from S3, publishes the adapter and its manifest,
and the operator turns the result into a verified Adapter. Nothing is simulated.
"""

from __future__ import annotations

import json
import secrets
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client

from localcluster import Cluster, S3Info, processes
from support.agent import TAINT_KEY, Agent, node_ready, start_agent
from support.fruits import fruit_records, jsonl
from support.operator import OperatorProcess
from support.polling import eventually
from support.resources import conditions, create, get, make_secret, phase_is, status_of
from support.tinymodel import build_tiny_model

NAME = "fruit-bot"


@pytest.fixture(scope="module")
def agent(
    cluster: Cluster, api_client: client.ApiClient, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Agent]:
    root = tmp_path_factory.mktemp("agent")
    running = start_agent(cluster, root, f"local-agent-e{secrets.token_hex(3)}", HF_HUB_OFFLINE="1")
    try:
        eventually(
            lambda: node_ready(client.CoreV1Api(api_client), running.node), what="agent node"
        )
        yield running
    finally:
        processes.stop(running.pid, running.started)
        client.CoreV1Api(api_client).delete_node(running.node)


@pytest.fixture
def own_namespace(api_client: client.ApiClient) -> Iterator[str]:
    core = client.CoreV1Api(api_client)
    name = f"e2e-{secrets.token_hex(4)}"
    core.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name=name)))
    eventually(lambda: core.read_namespaced_service_account("default", name))
    yield name
    core.delete_namespace(name)


def _upload(s3: S3Info, bucket: str, model: Path) -> None:
    s3_client = s3.client()
    for path in model.iterdir():
        s3_client.upload_file(str(path), bucket, f"models/tiny/{path.name}")
    s3_client.put_object(Bucket=bucket, Key="data/train.jsonl", Body=jsonl(fruit_records(64)))


def _finetunejob(bucket: str, s3: S3Info, agent: Agent) -> dict[str, Any]:
    access = {"endpoint": s3.endpoint, "credentialsSecretRef": {"name": "s3-creds"}}
    return {
        "apiVersion": "kubetune.io/v1alpha1",
        "kind": "FineTuneJob",
        "metadata": {"name": NAME},
        "spec": {
            "baseModel": {
                "name": "tests/tiny-llama",
                "uri": f"s3://{bucket}/models/tiny",
                **access,
            },
            "dataset": {"uri": f"s3://{bucket}/data/train.jsonl", "validationSplit": 0.2, **access},
            "method": "qlora",
            "quantization": {
                "bits": 4,
                "type": "nf4",
                "doubleQuant": True,
                "computeDtype": "float32",
            },
            "lora": {"r": 8, "alpha": 16, "dropout": 0.0},
            "training": {
                "maxSteps": 20,
                "learningRate": 5e-3,
                "batchSize": 8,
                "maxSeqLength": 64,
                "packing": True,
                "evalSteps": 10,
                "seed": 42,
            },
            "resources": {
                "gpus": 1,
                "nodeSelector": {"kubernetes.io/hostname": agent.node},
                "tolerations": [{"key": TAINT_KEY, "operator": "Exists"}],
            },
            "output": {"uri": f"s3://{bucket}/adapters/{NAME}/", **access},
            "adapter": {"name": NAME, "version": "v1"},
        },
    }


def test_a_real_qlora_run_from_apply_to_a_verified_adapter(
    api_client: client.ApiClient,
    cluster: Cluster,
    s3: S3Info,
    bucket: str,
    agent: Agent,
    own_namespace: str,
    kubetune_crds: list[str],
    tmp_path: Path,
) -> None:
    ns = own_namespace
    _upload(s3, bucket, build_tiny_model(tmp_path / "model"))
    make_secret(api_client, ns, s3)
    placement = {"kubernetes.io/hostname": agent.node}
    toleration = [{"key": TAINT_KEY, "operator": "Exists"}]
    operator = OperatorProcess(
        cluster.info.kubeconfig,
        tmp_path / "operator.log",
        KUBETUNE_NAMESPACES=ns,
        KUBETUNE_VALIDATION_NODE_SELECTOR=json.dumps(placement),
        KUBETUNE_VALIDATION_TOLERATIONS=json.dumps(toleration),
    ).start()
    try:
        create(api_client, ns, "finetunejobs", _finetunejob(bucket, s3, agent))
        status = eventually(
            lambda: phase_is(api_client, ns, NAME, "Succeeded") or _stop_on_failure(api_client, ns),
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


def _stop_on_failure(api: client.ApiClient, namespace: str) -> None:
    failed = phase_is(api, namespace, NAME, "Failed")
    assert failed is None, conditions(failed)["Failed"]
