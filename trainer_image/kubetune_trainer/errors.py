"""The one exception the trainer fails with, carrying a machine-readable reason.

Every failure a user can act on (bad data, a missing base model, denied S3 access, out of
memory, a diverging loss) is raised as :class:`TrainerError` with a reason from the API's
:class:`~kubetune.api.conditions.Reason`; the CLI turns it into the termination message that
the operator copies into the FineTuneJob's Failed condition.
"""

from __future__ import annotations

from typing import Any

from kubetune.api.conditions import Reason

# Failures that the same spec and data would meet again: retrying the pod cannot help.
PERMANENT = frozenset(
    {
        Reason.INVALID_SPEC,
        Reason.DATASET_INVALID,
        Reason.DIGEST_MISMATCH,
        Reason.BASE_MODEL_NOT_FOUND,
        Reason.S3_ACCESS_DENIED,
        Reason.OUT_OF_MEMORY,
        Reason.NAN_LOSS,
    }
)


class TrainerError(Exception):
    """A failure with a reason the operator can switch on and a message a person can act on."""

    def __init__(self, reason: Reason, message: str, *, details: dict[str, Any] | None = None):
        super().__init__(message)
        self.reason = reason
        self.message = message
        self.details = details or {}

    @property
    def permanent(self) -> bool:
        """Whether a retry would fail the same way (the Job should fail at once)."""
        return self.reason in PERMANENT

    def __str__(self) -> str:
        return f"{self.reason}: {self.message}"
