"""Model reconciler: checks every version against the source, and lists per version the ModelSync
that syncs it and the ModelReferences that read it."""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from modelfs.api.v1 import GROUP, VERSION, Model, ModelSource
from modelfs.api.v1.reasons import (
    INVALID_SHARE,
    INVALID_SOURCE_REF,
    INVALID_VERSION,
    READY,
    SOURCE_NOT_FOUND,
    SOURCE_NOT_READY,
)
from modelfs.controllers import metrics, triggers
from modelfs.controllers.descriptor import Descriptor
from modelfs.controllers.result import Result
from modelfs.controllers.runtime import (
    BY_SOURCE,
    MODELS_BY_SOURCE,
    Context,
    Key,
    body_key,
    snapshot,
)
from modelfs.controllers.shared import (
    Verdict,
    first_syncer,
    model_version_errors,
    source_verdict,
)
from modelfs.controllers.status import (
    Event,
    last_written,
    ready_events,
    remember_written,
    set_verdicts,
    status_changes,
    write_status,
)
from modelfs.pkg.dataset import ResolutionError
from modelfs.pkg.dataset.resolve import name_errors

PLURAL = Model.plural
MIN_WRITE_INTERVAL = 1.0
"""A Model's status is written at most once a second, however many ModelSyncs change at once."""

logger = logging.getLogger("modelfs.model")


@dataclass(frozen=True, kw_only=True)
class Observed:
    key: Key
    body: dict[str, Any]
    model: Model
    source: ModelSource | None
    source_verdict: Verdict | None
    syncs: list[dict[str, Any]]
    readers: list[tuple[str, str]]
    """(version, "namespace/name") of every ModelReference that names the Model."""
    written: tuple[str, str] | None = None
    """The Ready (reason, message) modelfs last wrote on it (the index may lag behind)."""


@dataclass(frozen=True)
class Plan:
    status: dict[str, Any]
    ready: Verdict
    events: list[Event] = field(default_factory=list)


def model_reason(error: ResolutionError) -> str:
    """The reason for a problem of the Model itself: its share, its sourceRef, or a version."""
    if error.field.startswith("spec.share"):
        return INVALID_SHARE
    if error.field == "spec.sourceRef":
        return INVALID_SOURCE_REF
    return INVALID_VERSION


def readiness(model: Model, source: ModelSource | None, verdict: Verdict | None) -> Verdict:
    """A Model is Ready when its source exists and is ready and every version is valid."""
    for error in name_errors("Model", "spec.sourceRef", model.spec.source_ref):
        return Verdict(False, INVALID_SOURCE_REF, str(error))  # no such name can exist
    if source is None:
        return Verdict(
            False,
            SOURCE_NOT_FOUND,
            f"ModelSource {model.spec.source_ref!r} does not exist in this namespace",
        )
    errors = model_version_errors(source, model)
    if errors:
        first = errors[0]
        message = "; ".join(f"{e.kind} {e.field}: {e.message}" for e in errors)
        reason = model_reason(first) if first.kind == "Model" else str(first.reason)
        return Verdict(False, reason, message)
    if verdict is not None and not verdict.ready:
        return Verdict(
            False, SOURCE_NOT_READY, f"ModelSource {model.spec.source_ref!r}: {verdict.message}"
        )
    count = len(model.spec.version_configs)
    return Verdict(
        True, READY, f"{count} version(s) valid for ModelSource {model.spec.source_ref!r}"
    )


def version_statuses(
    model: Model, syncs: Iterable[dict[str, Any]], references: Iterable[tuple[str, str]] = ()
) -> list[dict[str, Any]]:
    """Per version: the (oldest) ModelSync that syncs it, its phase and last sync time, and the
    ModelReferences (namespace/name) that read it, given as (version, "namespace/name")."""
    readers: dict[str, list[str]] = {}
    for version, reader in references:
        readers.setdefault(version, []).append(reader)
    by_version: dict[str, list[dict[str, Any]]] = {}  # one pass, not one per version
    for body in syncs:
        by_version.setdefault(str((body.get("spec") or {}).get("version")), []).append(body)
    rows = []
    for version in sorted(model.spec.version_configs):
        row: dict[str, Any] = {"name": version}
        syncer = first_syncer(by_version.get(version, []), version)
        if syncer is not None:
            status = syncer.get("status") or {}
            row["sync"] = syncer["metadata"]["name"]
            if status.get("phase"):
                row["phase"] = status["phase"]
            if status.get("lastSyncTime"):
                row["lastSyncTime"] = status["lastSyncTime"]
        # always set: `kubectl get mdl -o wide` lists sizes beside versions, one per version
        catalog = (((syncer or {}).get("status") or {}).get("catalog")) or {}
        row["size"] = str(catalog.get("size") or "-")
        if readers.get(version):
            row["references"] = sorted(readers[version])
        rows.append(row)
    return rows


