"""Wait for a condition with a deadline instead of sleeping a fixed time."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")


class HopelessError(AssertionError):
    """Raised by a check when waiting longer cannot help (the run failed): ``eventually``
    re-raises it at once instead of counting it as "not yet"."""


def eventually(
    check: Callable[[], T],
    *,
    timeout: float = 60.0,
    interval: float = 0.2,
    what: str | None = None,
) -> T:
    """Call ``check`` until it returns something truthy and return that.

    An exception raised by ``check`` counts as "not yet" (except :class:`HopelessError`); at the
    deadline the last value or exception is reported, so a failing test says what it was
    waiting for and what it saw.
    """
    deadline = time.monotonic() + timeout
    last: object = None
    while True:
        try:
            value = check()
        except HopelessError:
            raise
        except Exception as exc:  # any error means "not yet"; reported at the deadline
            last = exc
        else:
            if value:
                return value
            last = value
        if time.monotonic() >= deadline:
            label = what or getattr(check, "__name__", "condition")
            raise AssertionError(f"{label} not met within {timeout:.1f}s; last: {last!r}")
        time.sleep(interval)
