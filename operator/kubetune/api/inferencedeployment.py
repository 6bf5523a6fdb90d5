"""InferenceDeployment: serve a base model with adapters, rolling new adapter versions out
as canaries.

Clients ask for an adapter by its served ``name``; which Adapter object answers is
``adapterRef`` (pinned) or ``selector`` (the newest Ready Adapter of a family). When that
resolution changes, the new set is rolled out through ``rollout.steps``, checked by
``rollout.analysis``, and promoted or rolled back.
"""

from datetime import datetime
from enum import StrEnum
from itertools import pairwise
from typing import Annotated, ClassVar, Literal

from pydantic import Field

from kubetune.api._base import (
    Conditions,
    KubeModel,
    KubeObject,
    Rule,
    list_map,
    unique,
)
from kubetune.api._shared import ComputeResources, ModelSource
from kubetune.api._types import (
    DnsLabel,
    Duration,
    HttpUrl,
    Image,
    LabelValue,
    ObjectName,
    ServedName,
    Sha256Digest,
)


class RuntimeType(StrEnum):
    """The serving engine."""

    VLLM = "vllm"  # production: vLLM with --enable-lora
    KUBETUNE = "kubetune"  # the reference server (transformers + peft); runs on CPU


class RuntimeSpec(KubeModel):
    """The serving engine and how to run it."""

    type: RuntimeType = Field(RuntimeType.VLLM, description="vllm or kubetune.")
    image: Image | None = Field(
        None, description="Server image override. Unset: the operator's image for the type."
    )
    args: list[Annotated[str, Field(max_length=1024)]] | None = Field(
        None,
        max_length=64,
        description="Extra arguments for the server, appended after the operator's.",
    )
    max_lora_rank: int | None = Field(
        None,
        ge=1,
        le=512,
        description="The largest adapter rank served; an adapter of a larger rank is refused "
        "with RankTooLarge. vLLM gets --max-lora-rank rounded up to a rank it accepts (8, 16, "
        "32, 64, 128, 256, 320, 512). Unset: the largest rank among the served adapters.",
    )


class AdapterSelector(KubeModel):
    """Selects the newest Ready Adapter of a family."""

    family: DnsLabel = Field(
        description="Adapter family: the spec.adapter.name of the FineTuneJobs that train it."
    )
    match_labels: dict[str, LabelValue] | None = Field(
        None, max_length=16, description="Further labels the Adapter must carry."
    )


class ServedAdapter(KubeModel):
    """One adapter clients can request by name."""

    rules = (
        Rule(
            cel="has(self.adapterRef) != has(self.selector)",
            message="set exactly one of adapterRef and selector",
            holds=lambda s: (s.adapter_ref is None) != (s.selector is None),
        ),
    )

    name: ServedName = Field(
        description="The model name clients put in OpenAI-style requests, e.g. support-bot.",
    )
    adapter_ref: ObjectName | None = Field(
        None, description="A specific Adapter, by name, in this namespace."
    )
    selector: AdapterSelector | None = Field(
        None, description="The newest Ready Adapter matching this selector."
    )


class CanaryStep(KubeModel):
    """One step of a canary rollout."""

    weight: int = Field(ge=1, le=100, description="Percent of requests sent to the canary.")
    pause: Duration = Field(
        "5m", description="How long to hold this weight, with analysis running, e.g. 5m."
    )


class AnalysisSpec(KubeModel):
    """Metric checks that decide between promotion and rollback."""

    prometheus_url: HttpUrl | None = Field(
        None,
        description="Prometheus to query (its HTTP API, /api/v1/query). Unset: the "
        "operator's default (KUBETUNE_PROMETHEUS_URL); with neither, checks are "
        "inconclusive and the canary holds its step.",
    )
    interval: Duration = Field("1m", description="Time between checks.")
    max_error_rate: float = Field(
        0.01, gt=0, le=1, description="Highest tolerated fraction of failed canary requests."
    )
    max_p95_latency_ms: int | None = Field(
        None, gt=0, le=600_000, description="Highest tolerated p95 canary latency, in ms."
    )
    min_requests: int = Field(
        100, ge=1, le=1_000_000, description="Canary requests needed before a check counts."
    )
    failure_limit: int = Field(
        2, ge=1, le=100, description="Failed checks after which the canary is rolled back."
    )


