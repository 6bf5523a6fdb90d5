"""The operator SIGKILLed at random points of one FineTuneJob's life loses and doubles nothing.

The test drives a whole lifecycle on kwok nodes, playing the trainer's side (termination
messages, progress and the artifact in S3), and kills the operator at 10 points drawn from
the candidates below: *during* a step (a random moment after the step's trigger, while the
operator reacts to it), *before* a step (the step then happens while no operator runs, so
the next one must notice it), or *at start-up* (a fresh operator killed before it is ready,
while its resume handlers run). After each kill a new operator starts. At the end there must
be exactly one validation Job, one training Job with one pod, one Adapter (Ready, with the
published digest) and a FineTuneJob that Succeeded with the right fields.

The draw is seeded: the seed and the kill points are printed, and
``KUBETUNE_CHAOS_SEED=<seed>`` replays a failing draw.
"""

from __future__ import annotations

import os
import random
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client

from kubetune import artifacts
from kubetune.api import FineTuneJob, constants
from localcluster import Cluster, S3Info
from support.factories import s3_finetunejob
from support.operator import OperatorProcess
from support.polling import eventually
from support.resources import conditions, create, get, make_secret, phase_is, status_of
from support.trainerside import finish_training, pass_validation, running_pod, write_progress

NAME = "chaos-bot"
KILLS = 10
MODES = ("before", "during", "startup")


@dataclass(frozen=True)
class Step:
    """One thing that happens in the lifecycle, and what shows the operator has handled it."""

    name: str
    act: Callable[[], Any]
    handled: Callable[[], Any]


@dataclass(frozen=True)
class KillPoint:
    step: str
    mode: str
    delay: float
    """Seconds after the step's trigger (``during``) or after the spawn (``startup``)."""

    def __str__(self) -> str:
        return f"{self.mode}:{self.step}@{self.delay:.2f}s"


def draw(seed: int, steps: list[str]) -> list[KillPoint]:
    """``KILLS`` distinct kill points in lifecycle order, from ``seed`` alone: one in every
    step (so that no phase goes untested), the rest anywhere."""
    rng = random.Random(seed)
    candidates = [(step, mode) for step in steps for mode in MODES]
    chosen = {(step, rng.choice(MODES)) for step in steps}
    chosen |= set(rng.sample(sorted(set(candidates) - chosen), KILLS - len(chosen)))
    ordered = sorted(chosen, key=candidates.index)
    return [KillPoint(step, mode, round(rng.uniform(0.0, 0.6), 2)) for step, mode in ordered]


@pytest.fixture
def seed() -> int:
    value = os.environ.get("KUBETUNE_CHAOS_SEED")
    return int(value) if value else secrets.randbelow(2**31)


def test_operator_sigkilled_at_ten_random_points_leaves_one_of_everything(
    api_client: client.ApiClient,
    cluster: Cluster,
    s3: S3Info,
    bucket: str,
    chaos_namespace: str,
    kubetune_crds: list[str],
    tmp_path: Path,
    seed: int,
    record_property: Callable[[str, object], None],
) -> None:
    ns, api, s3_client = chaos_namespace, api_client, s3.client()
    make_secret(api, ns, s3)
    operator = OperatorProcess(
        cluster.info.kubeconfig, tmp_path / "operator.log", KUBETUNE_NAMESPACES=ns
    )
    published: dict[str, str] = {}

    def progress(step: int) -> Callable[[], None]:
        job = FineTuneJob.model_validate(get(api, ns, "finetunejobs", NAME))
        run = artifacts.run_id(job.spec)
        checkpoint = f"{job.spec.output.uri}{run}/checkpoints/step-{step:06d}/"
        return lambda: write_progress(
            s3_client, job.spec.output.uri, run, step=step, totalSteps=20, checkpointUri=checkpoint
        )

    def publish() -> None:
        published["uri"], published["digest"] = finish_training(api, s3_client, ns, NAME)

    def progress_is(step: int) -> Callable[[], bool]:
        return lambda: (
            (status_of(api, ns, "finetunejobs", NAME).get("progress") or {}).get("step") == step
        )

    body = s3_finetunejob(NAME, bucket, s3.endpoint, adapter=NAME)
    steps = [
        Step(
            "create",
            lambda: create(api, ns, "finetunejobs", body),
            lambda: phase_is(api, ns, NAME, "Validating") and _job(api, ns, f"{NAME}-validate"),
        ),
        Step(
            "validation-passes",
            lambda: pass_validation(api, ns, NAME),
            lambda: _job(api, ns, f"{NAME}-train"),
        ),
        Step(
            "training-pod-runs",
            lambda: running_pod(api, ns, f"{NAME}-train"),
            lambda: phase_is(api, ns, NAME, "Running"),
        ),
        Step("progress-5", lambda: progress(5)(), progress_is(5)),
        Step("progress-10", lambda: progress(10)(), progress_is(10)),
        Step("training-succeeds", publish, lambda: phase_is(api, ns, NAME, "Succeeded")),
        Step(
            "adapter-verified",
            lambda: None,
            lambda: status_of(api, ns, "adapters", f"{NAME}-v1").get("phase") == "Ready",
        ),
    ]
    points = draw(seed, [s.name for s in steps])
    story = f"KUBETUNE_CHAOS_SEED={seed} kill points: {', '.join(map(str, points))}"
    print(story)
    record_property("chaos", story)

    operator.start()
    try:
        for step in steps:
            chosen = [p for p in points if p.step == step.name]
            if any(p.mode == "before" for p in chosen):
                operator.kill()
                step.act()  # while no operator runs: the next one must notice
                operator.start()
            else:
                step.act()
            for point in chosen:
                if point.mode == "during":
                    _sleep_then_kill(operator, point.delay)
                    operator.start()
                elif point.mode == "startup":
                    operator.kill()
                    operator.start(wait_ready=False)
                    _sleep_then_kill(operator, point.delay)
                    operator.start()
            eventually(step.handled, timeout=90, what=f"{step.name} handled ({story})")

        _assert_one_of_everything(api, ns, published, story)
    finally:
        operator.stop()


