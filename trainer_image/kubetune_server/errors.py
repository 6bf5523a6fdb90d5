"""The runtime's failures, each with a reason the controller can switch on.

``AdapterRefusedError``
    The adapter can never be served as specified (digest mismatch, bad or missing manifest,
    another base model, rank above the limit, shapes that do not fit). Versions are
    immutable, so retrying is pointless: the version stays Failed until its source changes.
``AdapterUnavailableError``
    Loading failed for a reason that may pass (S3 unreachable, credentials not mounted yet);
    the runtime retries with backoff and keeps serving what it has.
``ModelNotFoundError`` / ``ModelUnavailableError``
    A request named a model this server does not know (404), or one it is configured for but
    has not loaded, e.g. while it loads or after its load was refused (503).
"""

from __future__ import annotations


class AdapterLoadError(Exception):
    """An adapter could not be loaded; ``reason`` is a CamelCase word, as in conditions."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = str(reason)
        self.message = message

    def __str__(self) -> str:
        return f"{self.reason}: {self.message}"


class AdapterRefusedError(AdapterLoadError):
    """Permanent: the artifact is not servable here."""


class AdapterUnavailableError(AdapterLoadError):
    """Transient: try again later."""


class ModelNotFoundError(LookupError):
    """No model of that name is served here."""


class ModelUnavailableError(Exception):
    """The model is configured but cannot answer now."""
