"""Termination summaries fit Kubernetes' 4 KB, progress numbers are right, errors map to reasons."""

from __future__ import annotations

import json

import pytest
from botocore.exceptions import ClientError, EndpointConnectionError

from kubetune.api import Reason
from kubetune_trainer import termination
from kubetune_trainer.errors import TrainerError
from kubetune_trainer.progress import ProgressState
from kubetune_trainer.storage import ObjectNotFoundError, S3Uri, s3_errors


def test_a_long_summary_is_cut_to_valid_json_of_4_kb():
    summary = {
        "phase": "Failed",
        "reason": "DatasetInvalid",
        "message": "x" * 10_000,
        "dataset": {"problems": {f"p{i}": i for i in range(50)}},
        "issues": [{"line": i, "message": "bad " * 10} for i in range(100)],
    }

    data = termination.fit(summary)

    assert len(data) <= 4096
    parsed = json.loads(data)
    assert parsed["reason"] == "DatasetInvalid"
    assert parsed["message"].endswith("...")
    assert parsed["issues"] == []


def test_a_short_summary_is_kept_whole():
    summary = {"phase": "Succeeded", "reason": "Completed", "metrics": {"evalLoss": 0.5}}

    assert json.loads(termination.fit(summary)) == summary


def test_the_first_failure_is_kept_and_success_overwrites(tmp_path):
    path = tmp_path / "termination-log"
    path.write_bytes(b"")

    termination.write(path, {"reason": "NaNLoss"}, first_only=True)
    termination.write(path, {"reason": "Preempted"}, first_only=True)
    assert json.loads(path.read_text())["reason"] == "NaNLoss"

    termination.write(path, {"reason": "Completed"})
    assert json.loads(path.read_text())["reason"] == "Completed"


@pytest.mark.parametrize(
    ("reason", "permanent"),
    [
        (Reason.DATASET_INVALID, True),
        (Reason.S3_ACCESS_DENIED, True),
        (Reason.NAN_LOSS, True),
        (Reason.OUT_OF_MEMORY, True),
        (Reason.S3_UNAVAILABLE, False),
        (Reason.PREEMPTED, False),
    ],
)
def test_which_failures_are_permanent(reason, permanent):
    assert TrainerError(reason, "m").permanent is permanent


def client_error(code: str) -> ClientError:
    return ClientError({"Error": {"Code": code, "Message": f"{code} happened"}}, "PutObject")


@pytest.mark.parametrize(
    ("raised", "reason"),
    [
        (client_error("AccessDenied"), Reason.S3_ACCESS_DENIED),
        (client_error("InvalidAccessKeyId"), Reason.S3_ACCESS_DENIED),
        (client_error("SignatureDoesNotMatch"), Reason.S3_ACCESS_DENIED),
        (client_error("InternalError"), Reason.S3_UNAVAILABLE),
        (EndpointConnectionError(endpoint_url="http://127.0.0.1:1"), Reason.S3_UNAVAILABLE),
    ],
)
def test_s3_failures_become_reasons(raised, reason):
    with pytest.raises(TrainerError) as caught, s3_errors("write", S3Uri("b", "k")):
        raise raised

    assert caught.value.reason == reason
    assert "s3://b/k" in caught.value.message


@pytest.mark.parametrize("code", ["NoSuchKey", "NoSuchBucket", "404"])
def test_a_missing_object_is_not_found(code):
    with pytest.raises(ObjectNotFoundError), s3_errors("read", S3Uri("b", "k")):
        raise client_error(code)


@pytest.mark.parametrize(
    ("uri", "bucket", "key"),
    [
        ("s3://b/", "b", ""),
        ("s3://b/a/c.jsonl", "b", "a/c.jsonl"),
        ("s3://b", "b", ""),
    ],
)
def test_s3_uris_parse(uri, bucket, key):
    assert S3Uri.parse(uri) == S3Uri(bucket, key)


def test_s3_uris_join_as_paths():
    assert str(S3Uri("b", "out/").join("run", "/adapter/")) == "s3://b/out/run/adapter"
    assert str(S3Uri("b").join("x")) == "s3://b/x"
    with pytest.raises(ValueError, match="s3://"):
        S3Uri.parse("gs://b/x")


def test_progress_counts_rates_and_eta_from_the_session_start():
    state = ProgressState(total_steps=100, session_start=10.0, session_step=40, session_tokens=4000)
    state.step, state.tokens, state.epoch = 60, 6000, 1.23456
    state.train_loss, state.eval_loss = 1.5, float("nan")

    progress = state.snapshot(now=30.0)

    assert progress.percent == 60
    assert progress.tokens_per_second == 100.0
    assert progress.eta_seconds == 40
    assert progress.epoch == 1.2346
    assert progress.eval_loss is None
    assert set(json.loads(progress.model_dump_json(exclude_none=True))) >= {
        "step",
        "totalSteps",
        "percent",
        "epoch",
        "trainLoss",
        "tokensPerSecond",
        "etaSeconds",
        "updatedAt",
    }
