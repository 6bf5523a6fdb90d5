"""The apiserver itself refuses S3 and PVC URIs that are path traversals, naming the field."""

from __future__ import annotations

import json
from typing import Any

import pytest
from kubernetes import client

from support.factories import finetunejob_body
from support.resources import GROUP, VERSION

CASES = {
    "dataset-parent": ("dataset", "s3://bucket/../secret/train.jsonl"),
    "dataset-climb": ("dataset", "s3://bucket/data/../../train.jsonl"),
    "dataset-empty-segment": ("dataset", "s3://bucket//train.jsonl"),
    "dataset-nul": ("dataset", "s3://bucket/a\u0000b.jsonl"),
    "dataset-pvc": ("dataset", "pvc://claim/../other/train.jsonl"),
    "output-parent": ("output", "s3://bucket/adapters/../../other/"),
    "model-pvc": ("baseModel", "pvc://models/a/../../etc/"),
}


def _body(name: str, field: str, uri: str) -> dict[str, Any]:
    body = finetunejob_body()
    body["metadata"] = {"name": name}
    body["spec"][field] = {**body["spec"][field], "uri": uri}
    return body


@pytest.mark.parametrize("case", sorted(CASES))
def test_traversal_uris_are_rejected_by_the_apiserver(
    api_client: client.ApiClient, kubetune_crds: list[str], shared_namespace: str, case: str
) -> None:
    field, uri = CASES[case]
    with pytest.raises(client.ApiException) as caught:
        client.CustomObjectsApi(api_client).create_namespaced_custom_object(
            GROUP, VERSION, shared_namespace, "finetunejobs", _body(case, field, uri)
        )
    assert caught.value.status == 422
    causes = json.loads(caught.value.body)["details"]["causes"]
    assert [c["field"] for c in causes] == [f"spec.{field}.uri"]
