"""Conditions and status changes, in one place, the way Kubernetes controllers keep them.

``set_condition`` keeps ``lastTransitionTime`` when the status did not flip and reports
whether anything changed, so a reconcile writes status only when there is news.
"""

from __future__ import annotations

from datetime import UTC, datetime

from kubetune.api import Condition, ConditionStatus, Reason


def now() -> datetime:
    """The current time, truncated to seconds as the apiserver stores it."""
    return datetime.now(UTC).replace(microsecond=0)


def set_condition(
    conditions: list[Condition],
    type_: str,
    status: ConditionStatus | bool,
    reason: Reason | str,
    message: str = "",
    *,
    generation: int | None = None,
    at: datetime | None = None,
) -> bool:
    """Add or update the condition ``type_`` in place; True when something changed."""
    if isinstance(status, bool):
        status = ConditionStatus.TRUE if status else ConditionStatus.FALSE
    existing = next((c for c in conditions if c.type == type_), None)
    if (
        existing is not None
        and (existing.status, existing.reason, existing.message)
        == (
            status,
            str(reason),
            message,
        )
        and existing.observed_generation == generation
    ):
        return False
    transition = at or now()
    if existing is not None and existing.status == status:
        transition = existing.last_transition_time
    updated = Condition(
        type=type_,
        status=status,
        reason=str(reason),
        message=message,
        last_transition_time=transition,
        observed_generation=generation,
    )
    if existing is None:
        conditions.append(updated)
    else:
        conditions[conditions.index(existing)] = updated
    return True


def get_condition(conditions: list[Condition], type_: str) -> Condition | None:
    return next((c for c in conditions if c.type == type_), None)


def is_true(conditions: list[Condition], type_: str) -> bool:
    condition = get_condition(conditions, type_)
    return condition is not None and condition.status == ConditionStatus.TRUE
