"""Valid kubetune objects and a table of invalid variations of them.

The same table runs twice: against the pydantic models (tests/unit/api) and against the real
apiserver with the generated CRDs (tests/integration/test_crds.py). A case passes only if
both reject the object and both errors name the offending field, which is what keeps the
models and the CRDs from drifting apart.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
DELETE = object()
"""A change value that removes the field."""


def example(kind: str) -> dict[str, Any]:
    """The object in examples/<kind lowercased>.yaml."""
    return yaml.safe_load((EXAMPLES / f"{kind.lower()}.yaml").read_text())


def minimal(kind: str, name: str = "minimal") -> dict[str, Any]:
    """The smallest valid object of ``kind``: only required fields, everything else default."""
    specs: dict[str, dict[str, Any]] = {
        "FineTuneJob": {
            "baseModel": {"name": "Qwen/Qwen2.5-0.5B-Instruct"},
            "dataset": {"uri": "s3://datasets/train.jsonl"},
            "output": {"uri": "s3://adapters/minimal/"},
            "adapter": {"name": "minimal", "version": "v1"},
        },
        "Adapter": {
            "baseModel": {"name": "Qwen/Qwen2.5-0.5B-Instruct"},
            "uri": "s3://adapters/minimal/0001/",
            "digest": "sha256:" + "0" * 64,
        },
        "InferenceDeployment": {"baseModel": {"name": "Qwen/Qwen2.5-0.5B-Instruct"}},
    }
    return {
        "apiVersion": "kubetune.io/v1alpha1",
        "kind": kind,
        "metadata": {"name": name},
        "spec": specs[kind],
    }


def with_changes(obj: dict[str, Any], changes: dict[str, Any]) -> dict[str, Any]:
    """A deep copy of ``obj`` with each dotted path (``spec.rollout.steps.0.weight``) set to
    its value, or removed when the value is DELETE. Missing objects on the way are created;
    an index one past the end of a list appends."""
    out = copy.deepcopy(obj)
    for path, value in changes.items():
        *parents, last = [int(p) if p.isdigit() else p for p in path.split(".")]
        node: Any = out
        for key in parents:
            node = node[key] if isinstance(key, int) else node.setdefault(key, {})
        if value is DELETE:
            del node[last]
        elif isinstance(node, list) and last == len(node):
            node.append(copy.deepcopy(value))
        else:
            node[last] = copy.deepcopy(value)
    return out


@dataclass(frozen=True)
class Invalid:
    """An example object with ``changes`` that the API must reject, naming ``field``.

    ``field`` is a Kubernetes-style path (``spec.rollout.steps[0].weight``) for errors about
    one field, or the field's name for cross-field rules, whose message names it.
    ``unknown_field``: the apiserver prunes unknown fields silently unless the request asks
    for strict field validation, so those cases must be sent with fieldValidation=Strict.
    """

    id: str
    kind: str
    changes: dict[str, Any]
    field: str
    unknown_field: bool = False

    def object(self, name: str = "invalid") -> dict[str, Any]:
        obj = with_changes(example(self.kind), self.changes)
        obj["metadata"] = {"name": name}
        return obj


_FTJ = "FineTuneJob"
_ADP = "Adapter"
_INFD = "InferenceDeployment"

INVALID: tuple[Invalid, ...] = (
    # Method and quantization.
    Invalid("lora-forbids-quantization", _FTJ, {"spec.method": "lora"}, "quantization"),
    Invalid("unknown-method", _FTJ, {"spec.method": "full"}, "spec.method"),
    Invalid("quantization-bits-2", _FTJ, {"spec.quantization.bits": 2}, "spec.quantization.bits"),
    Invalid("nf4-needs-4-bits", _FTJ, {"spec.quantization.bits": 8}, "type"),
    Invalid(
        "fp4-needs-4-bits",
        _FTJ,
        {"spec.quantization.bits": 8, "spec.quantization.type": "fp4"},
        "type",
    ),
    Invalid(
        "unknown-quant-type", _FTJ, {"spec.quantization.type": "int4"}, "spec.quantization.type"
    ),
    Invalid("qlora-needs-a-gpu", _FTJ, {"spec.resources.gpus": 0}, "resources.gpus"),
    # LoRA.
    Invalid("lora-r-0", _FTJ, {"spec.lora.r": 0}, "spec.lora.r"),
    Invalid("lora-r-513", _FTJ, {"spec.lora.r": 513}, "spec.lora.r"),
    Invalid("lora-alpha-0", _FTJ, {"spec.lora.alpha": 0}, "spec.lora.alpha"),
    Invalid("lora-dropout-1", _FTJ, {"spec.lora.dropout": 1.0}, "spec.lora.dropout"),
    Invalid("lora-dropout-negative", _FTJ, {"spec.lora.dropout": -0.1}, "spec.lora.dropout"),
    Invalid(
        "all-linear-combined",
        _FTJ,
        {"spec.lora.targetModules": ["all-linear", "q_proj"]},
        "targetModules",
    ),
    Invalid(
        "duplicate-target-module",
        _FTJ,
        {"spec.lora.targetModules": ["q_proj", "q_proj"]},
        "spec.lora.targetModules",
    ),
    # Data and training.
    Invalid(
        "validation-split-half",
        _FTJ,
        {"spec.dataset.validationSplit": 0.5},
        "spec.dataset.validationSplit",
    ),
    Invalid(
        "validation-split-and-eval-uri",
        _FTJ,
        {"spec.dataset.evalUri": "s3://ml-datasets/support/2024-06/eval.jsonl"},
        "validationSplit",
    ),
    Invalid(
        "early-stopping-without-eval-data",
        _FTJ,
        {"spec.dataset.validationSplit": 0, "spec.training.evalSteps": DELETE},
        "earlyStopping",
    ),
    Invalid(
        "eval-steps-without-eval-data",
        _FTJ,
        {"spec.dataset.validationSplit": 0, "spec.training.earlyStopping": DELETE},
        "evalSteps",
    ),
    Invalid("epochs-and-max-steps", _FTJ, {"spec.training.maxSteps": 1000}, "maxSteps"),
    Invalid(
        "learning-rate-0", _FTJ, {"spec.training.learningRate": 0}, "spec.training.learningRate"
    ),
    Invalid(
        "learning-rate-1", _FTJ, {"spec.training.learningRate": 1}, "spec.training.learningRate"
    ),
    Invalid("warmup-ratio-1", _FTJ, {"spec.training.warmupRatio": 1}, "spec.training.warmupRatio"),
    Invalid(
        "unknown-scheduler",
        _FTJ,
        {"spec.training.scheduler": "cosine-ish"},
        "spec.training.scheduler",
    ),
    Invalid(
        "dataset-scheme",
        _FTJ,
        {"spec.dataset.uri": "gs://ml-datasets/train.jsonl"},
        "spec.dataset.uri",
    ),
    Invalid("dataset-sha256-not-hex", _FTJ, {"spec.dataset.sha256": "xyz"}, "spec.dataset.sha256"),
    Invalid("missing-dataset", _FTJ, {"spec.dataset": DELETE}, "spec.dataset"),
    # URIs and S3 buckets.
    Invalid(
        "model-uri-scheme",
        _FTJ,
        {"spec.baseModel.uri": "http://models/llama"},
        "spec.baseModel.uri",
    ),
    Invalid("output-not-s3", _FTJ, {"spec.output.uri": "https://bucket/prefix"}, "spec.output.uri"),
    Invalid(
        "bucket-uppercase", _FTJ, {"spec.output.uri": "s3://ML-adapters/x/"}, "spec.output.uri"
    ),
    Invalid("bucket-too-short", _FTJ, {"spec.output.uri": "s3://ab/x/"}, "spec.output.uri"),
    Invalid("bucket-too-long", _FTJ, {"spec.output.uri": f"s3://{'b' * 64}/x/"}, "spec.output.uri"),
    Invalid(
        "bucket-ends-with-hyphen", _FTJ, {"spec.output.uri": "s3://adapters-/x/"}, "spec.output.uri"
    ),
    Invalid(
        "bucket-underscore", _FTJ, {"spec.output.uri": "s3://ml_adapters/x/"}, "spec.output.uri"
    ),
    Invalid(
        "endpoint-not-url", _FTJ, {"spec.output.endpoint": "minio:9000"}, "spec.output.endpoint"
    ),
    # Resources.
    Invalid("nodes-0", _FTJ, {"spec.resources.nodes": 0}, "spec.resources.nodes"),
    Invalid("cpu-not-a-quantity", _FTJ, {"spec.resources.cpu": "lots"}, "spec.resources.cpu"),
    Invalid(
        "toleration-exists-with-value",
        _FTJ,
        {"spec.resources.tolerations.0.value": "present"},
        "value",
    ),
    # Names and secret references.
    Invalid(
        "adapter-name-not-dns-label",
        _FTJ,
        {"spec.adapter.name": "Support_Bot"},
        "spec.adapter.name",
    ),
    Invalid("adapter-name-too-long", _FTJ, {"spec.adapter.name": "a" * 64}, "spec.adapter.name"),
    Invalid(
        "adapter-version-too-long", _FTJ, {"spec.adapter.version": "v" * 64}, "spec.adapter.version"
    ),
    Invalid(
        "secret-ref-namespace",
        _FTJ,
        {"spec.output.credentialsSecretRef.namespace": "kube-system"},
        "spec.output.credentialsSecretRef.namespace",
        unknown_field=True,
    ),
    Invalid(
        "token-secret-ref-namespace",
        _FTJ,
        {"spec.baseModel.tokenSecretRef.namespace": "kube-system"},
        "spec.baseModel.tokenSecretRef.namespace",
        unknown_field=True,
    ),
    Invalid("unknown-spec-field", _FTJ, {"spec.epochs": 3}, "spec.epochs", unknown_field=True),
    # Adapter.
    Invalid("digest-not-sha256", _ADP, {"spec.digest": "md5:" + "0" * 32}, "spec.digest"),
    Invalid("adapter-uri-not-s3", _ADP, {"spec.uri": "pvc://adapters/x"}, "spec.uri"),
    Invalid("adapter-lora-r-1024", _ADP, {"spec.lora.r": 1024}, "spec.lora.r"),
    Invalid(
        "adapter-secret-ref-namespace",
        _ADP,
        {"spec.credentialsSecretRef.namespace": "kube-system"},
        "spec.credentialsSecretRef.namespace",
        unknown_field=True,
    ),
    # InferenceDeployment.
    Invalid(
        "steps-decreasing",
        _INFD,
        {"spec.rollout.steps.0.weight": 60},
        "steps",
    ),
    Invalid("steps-repeated", _INFD, {"spec.rollout.steps.1.weight": 10}, "steps"),
    Invalid(
        "step-weight-0", _INFD, {"spec.rollout.steps.0.weight": 0}, "spec.rollout.steps[0].weight"
    ),
    Invalid(
        "step-weight-101",
        _INFD,
        {"spec.rollout.steps.1.weight": 101},
        "spec.rollout.steps[1].weight",
    ),
    Invalid(
        "step-pause-not-duration",
        _INFD,
        {"spec.rollout.steps.0.pause": "5 minutes"},
        "spec.rollout.steps[0].pause",
    ),
    Invalid("no-steps", _INFD, {"spec.rollout.steps": []}, "spec.rollout.steps"),
    Invalid(
        "error-rate-0",
        _INFD,
        {"spec.rollout.analysis.maxErrorRate": 0},
        "spec.rollout.analysis.maxErrorRate",
    ),
    Invalid(
        "latency-0",
        _INFD,
        {"spec.rollout.analysis.maxP95LatencyMs": 0},
        "spec.rollout.analysis.maxP95LatencyMs",
    ),
    Invalid(
        "min-requests-0",
        _INFD,
        {"spec.rollout.analysis.minRequests": 0},
        "spec.rollout.analysis.minRequests",
    ),
    Invalid(
        "failure-limit-0",
        _INFD,
        {"spec.rollout.analysis.failureLimit": 0},
        "spec.rollout.analysis.failureLimit",
    ),
    Invalid(
        "adapter-ref-and-selector",
        _INFD,
        {"spec.adapters.1.selector": {"family": "sql-helper"}},
        "adapterRef",
    ),
    Invalid(
        "neither-ref-nor-selector", _INFD, {"spec.adapters.1.adapterRef": DELETE}, "adapterRef"
    ),
    Invalid(
        "duplicate-served-name",
        _INFD,
        {"spec.adapters.1.name": "support-bot"},
        "spec.adapters",
    ),
    Invalid("unknown-runtime", _INFD, {"spec.runtime.type": "tgi"}, "spec.runtime.type"),
    Invalid(
        "max-lora-rank-1024", _INFD, {"spec.runtime.maxLoraRank": 1024}, "spec.runtime.maxLoraRank"
    ),
)


@dataclass(frozen=True)
class Valid:
    """An example object with ``changes`` that the API must accept: the good side of each
    rule in INVALID, so that no rule is satisfied merely by rejecting everything."""

    id: str
    kind: str
    changes: dict[str, Any]

    def object(self, name: str = "valid") -> dict[str, Any]:
        obj = with_changes(example(self.kind), self.changes)
        obj["metadata"] = {"name": name}
        return obj


VALID: tuple[Valid, ...] = (
    Valid("example-finetunejob", _FTJ, {}),
    Valid("example-adapter", _ADP, {}),
    Valid("example-inferencedeployment", _INFD, {}),
    Valid(
        "plain-lora-on-cpu",
        _FTJ,
        {"spec.method": "lora", "spec.quantization": DELETE, "spec.resources.gpus": 0},
    ),
    Valid("qlora-default-quantization", _FTJ, {"spec.quantization": DELETE}),
    Valid("8-bit-without-type", _FTJ, {"spec.quantization": {"bits": 8}}),
    Valid("fp4", _FTJ, {"spec.quantization.type": "fp4"}),
    Valid("lora-r-bounds", _FTJ, {"spec.lora.r": 512, "spec.lora.dropout": 0}),
    Valid("named-target-modules", _FTJ, {"spec.lora.targetModules": ["q_proj", "v_proj"]}),
    Valid(
        "max-steps-instead-of-epochs",
        _FTJ,
        {"spec.training.epochs": DELETE, "spec.training.maxSteps": 500},
    ),
    Valid(
        "eval-uri-instead-of-split",
        _FTJ,
        {
            "spec.dataset.validationSplit": 0,
            "spec.dataset.evalUri": "pvc://datasets/support/eval.jsonl",
        },
    ),
    Valid(
        "no-evaluation",
        _FTJ,
        {
            "spec.dataset.validationSplit": 0,
            "spec.training.evalSteps": DELETE,
            "spec.training.earlyStopping": DELETE,
        },
    ),
    Valid("split-just-below-half", _FTJ, {"spec.dataset.validationSplit": 0.49}),
    Valid("hf-model-uri", _FTJ, {"spec.baseModel.uri": "hf://meta-llama/Llama-3.1-8B-Instruct"}),
    Valid("s3-model-uri", _FTJ, {"spec.baseModel.uri": "s3://models/llama-3.1-8b/"}),
    Valid("pvc-model-uri", _FTJ, {"spec.baseModel.uri": "pvc://model-cache/llama-3.1-8b"}),
    Valid("bucket-with-dots-and-digits", _FTJ, {"spec.output.uri": "s3://ml.adapters-2024/a/b/"}),
    Valid("bucket-without-prefix", _FTJ, {"spec.output.uri": "s3://abc"}),
    Valid("minio-endpoint", _FTJ, {"spec.output.endpoint": "http://127.0.0.1:9000"}),
    Valid("quantities", _FTJ, {"spec.resources.cpu": "500m", "spec.resources.memory": 68719476736}),
    Valid(
        "toleration-equal", _FTJ, {"spec.resources.tolerations.0": {"key": "gpu", "value": "a100"}}
    ),
    Valid("dotted-version", _FTJ, {"spec.adapter.version": "2024.06.1"}),
    Valid("steps-to-100", _INFD, {"spec.rollout.steps.2": {"weight": 100}}),
    Valid("one-step", _INFD, {"spec.rollout.steps": [{"weight": 1}]}),
    Valid("no-analysis", _INFD, {"spec.rollout.analysis": DELETE}),
    Valid(
        "pinned-adapters-only",
        _INFD,
        {"spec.adapters.0": {"name": "support-bot", "adapterRef": "support-bot-v3"}},
    ),
    Valid(
        "kubetune-runtime-on-cpu",
        _INFD,
        {"spec.runtime": {"type": "kubetune"}, "spec.resources.gpus": 0},
    ),
)
