"""Model controller: checks every version against the source, aggregates their sync state."""

from __future__ import annotations

import logging
from collections.abc import Iterable
from typing import Any

import kopf

from api.v1 import Model, ModelSource
from controllers import metrics
from controllers.modelsource import source_verdict
from controllers.runtime import Context, Key, body_key, condition
from controllers.status import forget, now_string, with_conditions, write_status
from pkg.dataset import ResolutionError, parse, version_errors

PLURAL = "models"
SOURCE_NOT_FOUND = "SourceNotFound"
SOURCE_NOT_READY = "SourceNotReady"
INVALID_VERSION = "InvalidVersion"

logger = logging.getLogger("modelfs.model")


# ----------------------------------------------------------------------------- pure builders


def readiness(
    model: Model, source: ModelSource | None, source_ready: tuple[bool, str] | None
) -> tuple[bool, str, str]:
    """(ready, reason, message) of a Model: source resolved and every version valid."""
    if source is None:
        return (
            False,
            SOURCE_NOT_FOUND,
            f"ModelSource {model.spec.source_ref!r} does not exist in this namespace",
        )
    errors = [
        error
        for version in sorted(model.spec.version_configs)
        for error in version_errors(source, model, version)
    ]
    if errors:
        first = errors[0]
        message = "; ".join(f"{e.kind} {e.field}: {e.message}" for e in errors)
        reason = INVALID_VERSION if first.kind == "Model" else str(first.reason)
        return False, reason, message
    if source_ready is not None and not source_ready[0]:
        return (
            False,
            SOURCE_NOT_READY,
            f"ModelSource {model.spec.source_ref!r}: {source_ready[1]}",
        )
    count = len(model.spec.version_configs)
    return True, "Ready", f"{count} version(s) valid for ModelSource {model.spec.source_ref!r}"


def version_statuses(
    model: Model, syncs: Iterable[dict[str, Any]], references: Iterable[tuple[str, str]] = ()
) -> list[dict[str, Any]]:
    """Per version: the (oldest) ModelSync that syncs it, its phase and last sync time, and the
    ModelReferences (namespace/name) that read it, given as (version, "namespace/name").

    `syncs` are raw bodies (with their newest status): this runs whenever a ModelSync's phase
    changes, over every ModelSync of the Model."""
    from controllers.modelsync import first_syncer

    readers: dict[str, list[str]] = {}
    for version, reader in references:
        readers.setdefault(version, []).append(reader)
    bodies = list(syncs)
    rows = []
    for version in sorted(model.spec.version_configs):
        row: dict[str, Any] = {"name": version}
        syncer = first_syncer(bodies, version)
        if syncer is not None:
            status = syncer.get("status") or {}
            row["sync"] = syncer["metadata"]["name"]
            if status.get("phase"):
                row["phase"] = status["phase"]
            if status.get("lastSyncTime"):
                row["lastSyncTime"] = status["lastSyncTime"]
        if readers.get(version):
            row["references"] = sorted(readers[version])
        rows.append(row)
    return rows


def desired_status(
    model: Model,
    current: dict[str, Any],
    ready: tuple[bool, str, str],
    versions: list[dict[str, Any]],
    now: str,
) -> dict[str, Any]:
    generation = model.metadata.generation
    return {
        "conditions": with_conditions(
            current.get("conditions") or [], [("Ready", *ready)], generation, now
        ),
        "observedGeneration": generation,
        "versions": versions,
    }


# ----------------------------------------------------------------------------- reconcile


def newest_syncs(ctx: Context, key: Key) -> list[dict[str, Any]]:
    """The Model's ModelSyncs, each with the newest status known: the one modelfs just wrote
    may not have come back through the watch yet."""
    syncs = []
    for body in ctx.indexes.syncs_of_model(key):
        uid = body.get("metadata", {}).get("uid", "")
        status = ctx.runtime.written_status.get(("modelsyncs", uid), body.get("status") or {})
        syncs.append({**body, "status": status})
    return syncs


