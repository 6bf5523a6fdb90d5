"""Adapter: an immutable, verified LoRA artifact in S3 with its lineage.

The operator creates one when a FineTuneJob succeeds; a user may create one to import an
adapter trained elsewhere. Either way the spec is a claim ("these bytes, with this digest,
fit this base model") that the operator verifies before the Adapter becomes Ready, and that
cannot change afterwards: a different artifact is a different Adapter.
"""

from datetime import datetime
from enum import StrEnum
from typing import ClassVar, Literal

from pydantic import Field

from kubetune.api._base import Conditions, KubeModel, KubeObject, immutable
from kubetune.api._shared import LoraConfig, ModelIdentity, S3Access
from kubetune.api._types import DatasetUri, ObjectName, S3Uri, Sha256Digest, Sha256Hex


class AdapterMetrics(KubeModel):
    """Quality measures recorded at the end of training."""

    train_loss: float | None = Field(None, description="Final training loss.")
    eval_loss: float | None = Field(None, description="Final evaluation loss.")
    perplexity: float | None = Field(None, ge=0, description="exp(evalLoss).")
    trained_tokens: int | None = Field(None, ge=0, description="Tokens trained on.")
    epochs: float | None = Field(None, ge=0, description="Epochs trained.")


class DatasetLineage(KubeModel):
    """The exact data an adapter was trained on."""

    uri: DatasetUri = Field(description="Where the training data was read from.")
    sha256: Sha256Hex | None = Field(None, description="SHA-256 of the training data.")


class AdapterSource(KubeModel):
    """Where an adapter came from."""

    fine_tune_job: ObjectName | None = Field(
        None, description="The FineTuneJob that trained it, in this namespace."
    )
    dataset: DatasetLineage | None = Field(None, description="The data it was trained on.")


class DeletionPolicy(StrEnum):
    """What happens to the artifact in S3 when the Adapter is deleted."""

    RETAIN = "Retain"  # keep the objects; deleting the Adapter only forgets them
    DELETE = "Delete"  # delete the manifest and every file it lists


class AdapterSpec(S3Access):
    """The artifact and what it claims to be. Immutable."""

    base_model: ModelIdentity = Field(
        description="The base model (and revision) the adapter was trained on; it is only "
        "served on top of that model."
    )
    uri: S3Uri = Field(
        description="S3 prefix holding the adapter files and manifest.json, e.g. "
        "s3://adapters/support-bot/9f2c.../."
    )
    digest: Sha256Digest = Field(
        description="sha256:<hex> of manifest.json, which lists every file with its SHA-256."
    )
    lora: LoraConfig = Field(
        default_factory=LoraConfig, description="LoRA configuration of the adapter."
    )
    metrics: AdapterMetrics | None = Field(None, description="Quality measures from training.")
    source: AdapterSource | None = Field(None, description="Lineage: job and dataset.")
    deletion_policy: DeletionPolicy = Field(
        DeletionPolicy.RETAIN,
        description="Retain (default) keeps the S3 objects when the Adapter is deleted; Delete "
        "removes the manifest and every file it lists.",
    )


class AdapterPhase(StrEnum):
    """Where an Adapter is in its life."""

    PENDING = "Pending"
    VERIFYING = "Verifying"
    READY = "Ready"
    FAILED = "Failed"


class AdapterStatus(KubeModel):
    """Observed state of an Adapter; written by the operator only."""

    phase: AdapterPhase = Field(AdapterPhase.PENDING, description="Summary of the state.")
    conditions: Conditions = Field(
        default_factory=list, description="Verified and Ready, each with a reason."
    )
    observed_generation: int | None = Field(
        None, ge=0, description="The .metadata.generation this status describes."
    )
    verified_digest: Sha256Digest | None = Field(
        None, description="The manifest digest that was verified; equals spec.digest when Ready."
    )
    size_bytes: int | None = Field(None, ge=0, description="Total size of the adapter files.")
    files: int | None = Field(None, ge=0, description="Number of files in the manifest.")
    verified_at: datetime | None = Field(None, description="When verification last succeeded.")


class Adapter(KubeObject):
    """Adapter is an immutable, verified LoRA adapter artifact in S3 with its lineage."""

    plural: ClassVar[str] = "adapters"
    short_names: ClassVar[tuple[str, ...]] = ("adp",)

    api_version: Literal["kubetune.io/v1alpha1"] = Field(
        "kubetune.io/v1alpha1", description="The API version of this object."
    )
    kind: Literal["Adapter"] = Field("Adapter", description="The kind of this object.")
    spec: AdapterSpec = Field(
        description="The artifact and what it claims to be. Immutable.",
        json_schema_extra=immutable("spec"),
    )
    status: AdapterStatus | None = Field(
        None, description="Observed state, written by the operator."
    )
