"""The two scenarios of the scale benchmark, run in the same cluster one after the other.

Baseline: plain batch Jobs applied directly; the controller-manager's Job controller makes
their pods (apply -> Pod created), kwok runs them and ends them at once (the pod template
carries the finish annotation), so each Job goes through its whole lifecycle.

kubetune: FineTuneJobs; the operator creates the validation Job (apply -> Job created), the
benchmark ends each validation pod as the trainer does for valid data, the operator creates
the training Job, kwok runs its pod (FineTuneJob Running). With every job Running, each gets
one progress report in S3 and all hold for a while (the progress timer ticks); then the
benchmark publishes every artifact and ends the training pods, and the lifecycle ends when
every Adapter is verified Ready.
"""

from __future__ import annotations

import json
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psutil
from kubernetes import client, config
from scale_env import BASELINE_NAMESPACE, OURS_NAMESPACE, World
from scale_watch import Event, Timeline, apply_at_rate, has_condition, job_of, watch_namespace

from kubetune import artifacts
from kubetune.api import FineTuneJob
from support.factories import s3_finetunejob
from support.operator import OperatorProcess
from support.resources import make_secret, validation_summary
from support.trainerside import publish_artifact, write_progress

BUCKET = "bench"
EXIT_CODE = "kwok.kubetune.io/exit-code"
MESSAGE = "kwok.kubetune.io/message"


def _deadline(jobs: int, rate: float) -> float:
    """Generous: arrivals, plus a second per 2 jobs of backlog, plus start-up."""
    return (jobs / rate if rate else 0) + jobs / 2 + 120


def new_api(world: World) -> client.ApiClient:
    return config.new_client_from_config(config_file=str(world.cluster.info.kubeconfig))


@dataclass
class Scenario:
    """What one scenario measured; times are monotonic seconds."""

    applied: dict[str, float] = field(default_factory=dict)
    timeline: Timeline = field(default_factory=Timeline)
    started: float = 0.0
    wall: dict[str, float] = field(default_factory=dict)
    """Wall-clock (epoch) marks, to cut the audit log into phases."""
    complete: dict[str, bool] = field(default_factory=dict)


def run_baseline(world: World, jobs: int, rate: float) -> Scenario:
    result = Scenario()
    timeline = result.timeline

    def on_pod(event: Event) -> None:
        pod, name = event["object"], job_of(event["object"])
        if name is None:
            return
        timeline.mark("pod", name)
        if (pod.get("status") or {}).get("phase") in ("Running", "Succeeded"):
            timeline.mark("running", name)

    def on_job(event: Event) -> None:
        if has_condition(event["object"], "Complete"):
            timeline.mark("complete", event["object"]["metadata"]["name"])

    watchers = watch_namespace(
        lambda: new_api(world), BASELINE_NAMESPACE, {"pods": on_pod, "jobs": on_job}
    )
    batch = client.BatchV1Api(new_api(world))

    def create(index: int) -> None:
        name = f"job-{index:05d}"
        batch.create_namespaced_job(BASELINE_NAMESPACE, _plain_job(name))
        result.applied[name] = time.monotonic()

    result.started, result.wall["start"] = time.monotonic(), time.time()
    apply_at_rate(create, jobs, rate)
    deadline = _deadline(jobs, rate)
    result.complete["running"] = timeline.wait("running", jobs, deadline)
    result.complete["lifecycle"] = timeline.wait("complete", jobs, deadline)
    result.wall["end"] = time.time()
    for watcher in watchers:
        watcher.stop()
    return result


def _plain_job(name: str) -> dict[str, Any]:
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {"name": name},
        "spec": {
            "backoffLimit": 0,
            "template": {
                "metadata": {"annotations": {EXIT_CODE: "0"}},
                "spec": {
                    "restartPolicy": "Never",
                    "containers": [{"name": "main", "image": "registry.local/busybox:1"}],
                },
            },
        },
    }


def finetunejob(name: str, endpoint: str) -> dict[str, Any]:
    """A FineTuneJob with its own output prefix (so that no two share a run's artifact)."""
    return s3_finetunejob(name, BUCKET, endpoint, adapter=name, resources={"gpus": 1})


class ResourceSampler(threading.Thread):
    """CPU seconds and peak RSS of a process tree, sampled every ``interval`` seconds."""

    def __init__(self, pid: int, interval: float = 0.5) -> None:
        super().__init__(daemon=True, name="sampler")
        self.process, self.interval = psutil.Process(pid), interval
        self.peak_rss = 0
        self.idle_rss = self._rss()
        self.cpu_at_start = self._cpu()
        self.cpu_seconds = 0.0
        self._stop_flag = threading.Event()

    def _tree(self) -> list[psutil.Process]:
        return [self.process, *self.process.children(recursive=True)]

    def _rss(self) -> int:
        return sum(p.memory_info().rss for p in self._tree())

    def _cpu(self) -> float:
        return sum(sum(p.cpu_times()[:2]) for p in self._tree())

    def run(self) -> None:
        while not self._stop_flag.wait(self.interval):
            self.sample()

    def sample(self) -> None:
        try:
            self.peak_rss = max(self.peak_rss, self._rss())
            self.cpu_seconds = self._cpu() - self.cpu_at_start
        except psutil.NoSuchProcess:
            self._stop_flag.set()

    def stop(self) -> None:
        self.sample()
        self._stop_flag.set()