def decide(observed: Observed, now: datetime) -> Plan:
    model = observed.model
    ready = readiness(model, observed.source, observed.source_verdict)
    current = observed.body.get("status") or {}
    generation = model.metadata.generation
    conditions = set_verdicts(current.get("conditions") or [], [("Ready", ready)], generation, now)
    status = {
        "conditions": [c.to_dict() for c in conditions],
        "observedGeneration": generation,
        "versions": version_statuses(model, observed.syncs, observed.readers),
    }
    return Plan(status, ready, ready_events(current, ready, observed.written))


async def observe(ctx: Context, key: Key, body: dict[str, Any]) -> Observed | None:
    """What the reconcile of `body` (the object `key`, as the runner found it) reads."""
    if body.get("metadata", {}).get("deletionTimestamp"):
        return None
    try:
        model = ctx.runtime.parse(Model, body)
    except ResolutionError as error:
        logger.debug("Refused Model", extra={"object": key, "error": str(error)})
        return None
    source_body = ctx.indexes.source((key[0], model.spec.source_ref))
    source = verdict = None
    if source_body is not None:
        source = ctx.runtime.parse(ModelSource, source_body)
        keys = None
        if source.spec.secret_ref:
            keys = await ctx.runtime.secret_keys(key[0], source.spec.secret_ref)
        verdict = source_verdict(source, keys)
    readers = []
    for ref_key in ctx.indexes.references_of_model(key):
        ref = ctx.indexes.reference(ref_key)
        if ref is not None:
            readers.append((str(ref.get("spec", {}).get("version", "")), "/".join(ref_key)))
    syncs = list(ctx.indexes.syncs_of_model(key))
    written = last_written(ctx, PLURAL, body)
    return Observed(
        key=key,
        body=body,
        model=model,
        source=source,
        source_verdict=verdict,
        syncs=syncs,
        readers=readers,
        written=written,
    )


async def act(ctx: Context, observed: Observed, plan: Plan) -> float | None:
    stored = observed.body.get("status") or {}
    if not status_changes(stored, plan.status):
        return None
    wait = MIN_WRITE_INTERVAL - ctx.runtime.seconds_since_status_write(PLURAL, observed.key)
    if wait > 0:  # fan-in: many ModelSyncs changed; write once, a moment later
        return wait
    if await write_status(ctx, PLURAL, observed.key, stored, plan.status):
        remember_written(ctx, PLURAL, observed.body, plan.status)
        ctx.runtime.post_events(observed.body, plan.events)
    return None


async def reconcile(ctx: Context, key: Key, body: dict[str, Any]) -> Result:
    waiting = ctx.runtime.wait_for_own_write(PLURAL, key)
    if waiting is not None:
        return Result.after(waiting)
    observed = await observe(ctx, key, body)
    if observed is None:
        ctx.runtime.forget_object(PLURAL, key)
        return Result.done()
    metrics.RECONCILES.labels(kind="Model").inc()
    return Result.after(await act(ctx, observed, decide(observed, datetime.now(UTC))))


def index(body: Mapping[str, Any]) -> dict[tuple[str, ...], dict[str, Any] | str]:
    """By name, and by (namespace, ModelSource)."""
    namespace, name = body_key(body)
    return {
        (namespace, name): snapshot(body),
        (BY_SOURCE, namespace, str((body.get("spec") or {}).get("sourceRef", ""))): name,
    }


DESCRIPTOR = Descriptor(
    kind=Model.kind_name,
    plural=PLURAL,
    group=GROUP,
    version=VERSION,
    parsed=Model,
    index=index,
    views={"models": None, MODELS_BY_SOURCE: BY_SOURCE},
    triggers=triggers.model_changed,
    reconcile=reconcile,
    workers=2,
    coalesce=MIN_WRITE_INTERVAL,  # fan-in: many ModelSyncs change at once
)