def _sleep_then_kill(operator: OperatorProcess, delay: float) -> None:
    """Kill ``delay`` seconds from now: a moment inside the operator's reaction."""
    deadline = time.monotonic() + delay
    while time.monotonic() < deadline:
        time.sleep(0.01)
    operator.kill()


def _job(api: client.ApiClient, namespace: str, name: str) -> client.V1Job | None:
    jobs = client.BatchV1Api(api).list_namespaced_job(
        namespace, field_selector=f"metadata.name={name}"
    )
    return jobs.items[0] if jobs.items else None


def _assert_one_of_everything(
    api: client.ApiClient, ns: str, published: dict[str, str], story: str
) -> None:
    owner = get(api, ns, "finetunejobs", NAME)
    uid = owner["metadata"]["uid"]
    selector = f"{constants.LABEL_FINETUNEJOB}={NAME}"
    batch, core = client.BatchV1Api(api), client.CoreV1Api(api)

    jobs = batch.list_namespaced_job(ns).items
    assert sorted(j.metadata.name for j in jobs) == [f"{NAME}-train", f"{NAME}-validate"], story
    for job in jobs:
        assert job.metadata.labels[constants.LABEL_FINETUNEJOB] == NAME
        [ref] = job.metadata.owner_references
        assert (ref.uid, ref.controller) == (uid, True), story
    training_pods = core.list_namespaced_pod(ns, label_selector=f"job-name={NAME}-train").items
    assert len(training_pods) == 1, story  # one attempt: nothing was started twice
    assert len(core.list_namespaced_config_map(ns, label_selector=selector).items) == 1, story

    adapters = client.CustomObjectsApi(api).list_namespaced_custom_object(
        "kubetune.io", "v1alpha1", ns, "adapters"
    )["items"]
    assert [a["metadata"]["name"] for a in adapters] == [f"{NAME}-v1"], story
    [adapter] = adapters
    assert adapter["spec"]["digest"] == published["digest"], story
    assert adapter["spec"]["uri"] == published["uri"], story
    assert adapter["status"]["phase"] == "Ready", story
    assert adapter["status"]["verifiedDigest"] == published["digest"], story

    status = owner["status"]
    assert status["phase"] == "Succeeded", story
    assert status["attempts"] == 1, story
    assert status["adapterRef"] == f"{NAME}-v1", story
    assert status["artifactUri"] == published["uri"], story
    assert status["progress"]["step"] == 10, story
    assert status["checkpointUri"].endswith("/checkpoints/step-000010/"), story
    assert status["observedGeneration"] == owner["metadata"]["generation"], story
    assert status["startTime"] <= status["completionTime"], story
    found = conditions(status)
    assert found["Validated"]["status"] == "True", story
    assert found["Succeeded"]["status"] == "True", story
    assert found["Running"]["status"] == "False", story
    assert "Failed" not in found or found["Failed"]["status"] != "True", story
