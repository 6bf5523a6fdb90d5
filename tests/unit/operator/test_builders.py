"""Manifests built from a FineTuneJob: deterministic, least-privileged, complete."""

from __future__ import annotations

import pytest
import yaml

from kubetune.artifacts import Manifest, ManifestFile
from kubetune.builders.adapter import build_adapter
from kubetune.builders.meta import child_name
from kubetune.builders.training import (
    build_config_map,
    build_rendezvous_service,
    build_training_job,
    build_validation_job,
)
from kubetune.settings import Settings, Storage
from support.factories import make_finetunejob

SETTINGS = Settings()
RUN = "0123456789abcdef"


def _container(manifest: dict) -> dict:
    (container,) = manifest["spec"]["template"]["spec"]["containers"]
    return container


def test_builders_are_deterministic() -> None:
    job = make_finetunejob()
    assert build_training_job(job, SETTINGS, RUN) == build_training_job(job, SETTINGS, RUN)
    assert build_config_map(job) == build_config_map(job)


def test_training_pods_hold_no_credentials_and_run_restricted() -> None:
    pod = build_training_job(make_finetunejob(), SETTINGS, RUN)["spec"]["template"]["spec"]
    assert pod["automountServiceAccountToken"] is False
    assert pod["securityContext"]["runAsNonRoot"] is True
    container = pod["containers"][0]
    assert container["securityContext"] == {
        "allowPrivilegeEscalation": False,
        "readOnlyRootFilesystem": True,
        "runAsNonRoot": True,
        "capabilities": {"drop": ["ALL"]},
        "seccompProfile": {"type": "RuntimeDefault"},
    }
    secrets = [e for e in container["env"] if "valueFrom" in e]
    assert secrets, "credentials come by reference"
    assert all("value" not in e for e in secrets)
    assert {e["valueFrom"]["secretKeyRef"]["name"] for e in secrets} == {"s3-creds"}


def test_the_config_map_is_the_spec_and_nothing_secret() -> None:
    job = make_finetunejob(
        baseModel={"name": "org/m", "tokenSecretRef": {"name": "hf", "key": "token"}}
    )
    document = yaml.safe_load(build_config_map(job)["data"]["job.yaml"])
    assert document["kind"] == "FineTuneJob"
    assert document["spec"]["baseModel"]["tokenSecretRef"] == {"name": "hf", "key": "token"}
    assert set(document["metadata"]) == {"name", "namespace"}


def test_validation_requests_no_gpu_and_cannot_run_long() -> None:
    job = build_validation_job(make_finetunejob(resources={"gpus": 8}), SETTINGS, RUN)
    container = _container(job)
    assert "nvidia.com/gpu" not in container["resources"]["limits"]
    assert container["args"][0] == "validate"
    assert job["spec"]["activeDeadlineSeconds"] == SETTINGS.training.validation_deadline_seconds


@pytest.mark.parametrize(
    ("spec", "check"),
    [
        (
            {"resources": {"gpus": 4, "gpuType": "NVIDIA-A100", "cpu": "16", "memory": "128Gi"}},
            lambda j: (
                _container(j)["resources"]
                == {
                    "requests": {"cpu": "16", "memory": "128Gi"},
                    "limits": {"nvidia.com/gpu": "4", "cpu": "16", "memory": "128Gi"},
                }
                and j["spec"]["template"]["spec"]["nodeSelector"]
                == {"nvidia.com/gpu.product": "NVIDIA-A100"}
            ),
        ),
        (
            {
                "resources": {
                    "gpus": 1,
                    "tolerations": [{"key": "nvidia.com/gpu", "operator": "Exists"}],
                }
            },
            lambda j: (
                j["spec"]["template"]["spec"]["tolerations"]
                == [{"key": "nvidia.com/gpu", "operator": "Exists"}]
            ),
        ),
        (
            {"queueName": "team-gpus"},
            lambda j: (
                j["spec"]["suspend"] is True
                and j["metadata"]["labels"]["kueue.x-k8s.io/queue-name"] == "team-gpus"
            ),
        ),
        ({"suspend": True}, lambda j: j["spec"]["suspend"] is True),
        (
            {"activeDeadlineSeconds": 3600, "backoffLimit": 5},
            lambda j: (j["spec"]["activeDeadlineSeconds"], j["spec"]["backoffLimit"]) == (3600, 5),
        ),
        (
            {"priorityClassName": "high"},
            lambda j: j["spec"]["template"]["spec"]["priorityClassName"] == "high",
        ),
        (
            {"image": "registry.example/trainer:2"},
            lambda j: _container(j)["image"] == "registry.example/trainer:2",
        ),
    ],
    ids=["resources", "tolerations", "kueue", "suspend", "limits", "priority", "image"],
)
def test_training_job_fields(spec: dict, check) -> None:
    assert check(build_training_job(make_finetunejob(**spec), SETTINGS, RUN))


