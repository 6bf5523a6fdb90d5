"""How one server process runs, in three small groups: the model, the adapters, the serving.

The command line (:mod:`kubetune_server.cli`) fills these; tests build them directly.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path


@dataclass(frozen=True)
class ModelSettings:
    """The base model: what it is (adapters must match) and where its weights are."""

    name: str
    """Identity, in Hugging Face form (org/name); an adapter's manifest must name it."""
    revision: str = "main"
    """Identity revision; an adapter's manifest must name it too."""
    uri: str | None = None
    """hf://, s3://, pvc:// (fetched like the trainer does) or a local directory.
    None: hf://<name>."""
    served_name: str | None = None
    """The model name clients use for the base model; None: ``name``."""
    dtype: str = "auto"
    """Weights dtype: auto (as saved), float32, bfloat16 or float16."""
    endpoint: str | None = None
    """S3 endpoint when ``uri`` is s3://."""
    region: str | None = None
    """S3 region when ``uri`` is s3://."""
    download_dir: Path = Path("/var/cache/kubetune/model")
    """Where an s3:// model is downloaded (kept across restarts of the container)."""

    @property
    def public_name(self) -> str:
        """The name requests use for the base model."""
        return self.served_name or self.name


@dataclass(frozen=True)
class AdapterSettings:
    """Where adapters come from and what the server accepts."""

    cache_dir: Path
    """Downloaded, verified adapters, one directory per manifest digest (an emptyDir)."""
    config_path: Path | None = None
    """The serving config file (a mounted ConfigMap); None: only the admin API sets it."""
    credentials_dir: Path = Path("/var/run/secrets/kubetune/s3")
    """Mounted S3 credential Secrets: <dir>/<credentialsSecret>/AWS_ACCESS_KEY_ID, …"""
    max_lora_rank: int | None = None
    """Adapters of a higher rank are refused (RankTooLarge); None: no limit."""
    poll_interval: float = 2.0
    """Seconds between checks of the config file for changes."""
    retry_base: float = 1.0
    """First retry delay after a transient load failure; doubles up to ``retry_max``."""
    retry_max: float = 60.0


@dataclass(frozen=True)
class ServingSettings:
    """The HTTP server and the engine."""

    host: str = "0.0.0.0"
    port: int = 8000
    max_active: int = 8
    """Requests decoded at once; more wait in line."""
    admin_token: str | None = None
    """Bearer token the /v1/admin API requires; None: no token (keep the port private)."""
    threads: int | None = None
    """torch intra-op threads; None: torch's default."""


@dataclass(frozen=True)
class Settings:
    """Everything one server process needs."""

    model: ModelSettings
    adapters: AdapterSettings
    serving: ServingSettings = field(default_factory=ServingSettings)
