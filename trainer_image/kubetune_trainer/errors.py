"""The one exception the trainer fails with, carrying a machine-readable reason.

Every failure a user can act on (bad data, a missing base model, denied S3 access, out of
memory, a diverging loss) is raised as :class:`TrainerError` with a reason from the API's
:class:`~kubetune.api.conditions.Reason`; the CLI turns it into the termination message that
the operator copies into the FineTuneJob's Failed condition.
"""

from __future__ import annotations

from typing import Any

from kubetune.api.conditions import Reason


class TrainerError(Exception):
    """A failure with a reason the operator can switch on and a message a person can act on."""

    def __init__(self, reason: Reason, message: str, *, details: dict[str, Any] | None = None):
        super().__init__(message)
        self.reason = reason
        self.message = message
        self.details = details or {}

    def __str__(self) -> str:
        return f"{self.reason}: {self.message}"
