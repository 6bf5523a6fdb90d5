"""How long trainers wait out an S3 outage is the platform team's setting, passed to pods."""

from __future__ import annotations

from typing import Any

import pytest

from kubetune.builders.training import build_training_job, build_validation_job
from kubetune.settings import Settings
from support.factories import make_finetunejob


def _env(job: dict[str, Any]) -> dict[str, str]:
    container = job["spec"]["template"]["spec"]["containers"][0]
    return {e["name"]: e.get("value") for e in container["env"]}


@pytest.mark.parametrize("build", [build_training_job, build_validation_job])
def test_the_retry_deadline_reaches_trainer_pods(build: Any) -> None:
    settings = Settings.from_env({"KUBETUNE_TRAINER_S3_RETRY_SECONDS": "45"})

    assert _env(build(make_finetunejob(), settings, "r"))["KUBETUNE_S3_RETRY_SECONDS"] == "45"
    assert "KUBETUNE_S3_RETRY_SECONDS" not in _env(build(make_finetunejob(), Settings(), "r"))


@pytest.mark.parametrize("value", ["-5", "later"])
def test_a_bad_retry_deadline_is_refused(value: str) -> None:
    with pytest.raises(ValueError, match="KUBETUNE_TRAINER_S3_RETRY_SECONDS"):
        Settings.from_env({"KUBETUNE_TRAINER_S3_RETRY_SECONDS": value})
