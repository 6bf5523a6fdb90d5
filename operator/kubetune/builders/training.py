"""The objects behind one FineTuneJob: its config, the CPU validation Job, the training Job
and, for several nodes, the headless Service that torchrun's rendezvous resolves.

Pods hold no Kubernetes credentials (automountServiceAccountToken: false), run non-root
under the restricted Pod Security Standard, and see Secrets only as secretKeyRef
environment variables; the config they read is the FineTuneJob itself, with no secret in it.
"""

from __future__ import annotations

from typing import Any

import yaml

from kubetune.api import FineTuneJob, constants
from kubetune.builders import pods
from kubetune.builders.meta import child_metadata, child_name
from kubetune.settings import Settings

CONTAINER = "trainer"
CONFIG_DIR = "/etc/kubetune"
CONFIG_FILE = "job.yaml"
WORKDIR = "/workdir"
TERMINATION_PATH = "/dev/termination-log"
METRICS_PORT = 9090
RENDEZVOUS_PORT = 29500
KUEUE_QUEUE_LABEL = "kueue.x-k8s.io/queue-name"
# The trainer exits with this code when retrying cannot help (invalid data or spec, a
# missing base model, denied access); the Job's pod failure policy then fails at once.
PERMANENT_FAILURE_EXIT_CODE = 3


def config_map_name(job: FineTuneJob) -> str:
    return child_name(job.metadata["name"], "config")


def validation_job_name(job: FineTuneJob) -> str:
    return child_name(job.metadata["name"], "validate")


def training_job_name(job: FineTuneJob) -> str:
    return child_name(job.metadata["name"], "train")


def _owner(job: FineTuneJob) -> dict[str, Any]:
    return {"apiVersion": job.api_version, "kind": job.kind, "metadata": job.metadata}


def _owner_label(job: FineTuneJob) -> dict[str, str]:
    return {constants.LABEL_FINETUNEJOB: job.metadata["name"]}


def build_config_map(job: FineTuneJob) -> dict[str, Any]:
    """The FineTuneJob as the trainer reads it (``--config``): metadata trimmed, refs only."""
    document = {
        "apiVersion": job.api_version,
        "kind": job.kind,
        "metadata": {"name": job.metadata["name"], "namespace": job.metadata["namespace"]},
        "spec": job.spec.model_dump(mode="json", by_alias=True, exclude_none=True),
    }
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": child_metadata(
            _owner(job), config_map_name(job), "config", **_owner_label(job)
        ),
        "data": {CONFIG_FILE: yaml.safe_dump(document, sort_keys=False)},
    }


def _env(job: FineTuneJob, settings: Settings, run: str) -> list[dict[str, Any]]:
    spec = job.spec
    env: list[dict[str, Any]] = [
        {"name": "KUBETUNE_RUN_ID", "value": run},
        {"name": "KUBETUNE_WORKDIR", "value": WORKDIR},
        {"name": "KUBETUNE_TERMINATION_PATH", "value": TERMINATION_PATH},
        {"name": "HF_HOME", "value": f"{WORKDIR}/hf"},
        {"name": "TMPDIR", "value": f"{WORKDIR}/tmp"},
    ]
    if settings.storage.endpoint:
        env.append({"name": "AWS_ENDPOINT_URL", "value": settings.storage.endpoint})
    if settings.storage.region:
        env.append({"name": "AWS_REGION", "value": settings.storage.region})
    if settings.training.s3_retry_seconds is not None:
        seconds = f"{settings.training.s3_retry_seconds:g}"
        env.append({"name": "KUBETUNE_S3_RETRY_SECONDS", "value": seconds})
    for role, access in (
        ("BASE_MODEL", spec.base_model),
        ("DATASET", spec.dataset),
        ("OUTPUT", spec.output),
    ):
        env += pods.credential_env(f"KUBETUNE_S3_{role}_", access)
    return env + pods.token_env(spec.base_model.token_secret_ref)


def _pod_spec(
    job: FineTuneJob,
    settings: Settings,
    *,
    args: list[str],
    env: list[dict[str, Any]],
    resources: dict[str, Any],
    scheduling: dict[str, Any],
) -> dict[str, Any]:
    return {
        "restartPolicy": "Never",
        "automountServiceAccountToken": False,
        "enableServiceLinks": False,
        "securityContext": pods.pod_security_context(),
        **scheduling,
        "containers": [
            {
                "name": CONTAINER,
                "image": job.spec.image or settings.images.trainer,
                "command": ["kubetune-train"],
                "args": [*args, "--config", f"{CONFIG_DIR}/{CONFIG_FILE}"],
                "env": env,
                "resources": resources,
                "securityContext": pods.container_security_context(),
                "terminationMessagePath": TERMINATION_PATH,
                "terminationMessagePolicy": "FallbackToLogsOnError",
                "volumeMounts": [
                    {"name": "config", "mountPath": CONFIG_DIR, "readOnly": True},
                    {"name": "workdir", "mountPath": WORKDIR},
                    {"name": "dshm", "mountPath": "/dev/shm"},
                ],
            }
        ],
        "volumes": [
            {"name": "config", "configMap": {"name": config_map_name(job)}},
            {"name": "workdir", "emptyDir": {}},
            {"name": "dshm", "emptyDir": {"medium": "Memory"}},
        ],
    }