@dataclass
class Ours(Scenario):
    bodies: dict[str, dict[str, Any]] = field(default_factory=dict)
    training_pods: dict[str, str] = field(default_factory=dict)
    validated: dict[str, float] = field(default_factory=dict)
    """When the benchmark ended each validation pod (the trainer's verdict)."""
    sampler: ResourceSampler | None = None
    operator_log: Path | None = None
    errors: list[str] = field(default_factory=list)


def run_ours(
    world: World, jobs: int, rate: float, *, hold: float, progress_interval: float, log: Path
) -> Ours:
    result = Ours(operator_log=log)
    timeline, api = result.timeline, new_api(world)
    core = client.CoreV1Api(api)
    s3 = world.s3.client()
    s3.create_bucket(Bucket=BUCKET)
    make_secret(api, OURS_NAMESPACE, world.s3)
    pool = ThreadPoolExecutor(8)

    def finish_validation(pod: str, job: str) -> None:
        summary = json.dumps(validation_summary())
        patch = {"metadata": {"annotations": {EXIT_CODE: "0", MESSAGE: summary}}}
        core.patch_namespaced_pod(pod, OURS_NAMESPACE, patch)
        result.validated[job.removesuffix("-validate")] = time.monotonic()

    def on_pod(event: Event) -> None:
        pod, job = event["object"], job_of(event["object"])
        if job is None or (pod.get("status") or {}).get("phase") != "Running":
            return
        if timeline.mark("pod-running", job) and job.endswith("-validate"):
            pool.submit(_guarded, result, finish_validation, pod["metadata"]["name"], job)
        elif job.endswith("-train"):
            result.training_pods[job.removesuffix("-train")] = pod["metadata"]["name"]

    def on_ftj(event: Event) -> None:
        body = event["object"]
        name = body["metadata"]["name"]
        result.bodies[name] = body
        phase = (body.get("status") or {}).get("phase")
        if phase:
            timeline.mark(f"phase:{phase}", name)

    def on_job(event: Event) -> None:
        timeline.mark("job", event["object"]["metadata"]["name"])

    def on_adapter(event: Event) -> None:
        body = event["object"]
        if (body.get("status") or {}).get("phase") == "Ready":
            timeline.mark("adapter-ready", body["metadata"]["name"])

    watchers = watch_namespace(
        lambda: new_api(world),
        OURS_NAMESPACE,
        {"finetunejobs": on_ftj, "jobs": on_job, "pods": on_pod, "adapters": on_adapter},
    )
    operator = OperatorProcess(
        world.operator_kubeconfig,
        log,
        identity="bench",
        KUBETUNE_NAMESPACES=OURS_NAMESPACE,
        KUBETUNE_PROGRESS_INTERVAL=str(progress_interval),
        KUBETUNE_LOG_FORMAT="json",
    ).start()
    assert operator.proc is not None
    result.sampler = ResourceSampler(operator.proc.pid)
    result.sampler.start()
    custom = client.CustomObjectsApi(new_api(world))

    def create(index: int) -> None:
        name = f"ftj-{index:05d}"
        body = finetunejob(name, world.s3.endpoint)
        custom.create_namespaced_custom_object(
            "kubetune.io", "v1alpha1", OURS_NAMESPACE, "finetunejobs", body
        )
        result.applied[name] = time.monotonic()

    try:
        result.started, result.wall["start"] = time.monotonic(), time.time()
        apply_at_rate(create, jobs, rate)
        deadline = _deadline(jobs, rate)
        result.complete["running"] = timeline.wait("phase:Running", jobs, deadline)
        result.wall["running"] = time.time()
        for name in list(result.bodies):
            pool.submit(_guarded, result, _report_progress, s3, result.bodies[name])
        time.sleep(hold)  # the steady state under test: every job Running, the timer ticking
        result.wall["hold-end"] = time.time()
        finished = [
            pool.submit(_guarded, result, _finish_training, core, s3, result, name)
            for name in sorted(result.training_pods)
        ]
        for future in finished:
            future.result()
        result.complete["lifecycle"] = timeline.wait("adapter-ready", jobs, deadline)
        result.wall["end"] = time.time()
    finally:
        result.sampler.stop()
        operator.stop()
        pool.shutdown(wait=True)
        for watcher in watchers:
            watcher.stop()
            result.errors.extend(watcher.errors)
    return result


def _guarded(result: Ours, fn: Any, *args: Any) -> None:
    """Run a driver step; record (not raise) its error so one failure does not stop the run."""
    try:
        fn(*args)
    except Exception as exc:
        result.errors.append(f"{getattr(fn, '__name__', fn)}: {exc!r}"[:300])


def _report_progress(s3: Any, body: dict[str, Any]) -> None:
    job = FineTuneJob.model_validate(body)
    write_progress(
        s3, job.spec.output.uri, artifacts.run_id(job.spec), step=10, totalSteps=20, trainLoss=1.5
    )


def _finish_training(core: client.CoreV1Api, s3: Any, result: Ours, name: str) -> None:
    job = FineTuneJob.model_validate(result.bodies[name])
    publish_artifact(
        s3,
        job.spec.output.uri,
        artifacts.run_id(job.spec),
        {"adapter_model.safetensors": b"\x07" * 256},
    )
    summary = json.dumps({"phase": "Succeeded", "reason": "Completed", "message": "done"})
    patch = {"metadata": {"annotations": {EXIT_CODE: "0", MESSAGE: summary}}}
    core.patch_namespaced_pod(result.training_pods[name], OURS_NAMESPACE, patch)
