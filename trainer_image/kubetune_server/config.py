"""The runtime's desired state: which adapter versions to hold and how served names route to them.

This document is the contract between the InferenceDeployment controller and the reference
runtime. The controller renders it into a ConfigMap mounted at ``--config`` (re-read whenever
its content changes); the same document can be PUT to ``/v1/admin/config``. Keys are camelCase,
like the CRDs::

    generation: 7                      # echoed back as appliedGeneration once in effect
    adapters:
      - version: support-bot-v3        # immutable version name (the Adapter object's name)
        uri: s3://adapters/support-bot/9f2c/
        digest: sha256:3b1f...         # sha256 of manifest.json, as in Adapter.spec.digest
        s3: {endpoint: "http://minio.storage:9000", credentialsSecret: s3-creds}
      - version: support-bot-v4
        uri: s3://adapters/support-bot/a81e/
        digest: sha256:77c0...
    routes:
      support-bot: {support-bot-v3: 90, support-bot-v4: 10}   # stable first, canary last

Every adapter is also served under its version name. Weights are relative (they need not sum
to 100); a weight of 0 keeps a version loaded but sends it no traffic by served name. The
order of a route's versions matters for sticky routing (see :mod:`kubetune_server.routing`):
list the stable version first and the canary last, so that raising the canary's weight only
ever moves users from stable to canary.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

from pydantic import Field, model_validator

from kubetune.api import KubeModel
from kubetune.api._types import HttpUrl, ServedName, Sha256Digest

VersionName = Annotated[
    str, Field(pattern=r"^[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?$", max_length=253)
]
"""An immutable adapter version, e.g. support-bot-v3; a metric label value."""

SecretName = Annotated[
    str,
    Field(
        pattern=r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$", max_length=253
    ),
]


class S3Location(KubeModel):
    """How to reach the S3-compatible store holding an adapter."""

    endpoint: HttpUrl | None = Field(
        None, description="S3 endpoint, e.g. http://minio.storage:9000. Unset: AWS S3."
    )
    region: str | None = Field(None, pattern=r"^[a-z0-9-]+$", max_length=32)
    credentials_secret: SecretName | None = Field(
        None,
        description="A Secret mounted at <--s3-credentials-dir>/<name>/ with the files "
        "AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY (and optionally AWS_SESSION_TOKEN). "
        "Unset: the ambient AWS credential chain.",
    )


class AdapterSource(KubeModel):
    """One adapter version to hold in memory."""

    version: VersionName = Field(description="Immutable version name, e.g. support-bot-v3.")
    uri: str = Field(
        min_length=1,
        max_length=1024,
        pattern=r"^(s3://[a-z0-9][a-z0-9.-]{1,61}[a-z0-9](/\S*)?|/\S*)$",
        description="s3://bucket/prefix/ holding the adapter files and manifest.json, or an "
        "absolute local directory (already synced, e.g. by an init container).",
    )
    digest: Sha256Digest | None = Field(
        None,
        description="Expected sha256:<hex> of manifest.json. Unset: the manifest is trusted "
        "as found (its files are still verified against it).",
    )
    s3: S3Location | None = Field(None, description="Store access for an s3:// uri.")


Weights = dict[VersionName, Annotated[int, Field(ge=0, le=1_000_000)]]


class ServingConfig(KubeModel):
    """The whole desired state; replaces the previous one when applied."""

    generation: int | None = Field(
        None, ge=0, description="Opaque number echoed as appliedGeneration once in effect."
    )
    adapters: list[AdapterSource] = Field(default_factory=list, max_length=256)
    routes: dict[ServedName, Weights] = Field(
        default_factory=dict,
        description="Served name -> {version: weight}; requests for the served name are "
        "split between its versions in proportion to the weights.",
    )

    @model_validator(mode="after")
    def _check_references(self) -> ServingConfig:
        versions = [a.version for a in self.adapters]
        duplicated = sorted({v for v in versions if versions.count(v) > 1})
        problems = []
        if duplicated:
            problems.append(f"adapter versions must be unique; duplicated: {', '.join(duplicated)}")
        for name, weights in self.routes.items():
            if name in versions:
                problems.append(f"route {name!r} has the name of an adapter version")
            unknown = sorted(set(weights) - set(versions))
            if unknown:
                problems.append(f"route {name!r} names unknown versions: {', '.join(unknown)}")
            if not any(weights.values()):
                problems.append(f"route {name!r} needs a version with a positive weight")
        if problems:
            raise ValueError("; ".join(problems))
        return self

    def names(self) -> set[str]:
        """Every model name this config makes requestable: versions and served names."""
        return {a.version for a in self.adapters} | set(self.routes)

    def with_adapter(self, source: AdapterSource) -> ServingConfig:
        """This config with ``source`` added, or replacing the entry of the same version."""
        adapters = [a for a in self.adapters if a.version != source.version] + [source]
        return self.model_copy(update={"adapters": adapters})

    def without_adapter(self, version: str) -> ServingConfig:
        """This config without ``version``; routes left with no weight are dropped."""
        routes = {}
        for name, weights in self.routes.items():
            kept = {v: w for v, w in weights.items() if v != version}
            if any(kept.values()):
                routes[name] = kept
        adapters = [a for a in self.adapters if a.version != version]
        return self.model_copy(update={"adapters": adapters, "routes": routes})

    def with_route(self, name: str, weights: dict[str, int] | None) -> ServingConfig:
        """This config with route ``name`` set to ``weights`` (removed when None), validated."""
        routes = {k: v for k, v in self.routes.items() if k != name}
        if weights is not None:
            routes[name] = weights
        return ServingConfig.model_validate({**self.model_dump(by_alias=False), "routes": routes})


def load_config(path: Path) -> ServingConfig:
    """Parse a YAML (or JSON) config file; an empty file is the empty config. ValueError
    (pydantic's ValidationError is one) when it is not a valid config."""
    import yaml

    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        raise ValueError(f"not YAML: {exc}") from exc
    return ServingConfig.model_validate(data or {})
