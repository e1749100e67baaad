"""ModelSource reconciler: checks config against the type and the Secret's key names, counts the
Models that use it."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from modelfs.api.v1 import GROUP, VERSION, ModelSource, ModelSourceStatus
from modelfs.controllers import metrics, triggers
from modelfs.controllers.descriptor import Descriptor
from modelfs.controllers.result import Result
from modelfs.controllers.runtime import Context, Key, by_name
from modelfs.controllers.shared import SOURCE_SECONDS, Verdict, source_verdict
from modelfs.controllers.status import (
    Event,
    last_written,
    ready_events,
    remember_written,
    set_verdicts,
    write_status,
)
from modelfs.pkg.dataset import ResolutionError

PLURAL = ModelSource.plural

logger = logging.getLogger("modelfs.modelsource")


@dataclass(frozen=True, kw_only=True)
class Observed:
    key: Key
    body: dict[str, Any]
    source: ModelSource
    secret_keys: frozenset[str] | None
    models: int
    written: tuple[str, str] | None = None
    """The Ready (reason, message) modelfs last wrote on it (the index may lag behind)."""


@dataclass(frozen=True)
class Plan:
    status: dict[str, Any]
    verdict: Verdict
    events: list[Event] = field(default_factory=list)


def desired_status(
    source: ModelSource, current: dict[str, Any], result: Verdict, models: int, now: datetime
) -> dict[str, Any]:
    generation = source.metadata.generation
    conditions = set_verdicts(current.get("conditions") or [], [("Ready", result)], generation, now)
    return ModelSourceStatus(
        conditions=conditions, observed_generation=generation, models=models
    ).to_dict()


def decide(observed: Observed, now: datetime) -> Plan:
    result = source_verdict(observed.source, observed.secret_keys)
    current = observed.body.get("status") or {}
    status = desired_status(observed.source, current, result, observed.models, now)
    return Plan(status, result, ready_events(current, result, observed.written))


async def observe(ctx: Context, key: Key, body: dict[str, Any]) -> Observed | None:
    """What the reconcile of `body` (the object `key`, as the runner found it) reads."""
    if body.get("metadata", {}).get("deletionTimestamp"):
        return None
    try:
        source = ctx.runtime.parse(ModelSource, body)
    except ResolutionError as error:
        logger.debug("Refused ModelSource", extra={"object": key, "error": str(error)})
        return None
    keys = None
    if source.spec.secret_ref:
        keys = await ctx.runtime.secret_keys(key[0], source.spec.secret_ref, max_age=SOURCE_SECONDS)
    models = len(ctx.indexes.model_names_of_source(key))
    return Observed(
        key=key,
        body=body,
        source=source,
        secret_keys=keys,
        models=models,
        written=last_written(ctx, PLURAL, body),
    )


async def act(ctx: Context, observed: Observed, plan: Plan) -> None:
    stored = observed.body.get("status") or {}
    if await write_status(ctx, PLURAL, observed.key, stored, plan.status):
        remember_written(ctx, PLURAL, observed.body, plan.status)
        ctx.runtime.post_events(observed.body, plan.events)
        if plan.events:
            logger.info(
                "Updated ModelSource status",
                extra={
                    "object": observed.key,
                    "ready": plan.verdict.ready,
                    "reason": plan.verdict.reason,
                },
            )


async def reconcile(ctx: Context, key: Key, body: dict[str, Any]) -> Result:
    waiting = ctx.runtime.wait_for_own_write(PLURAL, key)
    if waiting is not None:
        return Result.after(waiting)
    observed = await observe(ctx, key, body)
    if observed is None:
        ctx.runtime.forget_object(PLURAL, key)
        return Result.done()
    metrics.RECONCILES.labels(kind="ModelSource").inc()
    await act(ctx, observed, decide(observed, datetime.now(UTC)))
    return Result.done()


DESCRIPTOR = Descriptor(
    kind=ModelSource.kind_name,
    plural=PLURAL,
    group=GROUP,
    version=VERSION,
    parsed=ModelSource,
    index=by_name,
    views={"modelsources": None},
    triggers=triggers.source_changed,
    own_write=triggers.source_written,
    reconcile=reconcile,
    workers=2,
)