def test_several_nodes_make_an_indexed_job_with_a_rendezvous() -> None:
    job = make_finetunejob(resources={"gpus": 8, "nodes": 4})
    manifest = build_training_job(job, SETTINGS, RUN)
    assert (
        manifest["spec"]["completionMode"],
        manifest["spec"]["completions"],
        manifest["spec"]["parallelism"],
    ) == ("Indexed", 4, 4)
    assert manifest["spec"]["template"]["spec"]["subdomain"] == "support-bot-train"
    env = {e["name"]: e for e in _container(manifest)["env"]}
    assert env["MASTER_ADDR"]["value"] == "support-bot-train-0.support-bot-train"
    assert env["NNODES"]["value"] == "4"
    assert "job-completion-index" in env["NODE_RANK"]["valueFrom"]["fieldRef"]["fieldPath"]
    service = build_rendezvous_service(job)
    assert service["spec"]["clusterIP"] == "None"
    assert service["metadata"]["name"] == "support-bot-train"


def test_operator_default_endpoint_reaches_the_pod_only_when_set() -> None:
    def env(settings: Settings) -> set[str]:
        job = build_training_job(make_finetunejob(), settings, RUN)
        return {e["name"] for e in _container(job)["env"]}

    assert "AWS_ENDPOINT_URL" not in env(SETTINGS)
    assert "AWS_ENDPOINT_URL" in env(Settings(storage=Storage(endpoint="http://minio:9000")))


@pytest.mark.parametrize("owner", ["a", "x" * 50, "y" * 63, "z" * 253])
def test_child_names_fit_a_label_and_stay_distinct(owner: str) -> None:
    name = child_name(owner, "train")
    assert len(name) <= 63
    assert name.endswith("-train")
    assert child_name(owner, "train") == name
    assert child_name(owner + "q", "train") != name


def test_the_adapter_records_lineage_and_carries_no_owner() -> None:
    job = make_finetunejob()
    manifest = Manifest(
        run_id=RUN,
        base_model={"name": "meta-llama/Llama-3.1-8B-Instruct"},
        lora={"r": 16},
        files=[ManifestFile(path="adapter_model.safetensors", sha256="a" * 64, size=10)],
        metrics={"eval_loss": 1.5, "train_loss": 1.2},
        dataset={"sha256": "b" * 64},
        trainer_version="0.1.0",
        created_at="2026-11-29T00:00:00Z",
    )
    adapter = build_adapter(
        job, manifest, "s3://adapters/support-bot/x/adapter/", "sha256:" + "c" * 64
    )
    assert adapter["metadata"]["name"] == "support-bot-v3"
    assert "ownerReferences" not in adapter["metadata"]
    assert adapter["spec"]["metrics"] == {"evalLoss": 1.5, "trainLoss": 1.2}
    assert adapter["spec"]["source"] == {
        "fineTuneJob": "support-bot",
        "dataset": {"uri": "s3://data/train.jsonl", "sha256": "b" * 64},
    }
    assert adapter["spec"]["credentialsSecretRef"] == {"name": "s3-creds"}


def test_validation_pods_go_where_the_platform_team_says() -> None:
    settings = Settings.from_env(
        {
            "KUBETUNE_VALIDATION_NODE_SELECTOR": '{"kubetune.io/pool": "cpu"}',
            "KUBETUNE_VALIDATION_TOLERATIONS": '[{"key": "pool", "operator": "Exists"}]',
        }
    )
    pod = build_validation_job(make_finetunejob(), settings, RUN)["spec"]["template"]["spec"]
    assert pod["nodeSelector"] == {"kubetune.io/pool": "cpu"}
    assert pod["tolerations"] == [{"key": "pool", "operator": "Exists"}]
    assert (
        "nodeSelector"
        not in build_validation_job(make_finetunejob(), SETTINGS, RUN)["spec"]["template"]["spec"]
    )
