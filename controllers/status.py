"""Status writing shared by the controllers: compute the whole status, write only what changed."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from modelfs.api.v1 import Condition, rules, set_condition
from modelfs.controllers import metrics
from modelfs.controllers.runtime import Context, Key


def parse_duration(text: str) -> timedelta:
    """A Go duration (`1h30m`, `90s`, `1.5h`) as a timedelta, saturated far beyond every bound the
    CRD sets, so no string of the CRD's pattern overflows (api/v1/rules.py)."""
    return rules.parse_duration(text)


def parse_time(text: str | None) -> datetime | None:
    if not text:
        return None
    try:
        return datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None


def format_time(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def now_string() -> str:
    return format_time(datetime.now(UTC))


def with_conditions(
    current: list[dict[str, Any]],
    updates: list[tuple[str, bool | str, str, str]],
    generation: int | None,
    now: str,
) -> list[dict[str, Any]]:
    """`current` (raw) with each (type, status, reason, message) set through set_condition."""
    conditions = [Condition.model_validate(c) for c in current]
    for type_, status, reason, message in updates:
        conditions = set_condition(conditions, type_, status, reason, message, generation, now)
    return [c.to_dict() for c in conditions]


def status_changes(current: dict[str, Any], desired: dict[str, Any]) -> dict[str, Any]:
    """The merge patch from `current` to `desired` at the top level of status (None deletes)."""
    patch = {key: value for key, value in desired.items() if current.get(key) != value}
    for key in current:
        if key not in desired and current[key] is not None:
            patch[key] = None
    return patch


async def write_status(
    ctx: Context, plural: str, key: Key, stored: dict[str, Any], desired: dict[str, Any] | None
) -> bool:
    """Patch the status of `key` with what differs between `stored` (as observed) and `desired`;
    return whether it wrote. The watch brings the write back: until it does, reconciles of
    `key` wait (`Runtime.expect`), so none writes the same status twice. An idle cluster
    therefore sees no status writes."""
    if desired is None:
        return False
    patch = status_changes(stored, desired)
    if not patch:
        return False
    result = await ctx.runtime.writer.patch_status(plural, key[0], key[1], patch)
    if result is None:
        return False
    ctx.runtime.expect(plural, key, result)
    metrics.STATUS_WRITES.labels(kind=plural).inc()
    return True
