"""The slim diff base is kopf's essence, exactly, for every kind of body the operator watches."""

from __future__ import annotations

import copy
from typing import Any

import kopf
import pytest

from kubetune.api import constants
from kubetune.controllers.diffbase import SlimAnnotationsDiffBaseStorage

PREFIX = constants.KOPF_STORAGE_PREFIX
OWNER = {"apiVersion": "batch/v1", "kind": "Job", "name": "ftj-train", "uid": "u-1"}
POD = {
    "apiVersion": "v1",
    "kind": "Pod",
    "metadata": {
        "name": "ftj-train-abc",
        "namespace": "team-a",
        "uid": "u-2",
        "resourceVersion": "42",
        "labels": {"kubetune.io/finetunejob": "ftj", "batch.kubernetes.io/job-name": "ftj-train"},
        "annotations": {
            "kubectl.kubernetes.io/last-applied-configuration": "{}",
            f"{PREFIX}/last-handled-configuration": '{"spec": {}}\n',
            "team.example/owner": "ml",
        },
        "ownerReferences": [OWNER],
        "managedFields": [{"manager": "kube-controller-manager", "fieldsV1": {"f:spec": {}}}],
        "finalizers": ["batch.kubernetes.io/job-tracking"],
    },
    "spec": {"containers": [{"name": "trainer", "image": "trainer:1"}], "nodeName": "gpu-0"},
    "status": {"phase": "Running", "containerStatuses": [{"name": "trainer", "ready": True}]},
}
FINETUNEJOB = {
    "apiVersion": "kubetune.io/v1alpha1",
    "kind": "FineTuneJob",
    "metadata": {"name": "ftj", "namespace": "team-a", "generation": 2, "labels": {"a": "b"}},
    "spec": {"suspend": True, "baseModel": {"uri": "s3://models/base"}},
    "status": {"phase": "Running", "progress": {"step": 3}},
}
REPLICASET = {  # kopf names its keys differently for a Deployment's ReplicaSet (its owners)
    "apiVersion": "apps/v1",
    "kind": "ReplicaSet",
    "metadata": {
        "name": "serve-abc",
        "ownerReferences": [{"apiVersion": "apps/v1", "kind": "Deployment", "name": "serve"}],
        "annotations": {f"{PREFIX}/last-handled-configuration-ofDRS": "{}", "x": "y"},
    },
    "spec": {"replicas": 2},
}
CONFIGMAP = {
    "apiVersion": "v1",
    "kind": "ConfigMap",
    "metadata": {"name": "c", "namespace": "team-a"},
    "data": {"config.json": "{}"},
}


@pytest.mark.parametrize(
    "body", [POD, FINETUNEJOB, REPLICASET, CONFIGMAP], ids=["pod", "ftj", "replicaset", "configmap"]
)
@pytest.mark.parametrize(
    "extra_fields",
    [None, [], ["spec"], ["status.phase"], [("status", "progress")], ["metadata.name"]],
)
def test_the_essence_is_kopfs(body: dict[str, Any], extra_fields: list[Any] | None) -> None:
    ours = SlimAnnotationsDiffBaseStorage(prefix=PREFIX, key="last-handled-configuration")
    kopfs = kopf.AnnotationsDiffBaseStorage(prefix=PREFIX, key="last-handled-configuration")
    before = copy.deepcopy(body)
    built = ours.build(body=kopf.Body(body), extra_fields=extra_fields)
    assert built == kopfs.build(body=kopf.Body(body), extra_fields=extra_fields)
    assert body == before  # the event's body is left as it was


def test_the_essence_is_a_copy() -> None:
    """kopf keeps essences across events: changing the body must not change a kept one."""
    body = copy.deepcopy(FINETUNEJOB)
    storage = SlimAnnotationsDiffBaseStorage(prefix=PREFIX, key="last-handled-configuration")
    built = storage.build(body=kopf.Body(body), extra_fields=None)
    body["spec"]["baseModel"]["uri"] = "s3://models/other"
    body["metadata"]["labels"]["a"] = "c"
    assert built["spec"]["baseModel"]["uri"] == "s3://models/base"
    assert built["metadata"]["labels"] == {"a": "b"}
