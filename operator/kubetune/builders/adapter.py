"""The Adapter a successful FineTuneJob publishes: the artifact, its digest and its lineage.

It carries no owner reference on purpose: an Adapter outlives the job that trained it (an
InferenceDeployment may serve it long after the job is cleaned up); lineage lives in
``spec.source`` instead.
"""

from __future__ import annotations

from typing import Any

from kubetune.api import FineTuneJob, constants
from kubetune.artifacts import Manifest
from kubetune.builders.meta import labels

_METRICS = {
    "train_loss": "trainLoss",
    "eval_loss": "evalLoss",
    "perplexity": "perplexity",
    "trained_tokens": "trainedTokens",
    "epochs": "epochs",
}


def adapter_name(job: FineTuneJob) -> str:
    return f"{job.spec.adapter.name}-{job.spec.adapter.version}"


def build_adapter(job: FineTuneJob, manifest: Manifest, uri: str, digest: str) -> dict[str, Any]:
    spec = job.spec
    output = spec.output.model_dump(mode="json", by_alias=True, exclude_none=True)
    output.pop("uri", None)
    metrics = {
        camel: manifest.metrics[name]
        for name, camel in _METRICS.items()
        if manifest.metrics.get(name) is not None
    }
    adapter_labels = labels(
        "adapter",
        **{
            constants.LABEL_FINETUNEJOB: job.metadata["name"],
            constants.LABEL_ADAPTER_FAMILY: spec.adapter.name,
            constants.LABEL_ADAPTER_VERSION: spec.adapter.version,
        },
    )
    dataset: dict[str, Any] = {"uri": spec.dataset.uri}
    if manifest.dataset.get("sha256"):
        dataset["sha256"] = manifest.dataset["sha256"]
    return {
        "apiVersion": constants.API_VERSION,
        "kind": "Adapter",
        "metadata": {
            "name": adapter_name(job),
            "namespace": job.metadata["namespace"],
            "labels": adapter_labels,
            "annotations": {constants.ANNOTATION_MANIFEST_DIGEST: digest},
        },
        "spec": {
            **output,
            "baseModel": {"name": spec.base_model.name, "revision": spec.base_model.revision},
            "uri": uri,
            "digest": digest,
            "lora": spec.lora.model_dump(mode="json", by_alias=True, exclude_none=True),
            **({"metrics": metrics} if metrics else {}),
            "source": {"fineTuneJob": job.metadata["name"], "dataset": dataset},
        },
    }
