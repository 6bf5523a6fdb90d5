"""The generated CRDs in a real apiserver: what they accept, reject, default and show.

The invalid-object table is the one the unit tests run against the models
(support.apiobjects), so the apiserver and the models are held to the same verdicts.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from kubernetes import client
from kubernetes.client.rest import ApiException

from kubetune.api import (
    KINDS,
    Adapter,
    AdapterStatus,
    Condition,
    FineTuneJob,
    FineTuneJobStatus,
    InferenceDeployment,
    InferenceDeploymentStatus,
    KubeModel,
    KubeObject,
)
from kubetune.api.constants import GROUP, VERSION
from localcluster import Cluster
from support.apiobjects import (
    DELETE,
    INVALID,
    VALID,
    Invalid,
    Valid,
    example,
    minimal,
    with_changes,
)
from support.polling import eventually

pytestmark = [pytest.mark.integration, pytest.mark.usefixtures("kubetune_crds")]

KIND: dict[str, type[KubeObject]] = {kind.__name__: kind for kind in KINDS}


class Objects:
    """Custom objects of the kubetune group in one namespace."""

    def __init__(self, api_client: client.ApiClient, namespace: str) -> None:
        self.api = client.CustomObjectsApi(api_client)
        self.namespace = namespace

    def create(self, body: dict[str, Any], *, strict: bool = False) -> dict[str, Any]:
        return self.api.create_namespaced_custom_object(
            GROUP,
            VERSION,
            self.namespace,
            KIND[body["kind"]].plural,
            body,
            field_validation="Strict" if strict else None,
        )

    def get(self, kind: str, name: str) -> dict[str, Any]:
        return self.api.get_namespaced_custom_object(
            GROUP, VERSION, self.namespace, KIND[kind].plural, name
        )

    def change(self, kind: str, name: str, changes: dict[str, Any]) -> dict[str, Any]:
        """Replace the object with ``changes`` applied to its current state. The session
        operator may annotate it between a read and the replace (a 409): read again."""
        for _ in range(5):
            current = self.get(kind, name)
            try:
                return self.api.replace_namespaced_custom_object(
                    GROUP, VERSION, self.namespace, KIND[kind].plural, name,
                    with_changes(current, changes),
                )  # fmt: skip
            except ApiException as exc:
                if exc.status != 409:
                    raise
        raise AssertionError(f"{kind} {name} kept changing under the test")

    def patch_status(self, kind: str, name: str, status: dict[str, Any]) -> dict[str, Any]:
        return self.api.patch_namespaced_custom_object_status(
            GROUP,
            VERSION,
            self.namespace,
            KIND[kind].plural,
            name,
            {"status": status},
            _content_type="application/merge-patch+json",
        )


def rejection(call: Any) -> str:
    """The apiserver's message for a call that must be refused as invalid."""
    with pytest.raises(ApiException) as caught:
        call()
    assert caught.value.status in (400, 422), caught.value.body
    return json.loads(caught.value.body)["message"]


@pytest.fixture(scope="module")
def shared(api_client: client.ApiClient, shared_namespace: str) -> Objects:
    return Objects(api_client, shared_namespace)


@pytest.fixture
def objects(api_client: client.ApiClient, namespace: str) -> Objects:
    return Objects(api_client, namespace)


@pytest.mark.parametrize("case", VALID, ids=lambda c: c.id)
def test_valid_objects_are_accepted(shared: Objects, case: Valid) -> None:
    created = shared.create(case.object(name=case.id), strict=True)
    KIND[case.kind].model_validate(created)


@pytest.mark.parametrize("case", INVALID, ids=lambda c: c.id)
def test_invalid_objects_are_rejected_naming_the_field(shared: Objects, case: Invalid) -> None:
    message = rejection(lambda: shared.create(case.object(name=case.id), strict=case.unknown_field))
    assert case.field in message


def test_the_invalid_table_is_large_enough() -> None:
    assert len({c.id for c in INVALID}) >= 30


@pytest.mark.parametrize("case", [c for c in INVALID if c.unknown_field], ids=lambda c: c.id)
def test_unknown_fields_are_pruned_without_strict_validation(
    shared: Objects, case: Invalid
) -> None:
    """Clients that do not ask for strict validation lose the field instead of an error:
    it is never stored, so no namespace reference can reach the operator."""
    name = f"pruned-{case.id}"
    created = shared.create(case.object(name=name))
    *parents, last = case.field.split(".")
    node = created
    for key in parents:
        node = node[key]
    assert last not in node


