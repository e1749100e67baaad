"""Status writing shared by the controllers: compute the whole status, write only what changed."""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar

from modelfs.api.v1 import Condition, rules, set_condition
from modelfs.api.v1.reasons import DATASET_CREATED
from modelfs.controllers import metrics
from modelfs.controllers.runtime import Context, Key, condition
from modelfs.controllers.shared import Verdict
from modelfs.pkg.dataset import ResolutionError

logger = logging.getLogger("modelfs.status")
Parsed = TypeVar("Parsed")

Event = tuple[str, str, str]
"""(type Normal|Warning, reason, message)"""


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
    """Now, as a status writes it (the runner's failure status; decisions take a datetime)."""
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


def set_verdicts(
    current: Iterable[Mapping[str, Any]],
    updates: Iterable[tuple[str, Verdict]],
    generation: int | None,
    now: datetime,
) -> list[Condition]:
    """`current` (raw) with the condition of each (type, verdict) set through set_condition: its
    lastTransitionTime moves to `now` only when its status changes."""
    conditions = [Condition.model_validate(c) for c in current]
    moment = format_time(now)
    for type_, verdict in updates:
        conditions = set_condition(
            conditions, type_, verdict.ready, verdict.reason, verdict.message, generation, moment
        )
    return conditions


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
    result = await ctx.runtime.write(
        plural, key, ctx.runtime.writer.patch_status(plural, key[0], key[1], patch)
    )
    if result is None:
        return False
    ctx.runtime.status_written_at[(plural, key)] = time.monotonic()
    metrics.STATUS_WRITES.labels(kind=plural).inc()
    return True


# ---------------------------------------------------------------------- Ready, announced once


def ready_of(status: Mapping[str, Any]) -> tuple[str, str] | None:
    """The (reason, message) of a raw status's Ready condition, or None."""
    found = condition(status, "Ready")
    return (str(found.get("reason")), str(found.get("message"))) if found else None


def ready_changed(
    current: Mapping[str, Any], reason: str, message: str, written: tuple[str, str] | None
) -> bool:
    """Whether a Ready of (reason, message) is news: it differs from the stored status AND from
    what modelfs itself last wrote there. The stored status comes from the index, which may not
    show modelfs's last write yet; judged on it alone, every reconcile while it lags would
    announce the same change again (one ModelSource posted 16 identical events so)."""
    new = (reason, message)
    return ready_of(current) != new and written != new


def ready_events(
    current: Mapping[str, Any], ready: Verdict, written: tuple[str, str] | None
) -> list[Event]:
    """The Event of a change of Ready, or none: one transition, one Event."""
    if not ready_changed(current, ready.reason, ready.message, written):
        return []
    return [("Normal" if ready.ready else "Warning", ready.reason, ready.message)]


def last_written(ctx: Context, plural: str, body: Mapping[str, Any]) -> tuple[str, str] | None:
    """The Ready (reason, message) modelfs last wrote on this very object (same uid), or None."""
    meta = body.get("metadata", {})
    key = (str(meta.get("namespace", "")), str(meta.get("name", "")))
    found = ctx.runtime.ready_written.get((plural, key))
    if found is None or found[0] != str(meta.get("uid") or ""):
        return None
    return found[1], found[2]


def remember_written(
    ctx: Context, plural: str, body: Mapping[str, Any], status: Mapping[str, Any]
) -> None:
    """Record the Ready that modelfs has just written on `body` (see `ready_changed`)."""
    meta = body.get("metadata", {})
    key = (str(meta.get("namespace", "")), str(meta.get("name", "")))
    ready = ready_of(status)
    if ready is not None:
        ctx.runtime.ready_written[(plural, key)] = (str(meta.get("uid") or ""), *ready)


CREATED_RECORDS = 20_000
"""Datasets whose uid is remembered (forgetting one risks a second DatasetCreated at worst)."""


def created_once(
    ctx: Context, dataset: Key, applied: Mapping[str, Any], events: list[Event]
) -> list[Event]:
    """`events` without DatasetCreated when the apply found the Dataset that modelfs created
    and announced before (same uid): the index had not shown it yet."""
    uid = str(applied.get("metadata", {}).get("uid") or "")
    created = ctx.runtime.datasets_created
    before = created.pop(dataset, None)
    created[dataset] = uid  # the newest last: the oldest go first when there are too many
    if len(created) > CREATED_RECORDS:
        del created[next(iter(created))]
    if uid and before == uid:
        return [event for event in events if event[1] != DATASET_CREATED]
    return events


# ---------------------------------------------------------------------- objects that do not parse


def unparsed_error(
    ctx: Context, kind: type[Parsed], body: Mapping[str, Any]
) -> ResolutionError | None:
    """Why `body` does not parse as `kind` (a spec stored before a schema check existed), or
    None when it parses. Parsed once per version (`Runtime.parse`)."""
    try:
        ctx.runtime.parse(kind, body)  # type: ignore[type-var]
    except ResolutionError as error:
        return error
    return None


def unparsed_status(
    current: dict[str, Any], error: ResolutionError, generation: int | None, now: str, phase: bool
) -> dict[str, Any]:
    """The status of an object whose spec does not parse: what it had, with Ready False naming
    the field and what is allowed (and phase FAILED for kinds that have one)."""
    reason, message = str(error.reason), str(error)
    status = {
        **current,
        "conditions": with_conditions(
            current.get("conditions") or [], [("Ready", False, reason, message)], generation, now
        ),
        "observedGeneration": generation,
    }
    if phase:
        status["phase"] = "FAILED"
    return status


async def refuse_unparsed(
    ctx: Context,
    plural: str,
    key: Key,
    body: Mapping[str, Any],
    error: ResolutionError,
    *,
    phase: bool,
) -> float | None:
    """Give an object whose spec does not parse the verdict of any other refusal: Ready False on
    its status (a merge patch of the status alone: the spec cannot be written back), one Warning
    event and one log line when the verdict changes. Nothing else of it is touched."""
    waiting = ctx.runtime.wait_for_own_write(plural, key)
    if waiting is not None:
        return waiting
    current = dict(body.get("status") or {})
    generation = body.get("metadata", {}).get("generation")
    status = unparsed_status(current, error, generation, now_string(), phase)
    events = ready_events(
        current, Verdict(False, str(error.reason), str(error)), last_written(ctx, plural, body)
    )
    if await write_status(ctx, plural, key, current, status):
        remember_written(ctx, plural, body, status)
        ctx.runtime.post_events(body, events)
        if events:
            logger.warning(
                "Refused object whose spec does not parse",
                extra={"object": f"{key[0]}/{key[1]}", "kind": plural, "error": str(error)},
            )
    return None
