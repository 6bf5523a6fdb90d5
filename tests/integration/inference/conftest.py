"""InferenceDeployments on the real control plane, with the real operator and real S3.

The operator here watches its own namespaces (``kti-*``) with a fast rollout tick, so these
scenarios never share objects with the FineTuneJob suite's operator (``kt-*``). Adapters are
real artifacts in MinIO that the operator verifies before they count as Ready; serving pods
run on kwok's simulated nodes unless a test starts real servers itself.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml
from kubernetes import client

from localcluster import Cluster, S3Info
from support.operator import OperatorProcess
from support.polling import eventually
from support.resources import create, fresh_namespace, get, make_secret, status_of
from support.trainerside import publish_artifact

FAKE_BASE = "kubetune/tiny-llama"
"""The base model publish_artifact's manifests name."""
SECRET = "s3-creds"
ACTION = "kubetune.io/rollout-action"


@pytest.fixture(scope="session")
def rollout_operator(
    cluster: Cluster, kubetune_crds: list[str], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[OperatorProcess]:
    """The operator of these scenarios: namespaces kti-*, a rollout check every 0.5 s."""
    log = tmp_path_factory.mktemp("rollout-operator") / "operator.log"
    process = OperatorProcess(
        cluster.info.kubeconfig,
        log,
        identity="rollout",
        KUBETUNE_NAMESPACES="kti-*",
        KUBETUNE_ROLLOUT_TICK="0.5",
    ).start()
    yield process
    process.stop()


@pytest.fixture
def ns(api_client: client.ApiClient, s3: S3Info) -> Iterator[str]:
    """A fresh kti-* namespace holding the S3 credentials Secret; deleted after."""
    with fresh_namespace(api_client, "kti") as name:
        assert make_secret(api_client, name, s3) == SECRET
        yield name


@dataclass
class Adapters:
    """Publishes adapter artifacts to S3 and creates Adapters for them, as training would."""

    api: client.ApiClient
    namespace: str
    s3: S3Info
    bucket: str

    def publish(
        self,
        name: str,
        *,
        family: str = "support-bot",
        eval_loss: float = 0.40,
        directory: Path | None = None,
        base: str = FAKE_BASE,
        rank: int = 8,
    ) -> None:
        """An Adapter ``name`` of ``family``: a small fake artifact, or ``directory`` (a real
        LoRA with its manifest) uploaded as is."""
        s3_client = self.s3.client()
        if directory is None:
            files = {"adapter_config.json": f'{{"r": {rank}}}'.encode(), "weights": name.encode()}
            output = f"s3://{self.bucket}/adapters/{family}/"
            run = hashlib.sha256(name.encode()).hexdigest()[:16]
            uri, digest = publish_artifact(s3_client, output, run, files)
        else:
            from support.loras import manifest_digest, upload

            uri = upload(s3_client, directory, self.bucket, f"adapters/{name}")
            digest = manifest_digest(directory)
        body = {
            "apiVersion": "kubetune.io/v1alpha1",
            "kind": "Adapter",
            "metadata": {
                "name": name,
                "labels": {
                    "kubetune.io/adapter-family": family,
                    "kubetune.io/adapter-version": name.rsplit("-", 1)[-1],
                },
            },
            "spec": {
                "baseModel": {"name": base, "revision": "main"},
                "uri": uri,
                "digest": digest,
                "endpoint": self.s3.endpoint,
                "credentialsSecretRef": {"name": SECRET},
                "lora": {"r": rank, "alpha": 2 * rank},
                "metrics": {"evalLoss": eval_loss},
            },
        }
        create(self.api, self.namespace, "adapters", body)
        eventually(
            lambda: status_of(self.api, self.namespace, "adapters", name).get("phase") == "Ready",
            timeout=30,
            what=f"Adapter {name} Ready",
        )


@pytest.fixture
def adapters(api_client: client.ApiClient, ns: str, s3: S3Info, bucket: str) -> Adapters:
    return Adapters(api_client, ns, s3, bucket)


def infd_body(
    name: str,
    *,
    runtime: str = "kubetune",
    steps: list[dict[str, Any]] | None = None,
    base: str = FAKE_BASE,
    adapters: list[dict[str, Any]] | None = None,
    **spec: Any,
) -> dict[str, Any]:
    """An InferenceDeployment following the support-bot family, on CPU."""
    body: dict[str, Any] = {
        "apiVersion": "kubetune.io/v1alpha1",
        "kind": "InferenceDeployment",
        "metadata": {"name": name},
        "spec": {
            "baseModel": {"name": base},
            "runtime": {"type": runtime},
            "replicas": 2,
            "resources": {"gpus": 0, "cpu": "100m", "memory": "256Mi"},
            "adapters": adapters
            or [{"name": "support-bot", "selector": {"family": "support-bot"}}],
            **spec,
        },
    }
    if steps is not None:
        body["spec"]["rollout"] = {**body["spec"].get("rollout", {}), "steps": steps}
    return body


@dataclass
class Deployed:
    """One InferenceDeployment under test and ways to look at it."""

    api: client.ApiClient
    namespace: str
    name: str

    def status(self) -> dict[str, Any]:
        return status_of(self.api, self.namespace, "inferencedeployments", self.name)

    def wait(self, check: Callable[[dict[str, Any]], Any], what: str, timeout: float = 30) -> Any:
        """Poll the status until ``check(status)`` is truthy; return the status."""
        return eventually(
            lambda: (s := self.status()) and check(s) and s, timeout=timeout, what=what
        )

    def annotate(self, action: str) -> None:
        client.CustomObjectsApi(self.api).patch_namespaced_custom_object(
            "kubetune.io", "v1alpha1", self.namespace, "inferencedeployments", self.name,
            {"metadata": {"annotations": {ACTION: action}}},
        )  # fmt: skip

    def annotations(self) -> dict[str, str]:
        obj = get(self.api, self.namespace, "inferencedeployments", self.name)
        return obj["metadata"].get("annotations") or {}

    def serving_config(self) -> dict[str, Any]:
        config_map = client.CoreV1Api(self.api).read_namespaced_config_map(
            f"{self.name}-serving", self.namespace
        )
        return yaml.safe_load(config_map.data["serving.yaml"])

    def routes(self) -> dict[str, dict[str, int]]:
        return dict(self.serving_config()["routes"])

    def deployment(self, suffix: str = "") -> client.V1Deployment:
        return client.AppsV1Api(self.api).read_namespaced_deployment(
            self.name + suffix, self.namespace
        )

    def event_reasons(self) -> list[str]:
        events = client.CoreV1Api(self.api).list_namespaced_event(
            self.namespace, field_selector=f"involvedObject.name={self.name}"
        )
        ordered = sorted(events.items, key=lambda e: e.metadata.creation_timestamp)
        return [e.reason for e in ordered]


@pytest.fixture
def deploy(
    api_client: client.ApiClient, ns: str, rollout_operator: OperatorProcess
) -> Callable[..., Deployed]:
    """Create an InferenceDeployment (``infd_body`` arguments) in the test namespace."""

    def make(name: str = "support", **fields: Any) -> Deployed:
        create(api_client, ns, "inferencedeployments", infd_body(name, **fields))
        return Deployed(api_client, ns, name)

    return make


def conditions(status: dict[str, Any]) -> dict[str, tuple[str, str]]:
    return {c["type"]: (c["status"], c["reason"]) for c in status.get("conditions") or []}


def canary_at(step: int, weight: int) -> Callable[[dict[str, Any]], bool]:
    def check(status: dict[str, Any]) -> bool:
        canary = status.get("canary") or {}
        return canary.get("step") == step and canary.get("weight") == weight

    return check