@pytest.mark.parametrize(
    ("kind", "changes", "message"),
    [
        ("FineTuneJob", {"spec.baseModel.revision": "main"}, "baseModel is immutable"),
        (
            "FineTuneJob",
            {"spec.dataset.uri": "s3://ml-datasets/other.jsonl"},
            "dataset is immutable",
        ),
        (
            "FineTuneJob",
            {"spec.method": "lora", "spec.quantization": DELETE},
            "method is immutable",
        ),
        ("FineTuneJob", {"spec.lora.r": 64}, "lora is immutable"),
        ("FineTuneJob", {"spec.lora.targetModules": ["q_proj"]}, "lora is immutable"),
        ("FineTuneJob", {"spec.quantization.type": "fp4"}, "quantization is immutable"),
        ("FineTuneJob", {"spec.quantization": DELETE}, "quantization cannot be added or removed"),
        ("FineTuneJob", {"spec.training.learningRate": 1e-4}, "training is immutable"),
        ("FineTuneJob", {"spec.output.uri": "s3://elsewhere/x/"}, "output is immutable"),
        ("FineTuneJob", {"spec.adapter.version": "v4"}, "adapter is immutable"),
        ("Adapter", {"spec.digest": "sha256:" + "f" * 64}, "spec is immutable"),
        ("Adapter", {"spec.metrics.evalLoss": 0.5}, "spec is immutable"),
    ],
)
def test_immutable_fields_cannot_change(
    objects: Objects, kind: str, changes: dict[str, Any], message: str
) -> None:
    objects.create(example(kind) | {"metadata": {"name": "immutable"}})
    assert message in rejection(lambda: objects.change(kind, "immutable", changes))


@pytest.mark.parametrize(
    ("kind", "changes"),
    [
        ("FineTuneJob", {"spec.suspend": True}),
        ("FineTuneJob", {"spec.resources.memory": "96Gi", "spec.resources.gpus": 2}),
        ("FineTuneJob", {"spec.image": "registry.example/trainer:2", "spec.backoffLimit": 5}),
        ("InferenceDeployment", {"spec.adapters.1.adapterRef": "sql-helper-v8"}),
        ("InferenceDeployment", {"spec.rollout.steps.0.weight": 5, "spec.replicas": 4}),
    ],
)
def test_mutable_fields_can_change(objects: Objects, kind: str, changes: dict[str, Any]) -> None:
    objects.create(example(kind) | {"metadata": {"name": "mutable"}})
    replaced = objects.change(kind, "mutable", changes)
    assert replaced["metadata"]["generation"] == 2


STATUS_MODEL: dict[type[KubeObject], type[KubeModel]] = {
    FineTuneJob: FineTuneJobStatus,
    Adapter: AdapterStatus,
    InferenceDeployment: InferenceDeploymentStatus,
}
STATUSES: dict[str, dict[str, Any]] = {
    "FineTuneJob": FineTuneJobStatus.model_validate(
        {
            "phase": "Running",
            "observedGeneration": 1,
            "conditions": [
                Condition.model_validate(
                    {
                        "type": "Validated",
                        "status": "True",
                        "reason": "DatasetValid",
                        "message": "48213 records, chat format",
                        "lastTransitionTime": "2026-01-02T03:04:05Z",
                        "observedGeneration": 1,
                    }
                ).model_dump(mode="json", exclude_none=True)
            ],
            "progress": {
                "step": 120,
                "totalSteps": 900,
                "percent": 13,
                "epoch": 0.4,
                "trainLoss": 1.2345,
                "learningRate": 0.000198,
                "tokensPerSecond": 5120.5,
                "etaSeconds": 5400,
                "updatedAt": "2026-01-02T03:14:05Z",
            },
            "dataset": {
                "sha256": "a" * 64,
                "format": "chat",
                "records": 48213,
                "evalRecords": 2410,
            },
            "attempts": 1,
            "startTime": "2026-01-02T03:05:00Z",
            "jobName": "support-bot-v3-1",
            "checkpointUri": "s3://ml-adapters/support-bot/run/checkpoint-100/",
            "gpuSeconds": 600,
        }
    ).model_dump(mode="json", exclude_none=True),
    "Adapter": AdapterStatus.model_validate(
        {
            "phase": "Ready",
            "verifiedDigest": "sha256:" + "b" * 64,
            "sizeBytes": 27262976,
            "files": 3,
            "verifiedAt": "2026-01-02T04:00:00Z",
        }
    ).model_dump(mode="json", exclude_none=True),
    "InferenceDeployment": InferenceDeploymentStatus.model_validate(
        {
            "phase": "Progressing",
            "replicas": 3,
            "readyReplicas": 3,
            "selector": "kubetune.io/inferencedeployment=support",
            "stable": {
                "revision": "support-bot-v2,sql-helper-v7",
                "adapters": [{"name": "support-bot", "adapterRef": "support-bot-v2"}],
            },
            "canary": {
                "revision": "support-bot-v3,sql-helper-v7",
                "adapters": [{"name": "support-bot", "adapterRef": "support-bot-v3"}],
                "step": 0,
                "weight": 10,
                "stepStartedAt": "2026-01-02T05:00:00Z",
                "analysis": {"failures": 0, "requests": 250, "errorRate": 0.004},
            },
            "endpoints": ["http://support.ml-team.svc:8000/v1"],
        }
    ).model_dump(mode="json", exclude_none=True),
}