def readers_of(ctx: Context, key: Key) -> list[tuple[str, str]]:
    """(version, "namespace/name") of every ModelReference that names the Model."""
    readers = []
    for ref_key in ctx.indexes.references_of_model(key):
        body = ctx.indexes.reference(ref_key)
        if body is not None:
            readers.append((str(body.get("spec", {}).get("version", "")), "/".join(ref_key)))
    return readers


async def reconcile_model(ctx: Context, key: Key) -> None:
    """Check one Model and write its status when it changed."""
    async with ctx.runtime.lock(PLURAL, key):
        body = ctx.indexes.model(key)
        if (
            body is None
            or body.get("metadata", {}).get("deletionTimestamp")
            or ctx.indexes.terminating(key[0])
        ):
            return
        metrics.RECONCILES.labels(kind="Model").inc()
        try:
            model = parse(Model, body)
        except ResolutionError as error:
            logger.warning("Refused Model", extra={"object": key, "error": str(error)})
            return
        source_key = (key[0], model.spec.source_ref)
        source_body = ctx.indexes.source(source_key)
        source = parse(ModelSource, source_body) if source_body is not None else None
        result = await source_verdict(ctx, source_key) if source is not None else None
        ready = readiness(model, source, (result.ready, result.message) if result else None)
        current = body.get("status") or {}
        versions = version_statuses(model, newest_syncs(ctx, key), readers_of(ctx, key))
        desired = desired_status(model, current, ready, versions, now_string())
        old = condition(current, "Ready")
        written = await write_status(ctx, PLURAL, key, model.metadata.uid or "", current, desired)
        if written and (old.get("reason"), old.get("message")) != (ready[1], ready[2]):
            ctx.runtime.post_event(body, "Normal" if ready[0] else "Warning", ready[1], ready[2])


async def reconcile_models_of_source(ctx: Context, source_key: Key) -> None:
    """After a ModelSource changed: its Models, then their ModelSyncs."""
    from controllers.modelsync import reconcile_syncs_of_model

    for name in ctx.indexes.model_names_of_source(source_key):
        model_key = (source_key[0], name)
        await reconcile_model(ctx, model_key)
        await reconcile_syncs_of_model(ctx, model_key)


# ----------------------------------------------------------------------------- handlers


async def model_changed(body: kopf.Body, memo: kopf.Memo, **kwargs: Any) -> None:
    """create / update / resume: check the Model, its ModelSyncs, and recount the source."""
    from controllers.modelreference import reconcile_references_of_model
    from controllers.modelsource import reconcile_source
    from controllers.modelsync import reconcile_syncs_of_model

    ctx = Context.from_kwargs(memo, kwargs)
    key = body_key(body)
    await reconcile_model(ctx, key)
    await reconcile_syncs_of_model(ctx, key)
    await reconcile_references_of_model(ctx, key)
    source_ref = body.get("spec", {}).get("sourceRef")
    if source_ref:
        await reconcile_source(ctx, (key[0], source_ref), recheck_secret=False)


async def model_deleted(body: kopf.Body, memo: kopf.Memo, **kwargs: Any) -> None:
    """A deleted Model leaves its ModelSyncs with a clear condition, and is uncounted."""
    from controllers.modelreference import reconcile_references_of_model
    from controllers.modelsource import reconcile_source
    from controllers.modelsync import reconcile_syncs_of_model

    ctx = Context.from_kwargs(memo, kwargs)
    key = body_key(body)
    forget(ctx, PLURAL, body.get("metadata", {}).get("uid", ""))
    await reconcile_syncs_of_model(ctx, key)
    await reconcile_references_of_model(ctx, key)
    source_ref = body.get("spec", {}).get("sourceRef")
    if source_ref:
        await reconcile_source(ctx, (key[0], source_ref), recheck_secret=False)
