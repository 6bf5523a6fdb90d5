"""S3 and PVC URIs whose keys would be path traversals once they become file names."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from support.factories import make_finetunejob

TRAVERSALS = [
    "s3://bucket/../secret/train.jsonl",
    "s3://bucket/data/../../train.jsonl",
    "s3://bucket//train.jsonl",
    "s3://bucket/./train.jsonl",
    "s3://bucket/data/..",
    "s3://bucket/a\x00b.jsonl",
    "s3://bucket/a\\..\\b.jsonl",
    "s3://bucket/a\nb.jsonl",
    "pvc://claim/../other/train.jsonl",
    "pvc://claim/a/../../etc/passwd",
]
PLAIN = [
    "s3://bucket/data/train.jsonl",
    "s3://bucket/.hidden/v1..v2/train...jsonl",
    "s3://bucket/données/名前.jsonl",
    "pvc://claim/data/",
]


@pytest.mark.parametrize("uri", TRAVERSALS)
def test_traversal_in_a_dataset_uri_is_rejected(uri: str) -> None:
    with pytest.raises(ValidationError, match=r"dataset\.uri"):
        make_finetunejob(dataset={"uri": uri})


@pytest.mark.parametrize("uri", [u.replace("train.jsonl", "") for u in TRAVERSALS[:5]])
def test_traversal_in_an_output_or_model_uri_is_rejected(uri: str) -> None:
    with pytest.raises(ValidationError, match=r"output\.uri"):
        make_finetunejob(output={"uri": uri})
    with pytest.raises(ValidationError, match=r"baseModel\.uri"):
        make_finetunejob(baseModel={"name": "org/model", "uri": uri})


@pytest.mark.parametrize("uri", PLAIN)
def test_plain_keys_with_dots_and_unicode_are_accepted(uri: str) -> None:
    assert make_finetunejob(dataset={"uri": uri}).spec.dataset.uri == uri