@pytest.mark.parametrize("kind", KINDS, ids=lambda k: k.__name__)
def test_round_trip_through_the_apiserver_loses_nothing(
    objects: Objects, kind: type[KubeObject]
) -> None:
    name = kind.__name__.lower()
    objects.create(example(kind.__name__) | {"metadata": {"name": name}}, strict=True)
    objects.patch_status(kind.__name__, name, STATUSES[kind.__name__])
    stored = objects.get(kind.__name__, name)
    assert stored["status"] == STATUSES[kind.__name__]
    assert kind.model_validate(stored).model_dump(mode="json", exclude_none=True) == stored


@pytest.mark.parametrize("kind", KINDS, ids=lambda k: k.__name__)
def test_apiserver_defaults_equal_model_defaults(objects: Objects, kind: type[KubeObject]) -> None:
    body = minimal(kind.__name__)
    created = objects.create(body, strict=True)
    expected = kind.model_validate(body).model_dump(mode="json", exclude_none=True)
    assert created["spec"] == expected["spec"]
    status = objects.patch_status(kind.__name__, body["metadata"]["name"], {})["status"]
    assert status == STATUS_MODEL[kind]().model_dump(mode="json", exclude_none=True)


@pytest.mark.parametrize(
    ("resource", "expected"),
    [
        ("finetunejob.spec.lora", ["Rank of the LoRA update matrices", "targetModules", "alpha/r"]),
        ("ftj.spec.training.maxSteps", ["instead of epochs"]),
        ("adapter.spec.digest", ["manifest.json"]),
        ("inferencedeployment.spec.rollout.steps", ["strictly increasing", "weight"]),
    ],
)
def test_kubectl_explain_prints_descriptions(
    cluster: Cluster, resource: str, expected: list[str]
) -> None:
    def explained() -> str:
        out = cluster.kubectl("explain", resource).stdout
        return out if all(text in out for text in expected) else ""

    eventually(explained, what=f"kubectl explain {resource}")


def test_kubectl_get_shows_columns_and_category(cluster: Cluster, objects: Objects) -> None:
    for kind in KINDS:
        objects.create(example(kind.__name__) | {"metadata": {"name": "shown"}})
    header = cluster.kubectl("get", "ftj", "-n", objects.namespace).stdout.splitlines()[0]
    assert header.split() == ["NAME", "PHASE", "PROGRESS", "LOSS", "AGE"]
    wide = cluster.kubectl("get", "infd", "-o", "wide", "-n", objects.namespace).stdout
    assert wide.split()[:7] == ["NAME", "PHASE", "STABLE", "CANARY", "WEIGHT", "READY", "AGE"]
    listed = cluster.kubectl("get", "kubetune", "-n", objects.namespace, "-o", "name").stdout
    assert sorted(listed.split()) == [
        f"adapter.{GROUP}/shown",
        f"finetunejob.{GROUP}/shown",
        f"inferencedeployment.{GROUP}/shown",
    ]


def test_inference_deployment_scales(cluster: Cluster, objects: Objects) -> None:
    objects.create(example("InferenceDeployment") | {"metadata": {"name": "scaled"}})
    cluster.kubectl("scale", "infd", "scaled", "--replicas=5", "-n", objects.namespace)
    assert objects.get("InferenceDeployment", "scaled")["spec"]["replicas"] == 5
