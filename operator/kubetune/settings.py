"""The operator's settings: one object of small typed groups, read from the environment.

The Helm chart sets these variables; every default is what a single-namespace local install
needs, so ``kubetune operator`` runs with no configuration against a kubeconfig.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class Images:
    trainer: str = "ghcr.io/kubetune/trainer:0.1.0"
    """Image of training and validation pods unless a FineTuneJob sets spec.image."""
    runtime: str = "ghcr.io/kubetune/runtime:0.1.0"
    """Image of the reference (kubetune) serving runtime; also syncs adapters for vLLM."""
    vllm: str = "vllm/vllm-openai:v0.10.0"
    """Image of vLLM serving pods unless an InferenceDeployment sets runtime.image."""


@dataclass(frozen=True)
class Storage:
    endpoint: str | None = None
    """S3 endpoint for specs that set none (e.g. an in-cluster MinIO); None: AWS."""
    region: str | None = None
    """S3 region for specs that set none."""


@dataclass(frozen=True)
class Training:
    progress_interval: float = 15.0
    """Seconds between reads of a running job's progress from S3."""
    validation_cpu: str = "1"
    """CPU of the dataset validation pod, which runs before any GPU is requested."""
    validation_memory: str = "2Gi"
    """Memory of the dataset validation pod."""
    validation_deadline_seconds: int = 1800
    """Deadline of the validation Job."""
    validation_node_selector: dict[str, str] = field(default_factory=dict)
    """Where validation pods run: CPU nodes, chosen by the platform team."""
    validation_tolerations: tuple[dict[str, Any], ...] = ()
    """Tolerations of validation pods (e.g. for a tainted CPU pool)."""
    s3_retry_seconds: float | None = None
    """How long a trainer keeps retrying an unavailable S3 per operation before the run
    fails with S3Unavailable (KUBETUNE_S3_RETRY_SECONDS in its pods); None: the trainer's
    default, 300 s."""


@dataclass(frozen=True)
class Rollout:
    tick: float = 10.0
    """Seconds between rollout checks (pauses, analysis due) while a canary runs."""
    prometheus_url: str | None = None
    """Prometheus for canary analysis of specs that set no analysis.prometheusUrl."""
    query_timeout: float = 5.0
    """Seconds a Prometheus query may take before the check counts as inconclusive."""


@dataclass(frozen=True)
class Process:
    namespaces: tuple[str, ...] = ()
    """Namespaces to watch; empty: all (cluster-wide)."""
    metrics_port: int = 8080
    health_port: int = 8081
    leader_election: bool = True
    """Hold a Lease so that of several replicas only one acts."""
    lease_name: str = "kubetune-operator"
    lease_namespace: str = "default"
    identity: str = field(default_factory=lambda: os.uname().nodename)
    """This replica's name in the Lease (the pod name in a cluster)."""
    log_format: str = "json"


@dataclass(frozen=True)
class Settings:
    images: Images = field(default_factory=Images)
    storage: Storage = field(default_factory=Storage)
    training: Training = field(default_factory=Training)
    rollout: Rollout = field(default_factory=Rollout)
    process: Process = field(default_factory=Process)

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Settings:
        """Settings from KUBETUNE_* variables (and POD_NAME / POD_NAMESPACE); the validation
        pods' node selector and tolerations are JSON, as in a pod spec."""
        env = os.environ if env is None else env

        def get(name: str) -> str | None:
            return env.get(f"KUBETUNE_{name}") or None

        process = Process()
        return cls(
            images=Images(
                trainer=get("TRAINER_IMAGE") or Images.trainer,
                runtime=get("RUNTIME_IMAGE") or Images.runtime,
                vllm=get("VLLM_IMAGE") or Images.vllm,
            ),
            storage=Storage(endpoint=get("S3_ENDPOINT"), region=get("S3_REGION")),
            training=Training(
                progress_interval=float(get("PROGRESS_INTERVAL") or Training.progress_interval),
                validation_node_selector=json.loads(get("VALIDATION_NODE_SELECTOR") or "{}"),
                validation_tolerations=tuple(json.loads(get("VALIDATION_TOLERATIONS") or "[]")),
                s3_retry_seconds=_seconds("TRAINER_S3_RETRY_SECONDS", get),
            ),
            rollout=Rollout(
                tick=float(get("ROLLOUT_TICK") or Rollout.tick),
                prometheus_url=get("PROMETHEUS_URL"),
                query_timeout=float(get("PROMETHEUS_TIMEOUT") or Rollout.query_timeout),
            ),
            process=Process(
                namespaces=tuple(
                    n.strip() for n in (get("NAMESPACES") or "").split(",") if n.strip()
                ),
                metrics_port=int(get("METRICS_PORT") or Process.metrics_port),
                health_port=int(get("HEALTH_PORT") or Process.health_port),
                leader_election=(get("LEADER_ELECTION") or "true").lower() == "true",
                lease_namespace=env.get("POD_NAMESPACE") or Process.lease_namespace,
                identity=env.get("POD_NAME") or process.identity,
                log_format=get("LOG_FORMAT") or Process.log_format,
            ),
        )


def _seconds(name: str, get: Callable[[str], str | None]) -> float | None:
    """``KUBETUNE_<name>`` as a number of seconds >= 0; None when unset."""
    value = get(name)
    if value is None:
        return None
    try:
        seconds = float(value)
    except ValueError:
        seconds = -1.0
    if not seconds >= 0:
        raise ValueError(f"KUBETUNE_{name} must be a number of seconds >= 0, not {value!r}")
    return seconds
