"""Conditions, settings from the environment, and the artifact contract."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from kubetune import artifacts
from kubetune.api import Condition, ConditionStatus
from kubetune.settings import Settings
from kubetune.status import is_true, set_condition
from support.factories import make_finetunejob

T0 = datetime(2026, 1, 1, tzinfo=UTC)
T1 = datetime(2026, 1, 2, tzinfo=UTC)


def test_set_condition_reports_change_and_keeps_transition_time() -> None:
    conditions: list[Condition] = []
    assert set_condition(conditions, "Ready", True, "Verified", "ok", at=T0)
    assert not set_condition(conditions, "Ready", True, "Verified", "ok", at=T1)
    assert set_condition(conditions, "Ready", True, "Verified", "3 files", at=T1)
    assert conditions[0].last_transition_time == T0  # same status: the transition stands
    assert set_condition(conditions, "Ready", False, "DigestMismatch", "bad", at=T1)
    assert conditions[0].last_transition_time == T1
    assert conditions[0].status == ConditionStatus.FALSE
    assert not is_true(conditions, "Ready")
    assert len(conditions) == 1


def test_settings_from_the_environment() -> None:
    settings = Settings.from_env(
        {
            "KUBETUNE_NAMESPACES": "team-a, team-b,,",
            "KUBETUNE_TRAINER_IMAGE": "trainer:9",
            "KUBETUNE_S3_ENDPOINT": "http://minio:9000",
            "KUBETUNE_LEADER_ELECTION": "false",
            "POD_NAME": "kubetune-0",
            "POD_NAMESPACE": "kubetune-system",
        }
    )
    assert settings.process.namespaces == ("team-a", "team-b")
    assert settings.images.trainer == "trainer:9"
    assert settings.storage.endpoint == "http://minio:9000"
    assert settings.process.leader_election is False
    assert (settings.process.identity, settings.process.lease_namespace) == (
        "kubetune-0",
        "kubetune-system",
    )
    assert Settings.from_env({}).process.namespaces == ()


def test_run_id_depends_on_what_is_trained_only() -> None:
    def run_id(**spec: object) -> str:
        return artifacts.run_id(make_finetunejob(**spec).spec)

    base = run_id()
    assert len(base) == 16
    assert run_id(resources={"gpus": 8}, suspend=True) == base
    assert run_id(lora={"r": 32, "alpha": 32}) != base
    assert (
        run_id(output={"uri": "s3://adapters/support-bot/", "endpoint": "http://other:9000"})
        == base
    )


@pytest.mark.parametrize(
    "path", ["../x", "/etc/passwd", "a/../../b", "./a", "a//b", "a\\b", "", "."]
)
def test_unsafe_manifest_paths_are_rejected(path: str) -> None:
    with pytest.raises(ValueError, match="file path"):
        artifacts.safe_relative_path(path)


def test_manifest_rejects_duplicates_and_itself() -> None:
    entry = {"path": "a.bin", "sha256": "a" * 64, "size": 1}
    common = {
        "run_id": "r",
        "base_model": {},
        "lora": {},
        "trainer_version": "1",
        "created_at": "2026-01-01T00:00:00Z",
    }
    with pytest.raises(ValueError, match="unique"):
        artifacts.Manifest(files=[entry, entry], **common)
    with pytest.raises(ValueError, match="unique"):
        artifacts.Manifest(files=[{**entry, "path": "manifest.json"}], **common)
    manifest = artifacts.Manifest(files=[entry], **common)
    assert artifacts.Manifest.model_validate_json(manifest.to_bytes()) == manifest
    assert artifacts.digest(manifest.to_bytes()).startswith("sha256:")


def test_layout() -> None:
    assert artifacts.adapter_uri("s3://b/p/", "r") == "s3://b/p/r/adapter/"
    assert artifacts.progress_uri("s3://b/p", "r") == "s3://b/p/r/progress.json"
