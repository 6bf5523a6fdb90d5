"""Read the operator's log for handler failures, the crashes kopf retries instead of dying."""

from __future__ import annotations

from support.operator import OperatorProcess

_MARKERS = ("Traceback", "failed with an exception", "failed permanently", "[ERROR")


def log_size(operator: OperatorProcess) -> int:
    """Where the log ends now: pass it to :func:`handler_failures` as ``start``."""
    return operator.log.stat().st_size


def handler_failures(operator: OperatorProcess, start: int, namespace: str) -> list[str]:
    """Lines written since ``start`` where a handler for an object in ``namespace`` failed."""
    with open(operator.log, "rb") as log:
        log.seek(start)
        lines = log.read().decode(errors="replace").splitlines()
    return [
        line
        for i, line in enumerate(lines)
        if (namespace in line and any(m in line for m in _MARKERS))
        or (line.startswith("Traceback") and namespace in " ".join(lines[max(i - 3, 0) : i]))
    ]
