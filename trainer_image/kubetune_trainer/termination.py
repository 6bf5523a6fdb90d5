"""The summary a trainer pod leaves in its termination message for the operator to read.

Kubernetes keeps at most 4096 bytes of ``/dev/termination-log`` in the pod's status, and the
operator reads it without pod logs or credentials in the pod. A summary that would be longer
loses list entries first, then has its message shortened, so it always parses as JSON.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

from kubetune.api import Reason
from kubetune_trainer.errors import TrainerError

LIMIT = 4096
log = logging.getLogger(__name__)


def fit(summary: dict[str, Any], limit: int = LIMIT) -> bytes:
    """``summary`` as compact JSON of at most ``limit`` bytes."""
    data = dict(summary)
    while True:
        encoded = json.dumps(data, separators=(",", ":"), default=str).encode()
        if len(encoded) <= limit:
            return encoded
        lists = [k for k, v in data.items() if isinstance(v, list) and v]
        if lists:
            longest = max(lists, key=lambda k: len(json.dumps(data[k], default=str)))
            data[longest] = data[longest][:-1]
            continue
        message = str(data.get("message", ""))
        if len(message) > 16:
            excess = len(encoded) - limit
            data["message"] = message[: max(0, len(message) - excess - 3)] + "..."
            continue
        dicts = [k for k, v in data.items() if isinstance(v, dict)]
        if not dicts:
            raise ValueError("summary cannot be made to fit")
        del data[max(dicts, key=lambda k: len(json.dumps(data[k], default=str)))]


def failure(error: TrainerError, **extra: Any) -> dict[str, Any]:
    """The summary of a failed run."""
    return {
        "phase": "Failed",
        "reason": str(error.reason),
        "message": error.message,
        **error.details,
        **extra,
    }


def unexpected(exc: BaseException) -> dict[str, Any]:
    """The summary of a failure nobody anticipated: still a reason, and the error's text."""
    return {
        "phase": "Failed",
        "reason": str(Reason.TRAINER_FAILED),
        "message": f"{type(exc).__name__}: {exc}",
    }


def write(path: Path, summary: dict[str, Any], *, first_only: bool = False) -> None:
    """Write the summary; a path that cannot be written (no such mount) is not an error.

    ``first_only`` keeps a summary already there: with several processes the first failure
    is the cause, and the others (stopped by the launcher) only echo it.
    """
    try:
        if first_only and path.is_file() and path.stat().st_size > 0:
            return
        path.write_bytes(fit(summary))
    except OSError as exc:
        log.info("no termination message written to %s: %s", path, exc.strerror or exc)