class EvalGate(KubeModel):
    """An offline check before any traffic: the canary adapter's recorded evaluation loss
    (``Adapter.spec.metrics.evalLoss``) must not be worse than the stable one's."""

    max_eval_loss_increase: float = Field(
        0.0,
        ge=0,
        le=100,
        description="How much higher (absolute) the canary adapter's evalLoss may be than "
        "the stable adapter's of the same served name. Adapters without an evalLoss on "
        "either side are not compared.",
    )


class RolloutSpec(KubeModel):
    """How new adapter versions reach traffic."""

    rules = (
        Rule(
            cel="self.steps.map(s, s.weight).isSorted() "
            "&& self.steps.all(s, self.steps.exists_one(t, t.weight == s.weight))",
            message="steps: weights must be strictly increasing",
            holds=lambda s: all(a.weight < b.weight for a, b in pairwise(s.steps)),
            field_path=".steps",
        ),
    )

    steps: list[CanaryStep] = Field(
        min_length=1,
        max_length=20,
        description="Canary weights, strictly increasing within 1-100; after the last step "
        "the canary is promoted.",
    )
    analysis: AnalysisSpec | None = Field(
        None, description="Checks run during each step. Unset: promote after the pauses."
    )
    eval_gate: EvalGate | None = Field(
        None,
        description="Refuse, before any traffic, a canary whose adapter evaluated worse than "
        "the stable one. Unset: no offline check.",
    )


class GatewayRef(KubeModel):
    """The Gateway an HTTPRoute attaches to (gateway.networking.k8s.io parentRef)."""

    name: ObjectName = Field(description="Name of the Gateway.")
    namespace: DnsLabel | None = Field(
        None, description="Namespace of the Gateway. Unset: this object's namespace."
    )
    section_name: DnsLabel | None = Field(
        None, description="A listener of the Gateway. Unset: every listener that allows it."
    )


ServedAdapters = Annotated[
    list[ServedAdapter], unique("name"), Field(max_length=32, json_schema_extra=list_map("name"))
]


class InferenceDeploymentSpec(KubeModel):
    """The desired serving setup."""

    base_model: ModelSource = Field(description="The base model served.")
    runtime: RuntimeSpec = Field(default_factory=RuntimeSpec, description="The serving engine.")
    replicas: int = Field(1, ge=0, le=100, description="Serving pods of the stable version.")
    resources: ComputeResources = Field(
        default_factory=ComputeResources, description="Compute per serving pod."
    )
    adapters: ServedAdapters = Field(
        default_factory=list, description="Adapters served, by the names clients ask for."
    )
    rollout: RolloutSpec | None = Field(
        None, description="Canary rollout of adapter changes. Unset: replace at once."
    )
    gateway: GatewayRef | None = Field(
        None,
        description="For runtime vllm when the Gateway API is installed: the Gateway whose "
        "HTTPRoute splits traffic between the stable and canary pods by weight. Unset: the "
        "HTTPRoute attaches to this deployment's Service (service-mesh, GAMMA).",
    )


class InferenceDeploymentPhase(StrEnum):
    """Where an InferenceDeployment is in its life."""

    PROGRESSING = "Progressing"
    HEALTHY = "Healthy"
    DEGRADED = "Degraded"
    ROLLED_BACK = "RolledBack"


class ResolvedAdapter(KubeModel):
    """A served name and the Adapter it resolved to."""

    name: str = Field(description="The served model name.")
    adapter_ref: str = Field(description="The Adapter serving it.")
    digest: Sha256Digest | None = Field(None, description="The Adapter's verified digest.")