def build_validation_job(job: FineTuneJob, settings: Settings, run: str) -> dict[str, Any]:
    """A short CPU-only Job that validates the dataset before any GPU is requested."""
    cpu, memory = settings.training.validation_cpu, settings.training.validation_memory
    pod = _pod_spec(
        job,
        settings,
        args=["validate"],
        env=_env(job, settings, run),
        resources={
            "requests": {"cpu": cpu, "memory": memory},
            "limits": {"cpu": cpu, "memory": memory},
        },
        scheduling=_validation_scheduling(settings),
    )
    labels = _owner_label(job)
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": child_metadata(_owner(job), validation_job_name(job), "validation", **labels),
        "spec": {
            "backoffLimit": 1,
            "activeDeadlineSeconds": settings.training.validation_deadline_seconds,
            "podFailurePolicy": _pod_failure_policy(),
            "template": {"metadata": {"labels": dict(labels)}, "spec": pod},
        },
    }


def _validation_scheduling(settings: Settings) -> dict[str, Any]:
    scheduling: dict[str, Any] = {}
    if settings.training.validation_node_selector:
        scheduling["nodeSelector"] = dict(settings.training.validation_node_selector)
    if settings.training.validation_tolerations:
        scheduling["tolerations"] = list(settings.training.validation_tolerations)
    return scheduling


def _pod_failure_policy() -> dict[str, Any]:
    return {
        "rules": [
            # Preemption and node drains do not count against backoffLimit: the next attempt
            # resumes from the last checkpoint.
            {
                "action": "Ignore",
                "onPodConditions": [{"type": "DisruptionTarget", "status": "True"}],
            },
            {
                "action": "FailJob",
                "onExitCodes": {
                    "containerName": CONTAINER,
                    "operator": "In",
                    "values": [PERMANENT_FAILURE_EXIT_CODE],
                },
            },
        ]
    }


def _scheduling(job: FineTuneJob) -> dict[str, Any]:
    placement = pods.scheduling(job.spec.resources)
    if job.spec.priority_class_name:
        placement["priorityClassName"] = job.spec.priority_class_name
    return placement


def _rendezvous_env(job: FineTuneJob) -> list[dict[str, Any]]:
    name = training_job_name(job)
    index = "metadata.annotations['batch.kubernetes.io/job-completion-index']"
    return [
        {"name": "NNODES", "value": str(job.spec.resources.nodes)},
        {"name": "NODE_RANK", "valueFrom": {"fieldRef": {"fieldPath": index}}},
        {"name": "MASTER_ADDR", "value": f"{name}-0.{name}"},
        {"name": "MASTER_PORT", "value": str(RENDEZVOUS_PORT)},
    ]


def build_training_job(job: FineTuneJob, settings: Settings, run: str) -> dict[str, Any]:
    """The GPU training Job: Indexed with a stable hostname per pod when it spans nodes."""
    spec = job.spec
    nodes = spec.resources.nodes
    env = [*_env(job, settings, run), {"name": "KUBETUNE_METRICS_PORT", "value": str(METRICS_PORT)}]
    if nodes > 1:
        env += _rendezvous_env(job)
    scheduling = _scheduling(job)
    if nodes > 1:
        scheduling["subdomain"] = training_job_name(job)
    pod = _pod_spec(
        job,
        settings,
        args=["train"],
        env=env,
        resources=pods.resource_requirements(job.spec.resources),
        scheduling=scheduling,
    )
    pod["containers"][0]["ports"] = [{"name": "metrics", "containerPort": METRICS_PORT}]
    labels = _owner_label(job)
    metadata = child_metadata(_owner(job), training_job_name(job), "training", **labels)
    if spec.queue_name:
        metadata["labels"][KUEUE_QUEUE_LABEL] = spec.queue_name
    job_spec: dict[str, Any] = {
        "backoffLimit": spec.backoff_limit,
        # Kueue admits a Job by un-suspending it; without a queue it starts unless suspended.
        "suspend": spec.suspend or spec.queue_name is not None,
        "podFailurePolicy": _pod_failure_policy(),
        "template": {"metadata": {"labels": dict(labels)}, "spec": pod},
    }
    if spec.active_deadline_seconds:
        job_spec["activeDeadlineSeconds"] = spec.active_deadline_seconds
    if nodes > 1:
        job_spec.update(completionMode="Indexed", completions=nodes, parallelism=nodes)
    return {"apiVersion": "batch/v1", "kind": "Job", "metadata": metadata, "spec": job_spec}


def build_rendezvous_service(job: FineTuneJob) -> dict[str, Any]:
    """Headless Service giving each training pod a DNS name, for torchrun's rendezvous."""
    labels = _owner_label(job)
    name = training_job_name(job)
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": child_metadata(_owner(job), name, "rendezvous", **labels),
        "spec": {
            "clusterIP": "None",
            "publishNotReadyAddresses": True,
            "selector": {**labels, "batch.kubernetes.io/job-name": name},
            "ports": [{"name": "rendezvous", "port": RENDEZVOUS_PORT}],
        },
    }
