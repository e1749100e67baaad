"""The standard condition shape and the one helper that sets it.

Every modelfs status carries `conditions` shaped like metav1.Condition. They are changed only
through `set_condition`, so lastTransitionTime moves only when a condition's status really changes.
"""

from __future__ import annotations

from datetime import UTC, datetime
from enum import StrEnum

from pydantic import Field

from modelfs.api.v1.meta import ApiModel


class ConditionStatus(StrEnum):
    TRUE = "True"
    FALSE = "False"
    UNKNOWN = "Unknown"


class Condition(ApiModel):
    """One aspect of the object's state, as in metav1.Condition."""

    type: str = Field(description="Type of the condition, in CamelCase (Ready, Resolved, ...).")
    status: ConditionStatus = Field(description="Status of the condition: True, False or Unknown.")
    reason: str = Field(
        default="",
        description="A CamelCase word for why the condition has its status (InvalidConfig, ...).",
    )
    message: str = Field(default="", description="What a person needs to know, in a sentence.")
    last_transition_time: str | None = Field(
        default=None,
        description="When the status last changed (RFC 3339).",
        json_schema_extra={"format": "date-time"},
    )
    observed_generation: int | None = Field(
        default=None,
        ge=0,
        description="The metadata.generation the condition was computed from.",
    )


def now_rfc3339() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def find_condition(conditions: list[Condition], type_: str) -> Condition | None:
    return next((c for c in conditions if c.type == type_), None)


def set_condition(
    conditions: list[Condition],
    type_: str,
    status: ConditionStatus | bool | str,
    reason: str,
    message: str = "",
    observed_generation: int | None = None,
    now: str | None = None,
) -> list[Condition]:
    """Return `conditions` with `type_` set; the input list is not changed.

    lastTransitionTime keeps its old value unless the status changes, so a reason or message
    update does not look like a transition. Order is kept; a new type goes at the end.
    """
    if isinstance(status, bool):
        status = ConditionStatus.TRUE if status else ConditionStatus.FALSE
    status = ConditionStatus(status)
    old = find_condition(conditions, type_)
    transition = (
        old.last_transition_time
        if old is not None and old.status == status and old.last_transition_time
        else (now or now_rfc3339())
    )
    new = Condition(
        type=type_,
        status=status,
        reason=reason,
        message=message,
        last_transition_time=transition,
        observed_generation=observed_generation,
    )
    if old is None:
        return [*conditions, new]
    return [new if c.type == type_ else c for c in conditions]


def is_true(conditions: list[Condition], type_: str) -> bool:
    found = find_condition(conditions, type_)
    return found is not None and found.status == ConditionStatus.TRUE
