"""Rollouts judged by metrics: a real Prometheus scraping a real reference runtime.

The runtime serves the tiny model with the adapters the operator's ConfigMap names; clients
ask for ``support-bot``; the operator's in-pod canary splits those requests between the
stable and canary versions, and its analysis reads their error rate and latency from
Prometheus. A healthy canary is promoted step by step; a canary whose weights diverged to
NaN (every sampled request to it fails with 500) is rolled back after ``failureLimit``
failed checks, before it ever takes all of the traffic.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client

from localcluster import S3Info
from localcluster.prometheus import PrometheusServer
from support.loras import TINY_BASE, make_lora, write_manifest
from support.polling import eventually
from support.servingpod import ServingPod
from support.tinymodel import build_tiny_model

from .conftest import Adapters, Deployed, conditions


@pytest.fixture(scope="module")
def prometheus(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PrometheusServer]:
    server = PrometheusServer(tmp_path_factory.mktemp("prometheus")).up()
    yield server
    server.down()


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_tiny_model(tmp_path_factory.mktemp("tiny") / "model")


def _poison(directory: Path) -> Path:
    """Turn a LoRA's B matrices to NaN, as a diverged training run leaves them."""
    import json

    import torch
    from safetensors.torch import load_file, save_file

    weights_path = directory / "adapter_model.safetensors"
    weights = load_file(weights_path)
    save_file(
        {k: torch.full_like(v, float("nan")) if "lora_B" in k else v for k, v in weights.items()},
        weights_path,
    )
    manifest = json.loads((directory / "manifest.json").read_text())
    write_manifest(directory, base=manifest["base_model"], lora=manifest["lora"])
    return directory


@pytest.fixture(scope="module")
def loras(tiny_model: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("loras")
    return {
        "healthy-1": make_lora(tiny_model, root / "healthy-1", seed=1),
        "healthy-2": make_lora(tiny_model, root / "healthy-2", seed=2),
        "diverged": _poison(make_lora(tiny_model, root / "diverged", seed=3)),
    }


@pytest.fixture
def serving_pod(
    api_client: client.ApiClient,
    tiny_model: Path,
    s3: S3Info,
    prometheus: PrometheusServer,
    tmp_path: Path,
) -> Iterator[Callable[[Deployed], ServingPod]]:
    started: list[ServingPod] = []

    def start(infd: Deployed) -> ServingPod:
        pod = ServingPod(
            api_client, infd.namespace, infd.name,
            model=tiny_model, root=tmp_path / "pod", s3=s3, prometheus=prometheus,
        )  # fmt: skip
        started.append(pod)
        return pod.start()

    yield start
    for pod in started:
        pod.stop()


def _analysis(prometheus: PrometheusServer, **overrides: Any) -> dict[str, Any]:
    return {
        "prometheusUrl": prometheus.url,
        "interval": "3s",
        "maxErrorRate": 0.2,
        "maxP95LatencyMs": 30_000,
        "minRequests": 3,
        "failureLimit": 2,
        **overrides,
    }


def _serving(pod: ServingPod, versions: set[str]) -> bool:
    """Whether the runtime has applied a config holding exactly ``versions``."""
    state = pod.state()
    loaded = {a["version"] for a in state["adapters"] if a["state"] == "Loaded"}
    return loaded == versions and not state.get("pending")


def test_a_healthy_canary_passes_its_checks_and_is_promoted(
    adapters: Adapters,
    deploy: Callable[..., Deployed],
    loras: dict[str, Path],
    prometheus: PrometheusServer,
    serving_pod: Callable[[Deployed], ServingPod],
) -> None:
    adapters.publish("support-bot-v1", directory=loras["healthy-1"], base=TINY_BASE, rank=4)
    infd = deploy(
        base=TINY_BASE,
        rollout={
            "steps": [{"weight": 30, "pause": "3s"}, {"weight": 60, "pause": "3s"}],
            "analysis": _analysis(prometheus),
        },
    )
    infd.wait(lambda s: s.get("phase") == "Healthy", "v1 Healthy")
    pod = serving_pod(infd)
    pod.send_traffic("support-bot")

    adapters.publish("support-bot-v2", directory=loras["healthy-2"], base=TINY_BASE, rank=4)
    checked = infd.wait(
        lambda s: ((s.get("canary") or {}).get("analysis") or {}).get("result") == "Passed",
        "a passed check, recorded in status",
        timeout=90,
    )
    analysis = checked["canary"]["analysis"]
    assert analysis["requests"] >= 3
    assert analysis["errorRate"] == 0
    assert analysis["p95LatencyMs"] > 0

    status = infd.wait(
        lambda s: s.get("stable", {}).get("revision") == "support-bot-v2", "promoted", timeout=90
    )
    assert conditions(status)["Progressing"] == ("False", "Promoted")
    assert infd.event_reasons().count("CanaryProgressing") == 2
    assert any(version == "support-bot-v2" and code == 200 for version, code in pod.statuses)


def test_a_failing_canary_is_rolled_back_on_its_metrics(
    adapters: Adapters,
    deploy: Callable[..., Deployed],
    loras: dict[str, Path],
    prometheus: PrometheusServer,
    serving_pod: Callable[[Deployed], ServingPod],
) -> None:
    adapters.publish("support-bot-v1", directory=loras["healthy-1"], base=TINY_BASE, rank=4)
    infd = deploy(
        base=TINY_BASE,
        rollout={"steps": [{"weight": 50, "pause": "1h"}], "analysis": _analysis(prometheus)},
    )
    infd.wait(lambda s: s.get("phase") == "Healthy", "v1 Healthy")
    pod = serving_pod(infd)
    pod.send_traffic("support-bot")

    adapters.publish("support-bot-v3", directory=loras["diverged"], base=TINY_BASE, rank=4)
    first = infd.wait(
        lambda s: ((s.get("canary") or {}).get("analysis") or {}).get("failures") == 1,
        "the first failed check, recorded in status",
        timeout=90,
    )
    assert first["canary"]["analysis"]["result"] == "Failed"
    assert first["canary"]["analysis"]["errorRate"] > 0.2

    status = infd.wait(lambda s: s.get("phase") == "RolledBack", "RolledBack", timeout=60)
    assert status["stable"]["revision"] == "support-bot-v1"
    assert status["rolledBackRevision"] == "support-bot-v3"
    degraded = next(c for c in status["conditions"] if c["type"] == "Degraded")
    assert (degraded["status"], degraded["reason"]) == ("True", "AnalysisFailed")
    assert "error rate" in degraded["message"]
    reasons = infd.event_reasons()
    assert reasons.index("AnalysisFailed") < reasons.index("RolledBack")
    assert infd.routes() == {"support-bot": {"support-bot-v1": 100}}
    assert any(code == 500 for _, code in pod.statuses)  # the canary really failed
    # The pod follows: the diverged version is unloaded and every request succeeds again.
    infd.wait(lambda _: _serving(pod, {"support-bot-v1"}), "runtime back on v1 only", timeout=30)
    since = len(pod.statuses)
    after = eventually(lambda: pod.statuses[since + 5 :], what="requests after the rollback")
    assert all(code == 200 for _, code in after)
