"""ModelReference controller: read-only use, in namespace B, of a version synced in namespace A.

modelfs runs with cluster-wide rights, so it must not become the way around a namespace
boundary: a reference is allowed only when the Model opts in (`spec.share.namespaceSelector`)
and the selector, evaluated here by modelfs, matches the consumer namespace's labels. Then it
waits for the source Dataset to be READY and shared (the Dataset operator would not wait), and
creates a REFERENCE Dataset in B. When sharing ends or the source goes, that Dataset is deleted.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import kopf

from api.v1 import Model, ModelReference, ModelSync, Phase
from controllers import metrics
from controllers.model import newest_syncs
from controllers.modelsync import first_syncer
from controllers.runtime import Context, Key, body_key, condition, retry_later
from controllers.status import forget, format_time, with_conditions, write_status
from pkg.dataset import (
    MANAGED_BY,
    MANAGED_BY_LABEL,
    MODEL_LABEL,
    VERSION_LABEL,
    Dataset,
    ResolutionError,
    label_value,
    ownership_conflict,
    parse,
    reference_dataset_name,
)
from pkg.kube import ApiError, InvalidError
from pkg.labels import SelectorError, selector_matches, validate_selector

PLURAL = "modelreferences"
SOURCE_NAMESPACE_LABEL = "model.samzong.dev/source-namespace"

SHARED = "Shared"
MODEL_NOT_FOUND = "ModelNotFound"
NOT_SHARED = "NotShared"
NAMESPACE_NOT_SELECTED = "NamespaceNotSelected"
INVALID_SELECTOR = "InvalidSelector"
VERSION_NOT_FOUND = "VersionNotFound"
NO_MODELSYNC = "NoModelSync"
SOURCE_NOT_READY = "SourceNotReady"
SOURCE_LOST = "SourceLost"
CONFLICT = "DatasetConflict"

logger = logging.getLogger("modelfs.modelreference")

Verdict = tuple[bool, str, str]


# ----------------------------------------------------------------------------- pure builders


def allowed(
    ref: ModelReference, model: Model | None, namespace_labels: dict[str, str] | None
) -> Verdict:
    """Whether the Model shares with the reference's namespace, by modelfs's own evaluation."""
    target = f"{ref.spec.model_ref.namespace}/{ref.spec.model_ref.name}"
    consumer = ref.metadata.namespace or ""
    if model is None:
        return False, MODEL_NOT_FOUND, f"Model {target} does not exist"
    if model.spec.share is None:
        return False, NOT_SHARED, f"Model {target} does not share (it has no spec.share)"
    selector = model.spec.share.namespace_selector.to_dict()
    try:
        validate_selector(selector, "spec.share.namespaceSelector")
    except SelectorError as error:
        return False, INVALID_SELECTOR, f"Model {target} has an invalid selector: {error}"
    if namespace_labels is None or not selector_matches(selector, namespace_labels):
        return (
            False,
            NAMESPACE_NOT_SELECTED,
            f"Model {target} does not share with namespace {consumer!r}: its "
            "spec.share.namespaceSelector does not match the namespace's labels",
        )
    if ref.spec.version not in model.spec.version_configs:
        available = ", ".join(sorted(model.spec.version_configs))
        return (
            False,
            VERSION_NOT_FOUND,
            f"Model {target} has no version {ref.spec.version!r} (available: {available})",
        )
    return True, SHARED, f"Model {target} shares version {ref.spec.version} with {consumer!r}"


def source_readiness(
    ref: ModelReference,
    sync: ModelSync | None,
    source: dict[str, Any] | None,
    was_ready: bool,
) -> Verdict:
    """Whether the source Dataset is there, READY and shared."""
    target = f"{ref.spec.model_ref.namespace}/{ref.spec.model_ref.name}"
    if sync is None:
        reason = SOURCE_LOST if was_ready else NO_MODELSYNC
        return False, reason, f"no ModelSync syncs version {ref.spec.version} of Model {target}"
    dataset = f"{sync.metadata.namespace}/{sync.status.dataset_name or '?'}"
    if source is None or source.get("metadata", {}).get("deletionTimestamp"):
        reason = SOURCE_LOST if was_ready else SOURCE_NOT_READY
        return False, reason, f"source Dataset {dataset} does not exist"
    phase = (source.get("status") or {}).get("phase") or Phase.PENDING
    if phase != Phase.READY:
        # The ModelSync's phase, not the Dataset's: it reads the brief FAILED before a round's
        # Job exists as the PENDING it is.
        shown = sync.status.phase or phase
        return False, SOURCE_NOT_READY, f"source Dataset {dataset} is {shown}, waiting for READY"
    if not (source.get("spec") or {}).get("share"):
        return False, SOURCE_NOT_READY, f"source Dataset {dataset} is not shared yet"
    return True, "SourceReady", f"source Dataset {dataset} is READY"


def reference_dataset(ref: ModelReference, source: tuple[str, str]) -> Dataset:
    """The REFERENCE Dataset in the consumer namespace, owned by the ModelReference."""
    namespace, dataset = source
    owner = [
        {
            "apiVersion": ref.api_version,
            "kind": ref.kind,
            "name": ref.metadata.name,
            "uid": ref.metadata.uid,
            "controller": True,
            "blockOwnerDeletion": True,
        }
    ]
    return Dataset.model_validate(
        {
            "metadata": {
                "name": reference_dataset_name(ref.metadata.name),
                "namespace": ref.metadata.namespace,
                "labels": {
                    MANAGED_BY_LABEL: MANAGED_BY,
                    MODEL_LABEL: label_value(ref.spec.model_ref.name),
                    VERSION_LABEL: label_value(ref.spec.version),
                    SOURCE_NAMESPACE_LABEL: label_value(namespace),
                },
                "ownerReferences": owner if ref.metadata.uid else [],
            },
            "spec": {"source": {"type": "REFERENCE", "uri": f"dataset://{namespace}/{dataset}"}},
        }
    )


@dataclass
class Outcome:
    phase: Phase
    allowed: Verdict
    source_ready: Verdict
    ready: Verdict
    source: tuple[str, str] | None = None
    dataset: dict[str, Any] | None = None
    events: list[tuple[str, str, str]] | None = None


def desired_status(
    ref: ModelReference, current: dict[str, Any], outcome: Outcome, now: str
) -> dict[str, Any]:
    generation = ref.metadata.generation
    status: dict[str, Any] = {
        "phase": outcome.phase.value,
        "conditions": with_conditions(
            current.get("conditions") or [],
            [
                ("Allowed", *outcome.allowed),
                ("SourceReady", *outcome.source_ready),
                ("Ready", *outcome.ready),
            ],
            generation,
            now,
        ),
        "observedGeneration": generation,
        "readOnly": True,
    }
    if outcome.source is not None:
        status["source"] = {"namespace": outcome.source[0], "dataset": outcome.source[1]}
    if outcome.dataset is not None:
        status["datasetName"] = outcome.dataset["metadata"]["name"]
        pvc = (outcome.dataset.get("status") or {}).get("pvcName")
        if pvc:
            status["pvcName"] = pvc
    return status


# ----------------------------------------------------------------------------- reconcile


def syncing(ctx: Context, model_key: Key, version: str) -> ModelSync | None:
    """The ModelSync that syncs `version` of the Model (the oldest, as the ModelSync controller
    decides), with the newest status modelfs knows."""
    first = first_syncer(newest_syncs(ctx, model_key), version)
    if first is None:
        return None
    try:
        sync: ModelSync = parse(ModelSync, first)
    except ResolutionError:
        return None
    return sync


async def converge(ctx: Context, ref: ModelReference, current: dict[str, Any]) -> Outcome:
    namespace = ref.metadata.namespace or ""
    model_key = (ref.spec.model_ref.namespace, ref.spec.model_ref.name)
    model_body = ctx.indexes.model(model_key)
    model = parse(Model, model_body) if model_body is not None else None
    consumer = ctx.indexes.namespace(namespace)
    permission = allowed(ref, model, (consumer or {}).get("labels"))
    before = condition(current, "SourceReady")
    # Lost stays lost (not "never had one") until a source is back.
    was_ready = before.get("status") == "True" or before.get("reason") == SOURCE_LOST
    name = reference_dataset_name(ref.metadata.name)
    dataset_key = (namespace, name)
    existing = ctx.indexes.dataset(dataset_key)
    if existing is not None:
        conflict = ownership_conflict(existing, ref.metadata.uid or "")
        if conflict is not None:
            verdict = (False, CONFLICT, f"{conflict}; modelfs does not take it over")
            return Outcome(Phase.FAILED, permission, verdict, verdict)
    if not permission[0]:
        events = await remove(ctx, dataset_key, existing, permission[2])
        waiting = (False, "NotAllowed", "the reference is not allowed")
        return Outcome(
            Phase.FAILED, permission, waiting, (False, permission[1], permission[2]), events=events
        )

    sync = syncing(ctx, model_key, ref.spec.version)
    dataset_name = sync.status.dataset_name if sync is not None else None
    source_key = (model_key[0], dataset_name) if dataset_name else None
    source = ctx.indexes.dataset(source_key) if source_key else None
    readiness = source_readiness(ref, sync, source, was_ready)
    if readiness[1] in (NO_MODELSYNC, SOURCE_LOST) or (source is None and existing is not None):
        events = await remove(ctx, dataset_key, existing, readiness[2])
        return Outcome(
            Phase.PENDING, permission, readiness, (False, readiness[1], readiness[2]), events=events
        )
    if not readiness[0] and existing is None:
        return Outcome(
            Phase.PENDING, permission, readiness, (False, readiness[1], readiness[2]), source_key
        )
    assert source_key is not None
    created: list[tuple[str, str, str]] = []
    desired = reference_dataset(ref, source_key)
    if existing is None:
        try:
            existing = await ctx.runtime.datasets.apply(desired)
        except InvalidError as error:
            verdict = (False, "DatasetRejected", f"the API server refused Dataset {name}: {error}")
            return Outcome(Phase.FAILED, permission, readiness, verdict, source_key)
        created.append(
            (
                "Normal",
                "DatasetCreated",
                f"Created Dataset {name} reading {source_key[0]}/{source_key[1]}",
            )
        )
        logger.info(
            "Created reference Dataset",
            extra={"object": f"{namespace}/{ref.metadata.name}", "dataset": name},
        )
    phase = Phase((existing.get("status") or {}).get("phase") or Phase.PENDING)
    ready: Verdict = (
        (True, "DatasetReady", f"Dataset {name} is READY: mount PVC read-only")
        if phase == Phase.READY
        else (False, phase.value.capitalize(), f"Dataset {name} is {phase.value}")
    )
    return Outcome(phase, permission, readiness, ready, source_key, existing, created)


async def remove(
    ctx: Context, key: Key, existing: dict[str, Any] | None, why: str
) -> list[tuple[str, str, str]]:
    """Delete the reference Dataset (ours only: ownership was checked), saying why."""
    if existing is None:
        return []
    await ctx.runtime.datasets.delete(*key)
    logger.info("Deleted reference Dataset", extra={"object": key, "why": why})
    return [("Warning", "DatasetDeleted", f"Deleted Dataset {key[1]}: {why}")]


async def reconcile_reference(ctx: Context, key: Key) -> None:
    async with ctx.runtime.lock(PLURAL, key):
        body = ctx.indexes.reference(key)
        if (
            body is None
            or body.get("metadata", {}).get("deletionTimestamp")
            or ctx.indexes.terminating(key[0])
        ):
            return
        metrics.RECONCILES.labels(kind="ModelReference").inc()
        try:
            ref = parse(ModelReference, body)
        except ResolutionError as error:
            logger.warning("Refused ModelReference", extra={"object": key, "error": str(error)})
            return
        current = ctx.runtime.written_status.get((PLURAL, ref.metadata.uid or "")) or (
            body.get("status") or {}
        )
        try:
            outcome = await converge(ctx, ref, current)
            desired = desired_status(ref, current, outcome, format_time(datetime.now(UTC)))
            written = await write_status(ctx, PLURAL, key, ref.metadata.uid or "", current, desired)
        except ApiError:
            metrics.RECONCILE_ERRORS.labels(kind="ModelReference").inc()
            raise
        events = list(outcome.events or [])
        old = condition(current, "Ready")
        if written and (old.get("reason"), old.get("message")) != outcome.ready[1:]:
            if outcome.ready[0]:
                events.append(("Normal", "Ready", outcome.ready[2]))
            elif not outcome.allowed[0]:
                events.append(("Warning", outcome.allowed[1], outcome.allowed[2]))
        for type_, reason, message in events:
            ctx.runtime.post_event(body, type_, reason, message)
    if written:
        from controllers.model import reconcile_model

        await reconcile_model(ctx, (ref.spec.model_ref.namespace, ref.spec.model_ref.name))


async def reconcile_references_of_model(ctx: Context, model_key: Key) -> None:
    for ref_key in ctx.indexes.references_of_model(model_key):
        await reconcile_reference(ctx, ref_key)


async def reconcile_references_in_namespace(ctx: Context, namespace: str) -> None:
    for ref_key in [k for k in ctx.indexes.references if k[0] == namespace]:
        await reconcile_reference(ctx, ref_key)


# ----------------------------------------------------------------------------- handlers


async def modelreference_changed(body: kopf.Body, memo: kopf.Memo, **kwargs: Any) -> None:
    """create / update / resume."""
    try:
        await reconcile_reference(Context.from_kwargs(memo, kwargs), body_key(body))
    except ApiError as error:
        raise retry_later(error) from None


async def modelreference_deleted(body: kopf.Body, memo: kopf.Memo, **kwargs: Any) -> None:
    """Gone: its Dataset goes by garbage collection; the Model stops listing it."""
    from controllers.model import reconcile_model

    ctx = Context.from_kwargs(memo, kwargs)
    forget(ctx, PLURAL, body.get("metadata", {}).get("uid", ""))
    target = body.get("spec", {}).get("modelRef") or {}
    if target.get("namespace") and target.get("name"):
        await reconcile_model(ctx, (target["namespace"], target["name"]))


async def namespace_event(body: kopf.Body, memo: kopf.Memo, **kwargs: Any) -> None:
    """A namespace's labels decide what it may reference: re-check its ModelReferences."""
    ctx = Context.from_kwargs(memo, kwargs)
    try:
        await reconcile_references_in_namespace(ctx, body.metadata.name or "")
    except ApiError as error:
        logger.warning(
            "Reconcile failed", extra={"object": body.metadata.name, "error": str(error)}
        )