class RevisionStatus(KubeModel):
    """One set of adapters in service."""

    revision: str = Field(
        description="The resolved Adapter names, comma-separated, e.g. support-bot-v3."
    )
    adapters: list[ResolvedAdapter] = Field(
        default_factory=list, description="Served names and the Adapters behind them."
    )


class AnalysisResult(StrEnum):
    """The verdict of one analysis check."""

    PASSED = "Passed"
    FAILED = "Failed"
    INCONCLUSIVE = "Inconclusive"  # too few requests, or Prometheus could not answer


class TrafficRouting(StrEnum):
    """How requests are split between the stable and the canary adapters."""

    IN_POD = "InPod"  # runtime kubetune: weighted routes between versions inside the same pods
    GATEWAY = "Gateway"  # an HTTPRoute's backend weights (Gateway API installed)
    REPLICAS = "Replicas"  # one Service over both tracks, split by their replica counts


class AnalysisStatus(KubeModel):
    """The latest canary analysis."""

    result: AnalysisResult | None = Field(None, description="Verdict of the last check.")
    message: str | None = Field(
        None, max_length=1024, description="What the last check measured or why it could not."
    )
    failures: int = Field(0, ge=0, description="Failed checks so far in this rollout.")
    requests: int | None = Field(None, ge=0, description="Canary requests in the last check.")
    error_rate: float | None = Field(None, ge=0, description="Error rate in the last check.")
    p95_latency_ms: float | None = Field(None, ge=0, description="p95 latency in the last check.")
    last_checked_at: datetime | None = Field(None, description="When the last check ran.")


class CanaryStatus(RevisionStatus):
    """The adapter set being rolled out."""

    step: int = Field(0, ge=0, description="Index of the current rollout step.")
    weight: int = Field(0, ge=0, le=100, description="Percent of requests sent to it.")
    step_started_at: datetime | None = Field(None, description="When the current step began.")
    analysis: AnalysisStatus | None = Field(None, description="The latest analysis.")


class InferenceDeploymentStatus(KubeModel):
    """Observed state of an InferenceDeployment; written by the operator only."""

    phase: InferenceDeploymentPhase = Field(
        InferenceDeploymentPhase.PROGRESSING, description="Summary of the state."
    )
    conditions: Conditions = Field(
        default_factory=list, description="Available, Progressing, Degraded, with reasons."
    )
    observed_generation: int | None = Field(
        None, ge=0, description="The .metadata.generation this status describes."
    )
    replicas: int = Field(0, ge=0, description="Serving pods, stable and canary.")
    ready_replicas: int = Field(0, ge=0, description="Serving pods that are ready.")
    selector: str | None = Field(
        None, description="Label selector of the serving pods, for the scale subresource."
    )
    stable: RevisionStatus | None = Field(None, description="The adapter set in service.")
    canary: CanaryStatus | None = Field(None, description="The adapter set being rolled out.")
    routing: TrafficRouting | None = Field(
        None, description="How canary traffic is split: InPod, Gateway or Replicas."
    )
    rolled_back_revision: str | None = Field(
        None,
        description="The revision last rolled back (failed analysis, eval gate or abort); it "
        "is not retried until the resolved adapters change.",
    )
    endpoints: list[str] = Field(
        default_factory=list, description="Base URLs of the OpenAI-compatible API."
    )


class InferenceDeployment(KubeObject):
    """InferenceDeployment serves a base model with LoRA adapters and rolls new adapter
    versions out as canaries."""

    plural: ClassVar[str] = "inferencedeployments"
    short_names: ClassVar[tuple[str, ...]] = ("infd",)

    api_version: Literal["kubetune.io/v1alpha1"] = Field(
        "kubetune.io/v1alpha1", description="The API version of this object."
    )
    kind: Literal["InferenceDeployment"] = Field(
        "InferenceDeployment", description="The kind of this object."
    )
    spec: InferenceDeploymentSpec = Field(description="The desired serving setup.")
    status: InferenceDeploymentStatus | None = Field(
        None, description="Observed state, written by the operator."
    )
