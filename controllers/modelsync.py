"""ModelSync controller: resolve the spec, apply the Dataset, move its rounds, mirror its status.

Every trigger of a new download round (the user's `syncRound`, the schedule, a retry) moves the
same Dataset `dataSyncRound` forward by exactly one, and only once the previous round has ended:
the Dataset operator would start a second, concurrent Job otherwise.

`decide` is a table of small pure steps run in order (`STEPS`): references, ownership,
resolution, catalog, dataset, rounds, ready. Each reads what the ones before it found, decides one
condition, and adds its part of the one `Plan`; a refusal (or a Dataset being deleted) stops
the table. `finish` turns the plan into the typed `ModelSyncStatus` and its Events.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, fields, replace
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

from modelfs.api.v1 import (
    GROUP,
    VERSION,
    ApiModel,
    CatalogPolicy,
    CatalogStatus,
    Condition,
    Model,
    ModelSource,
    ModelSync,
    ModelSyncStatus,
    ObjectMeta,
    Phase,
    SourceType,
    SyncedSource,
    set_condition,
)
from modelfs.api.v1.reasons import (
    CATALOG_DISABLED,
    CATALOG_FOUND,
    DATASET_ADOPTED,
    DATASET_CONFLICT,
    DATASET_DELETING,
    DATASET_READY,
    DATASET_REJECTED,
    DATASET_RETAINED,
    DATASET_REVERTED,
    DATASET_SHARE_WITHDRAWN,
    DATASET_UPDATED,
    DUPLICATE,
    INVALID_MODEL_REF,
    INVALID_SOURCE_REF,
    MODEL_NOT_FOUND,
    NO_LOADER_JOB,
    NOTHING_TO_LOOK_UP,
    PENDING,
    PROCESSING,
    RESOLVED,
    RETRY_LIMIT_REACHED,
    ROUND_FAILED,
    ROUND_NOT_STARTED,
    ROUND_RETRIED,
    ROUND_STARTED,
    SCHEDULE_SKIPPED,
    SOURCE_NOT_FOUND,
    SYNCED,
)
from modelfs.api.v1.reasons import ROUND_REQUESTED as REQUESTED
from modelfs.api.v1.reasons import ROUND_RETRY as RETRY
from modelfs.api.v1.reasons import ROUND_SCHEDULED as SCHEDULED
from modelfs.api.v1.rules import retry_wait
from modelfs.controllers import metrics, triggers
from modelfs.controllers.catalog import (
    LOOKUP_SECONDS,
    Answer,
    AnswerKey,
    CatalogVerdict,
    answer_key,
    entry_status,
    storage_refusal,
    summary,
)
from modelfs.controllers.descriptor import Descriptor
from modelfs.controllers.result import Result
from modelfs.controllers.runtime import (
    BY_MODEL,
    BY_VERSION,
    SYNCS_BY_MODEL,
    SYNCS_BY_VERSION,
    Context,
    Key,
    Writer,
    body_key,
    snapshot,
)
from modelfs.controllers.shared import (
    Verdict,
    first_syncer,
    not_shared,
    reference_target,
    resolved,
    shares_with,
    source_verdict,
)
from modelfs.controllers.status import (
    Event,
    format_time,
    last_written,
    parse_duration,
    parse_time,
    ready_changed,
    ready_of,
    remember_written,
    set_verdicts,
    status_changes,
    write_status,
)
from modelfs.pkg.catalog.types import CatalogEntry, NotApplicable, Refusal, Unavailable
from modelfs.pkg.dataset import (
    DATASET_PLURAL,
    RULES,
    Resolution,
    ResolutionError,
    adoptable,
    dataset_name,
    drift_patch,
    needs_apply,
    ownership_conflict,
    pruned,
)
from modelfs.pkg.dataset.resolve import model_errors, name_errors
from modelfs.pkg.kube import InvalidError

PLURAL = ModelSync.plural
DATASETS = DATASET_PLURAL
RETAIN_FINALIZER = "model.samzong.dev/finalizer"
"""Only a ModelSync with deletionPolicy Retain carries it: its owner reference comes off the
Dataset before the ModelSync goes, so garbage collection keeps the Dataset (and the weights)."""
DATASET_CONDITION_PREFIX = "Dataset"

RESOLVED_CONDITION, READY_CONDITION, ROUNDS_CONDITION = "Resolved", "Ready", "Rounds"
CATALOG_CONDITION = "Catalog"
#: Dataset source types the Dataset operator runs no loader Job for (it mounts the data where it
#: is): a raised dataSyncRound downloads nothing on them (and fails a REFERENCE for good), so
#: modelfs never raises it (docs/dataset-controller.md, section 5).
NO_LOADER_JOB_TYPES = frozenset(str(t) for t, rules in RULES.items() if not rules.loader_job)
FIRST_STATUS_WAIT = 5.0
"""Seconds a new ModelSync's first status waits for its Dataset to start. Until modelfs writes
one, the API server shows the CRD's default, phase PENDING; the first write then says
PROCESSING (or READY, or why it failed) instead of a PENDING the Dataset leaves at once."""
SERVED_ROUND_ANNOTATION = "model.samzong.dev/served-sync-round"
ATTEMPTS_ANNOTATION = "model.samzong.dev/round-attempts"
"""Written on the Dataset in the same apply as its round: the ModelSync trigger (syncRound) and
the retry count that round serves. The ModelSync status is a second write; a kill between the two
would otherwise lose what the round served (docs/decisions.md, "What a round serves")."""

RoundState = Literal["processing", "succeeded", "failed", "waiting"]
PHASE_OF_STATE: dict[RoundState, Phase] = {
    "processing": Phase.PROCESSING,
    "succeeded": Phase.READY,
    "failed": Phase.FAILED,
    "waiting": Phase.PENDING,
}

logger = logging.getLogger("modelfs.modelsync")


# ----------------------------------------------------------------------------- pure builders


@dataclass(frozen=True)
class DatasetView:
    """What modelfs reads from a Dataset to decide on rounds and report them."""

    name: str
    round: int
    phase: str
    processing: bool
    last_succeed_round: int | None
    round_succeeded: bool | None
    """How the current round's Job ended; None while it has no ended Job."""
    round_has_job: bool
    """Whether the current round got as far as a Job (the Dataset lists it in syncRoundStatuses)."""
    round_started: datetime | None
    failed_at: datetime | None
    conditions: list[dict[str, Any]]
    pvc_name: str | None
    last_sync_time: str | None
    loader_job: bool = True
    """Whether the Dataset's type runs a loader Job per round (not PVC, NFS, REFERENCE)."""
    served_sync_round: int | None = None
    """The syncRound its current round serves (`SERVED_ROUND_ANNOTATION`); None on a Dataset
    written before modelfs recorded it."""
    served_attempts: int | None = None
    """The retries used when its current round started (`ATTEMPTS_ANNOTATION`)."""

    @property
    def failure_message(self) -> str:
        messages = [c.get("message", "") for c in self.conditions if c.get("status") == "False"]
        return "; ".join(m for m in messages if m) or "the loader Job failed"


def annotation_count(annotations: dict[str, Any], key: str) -> int | None:
    """A non-negative count recorded in an annotation; None when absent or not a count."""
    value = str(annotations.get(key) or "")
    return int(value) if value.isdigit() else None


def view_dataset(body: dict[str, Any]) -> DatasetView:
    spec, status = body.get("spec") or {}, body.get("status") or {}
    annotations = (body.get("metadata") or {}).get("annotations") or {}
    current = int(spec.get("dataSyncRound") or 1)
    rounds = [r for r in status.get("syncRoundStatuses") or [] if r.get("round") == current]
    this_round = rounds[-1] if rounds else {}
    conditions = list(status.get("conditions") or [])
    succeeded = this_round.get("succeed") if this_round.get("endTime") else None
    failed_at = parse_time(this_round.get("endTime")) if succeeded is False else None
    if failed_at is None:
        false_times = [
            parse_time(c.get("lastTransitionTime"))
            for c in conditions
            if c.get("status") == "False"
        ]
        failed_at = max((t for t in false_times if t), default=None)
    # The Dataset operator leaves a failed round without endTime and without a False condition
    # (measured on v0.1.6): its failure time is then the one modelfs recorded when it saw it
    # (`with_failure_time`), never the round's start, from which a backoff would have run out
    # long ago.
    return DatasetView(
        name=str(body.get("metadata", {}).get("name", "")),
        round=current,
        phase=str(status.get("phase") or Phase.PENDING),
        processing=bool(status.get("inProcessing")) or status.get("phase") == Phase.PROCESSING,
        last_succeed_round=status.get("lastSucceedRound"),
        round_succeeded=succeeded,
        round_has_job=bool(this_round),
        round_started=parse_time(this_round.get("startTime")),
        failed_at=failed_at,
        conditions=conditions,
        pvc_name=status.get("pvcName"),
        last_sync_time=status.get("lastSyncTime"),
        loader_job=str((spec.get("source") or {}).get("type")) not in NO_LOADER_JOB_TYPES,
        served_sync_round=annotation_count(annotations, SERVED_ROUND_ANNOTATION),
        served_attempts=annotation_count(annotations, ATTEMPTS_ANNOTATION),
    )


def with_failure_time(view: DatasetView, recorded: str | None, now: datetime) -> DatasetView:
    """The view with the time its failed round failed: the Dataset's own record when it has one,
    else when modelfs first saw this round failed (`status.lastFailureTime`, if it is not older
    than the round), else now."""
    if view.failed_at is not None or round_state(view) != "failed":
        return view
    seen = parse_time(recorded)
    if seen is None or (view.round_started is not None and seen < view.round_started):
        seen = now
    return replace(view, failed_at=seen)


def round_state(view: DatasetView) -> RoundState:
    """Where the Dataset's current round stands.

    Just after modelfs raises the round, the Dataset it reads may still show the round before
    (lastSucceedRound != dataSyncRound): that is "waiting", not a failure. A failure is FAILED
    once the round has a Job, or a condition that reports an error (docs/dataset-controller.md,
    section 2).
    """
    if view.processing:
        return "processing"
    if not view.loader_job:  # no rounds: the phase says it all
        if view.phase == Phase.READY:
            return "succeeded"
        return "failed" if view.phase == Phase.FAILED else "waiting"
    if view.last_succeed_round == view.round:
        return "succeeded"
    if view.round_succeeded is False:
        return "failed"
    if view.phase == Phase.READY and view.last_succeed_round is None:
        return "succeeded"  # types without a download round (REFERENCE, PVC, NFS)
    if view.phase == Phase.FAILED and (
        view.round_has_job or any(c.get("status") == "False" for c in view.conditions)
    ):
        return "failed"
    return "waiting"


@dataclass(frozen=True)
class RoundPlan:
    """What to do about rounds now."""

    reason: str | None
    """Why a new round starts now (Requested, Scheduled, Retry), or None."""
    observed_sync_round: int
    attempts: int
    exhausted: bool = False
    due_in: float | None = None
    """Seconds until a retry or the schedule is due."""


def plan_round(sync: ModelSync, view: DatasetView | None, now: datetime) -> RoundPlan:
    spec, status = sync.spec, sync.status
    if view is None:
        return RoundPlan(None, spec.sync_round, 0)  # creating the Dataset serves the trigger
    if not view.loader_job:
        # A trigger is served by saying so (`rounds_verdict`), never by a round that cannot
        # succeed; the Dataset operator retries a failing reconcile of these types itself.
        return RoundPlan(None, spec.sync_round, 0)
    # The Dataset records what its round serves in the same write as the round; the status is
    # written after it and lags by one round when a kill falls between the two, so the Dataset's
    # record wins. The retries belong to the round: its own count, not a larger one of the
    # round before (a requested round starts again at 0). A Dataset from before that record (no
    # annotation) leaves the old reading: no status = trigger served.
    if view.served_sync_round is None:
        observed = status.observed_sync_round or spec.sync_round
        attempts = status.attempts or 0
    else:
        observed = max(status.observed_sync_round or 0, view.served_sync_round)
        served = view.served_attempts
        attempts = served if served is not None else status.attempts or 0
    state = round_state(view)
    if state == "succeeded":
        attempts = 0
    if state in ("processing", "waiting"):
        return RoundPlan(None, observed, attempts)
    if spec.sync_round > observed:
        return RoundPlan(REQUESTED, spec.sync_round, 0)
    if state == "failed":
        if attempts >= spec.retry.limit:
            return RoundPlan(None, observed, attempts, exhausted=True)
        due = (view.failed_at or now) + retry_wait(spec.retry.backoff, attempts)
        if now >= due:
            return RoundPlan(RETRY, observed, attempts + 1)
        return RoundPlan(None, observed, attempts, due_in=(due - now).total_seconds())
    if spec.schedule is not None:
        last = parse_time(view.last_sync_time) or view.round_started
        checked = parse_time(status.catalog.looked_up_at) if status.catalog else None
        if checked is not None and (last is None or checked > last):
            last = checked  # a tick the catalog skipped (`catalog`): the next one counts from it
        due = (last or now) + parse_duration(spec.schedule.interval)
        if last is None or now >= due:
            return RoundPlan(SCHEDULED, observed, 0)
        return RoundPlan(None, observed, 0, due_in=(due - now).total_seconds())
    return RoundPlan(None, observed, attempts)


def with_served(manifest: dict[str, Any], plan: RoundPlan) -> dict[str, Any]:
    """The manifest recording what its round serves (`SERVED_ROUND_ANNOTATION`). Every apply
    carries it (server-side apply would drop a field modelfs stops sending), but a change in it
    alone is no reason to apply: `needs_apply` leaves annotations out."""
    meta = manifest["metadata"]
    meta["annotations"] = {
        **(meta.get("annotations") or {}),
        SERVED_ROUND_ANNOTATION: str(plan.observed_sync_round),
        ATTEMPTS_ANNOTATION: str(plan.attempts),
    }
    return manifest


def dataset_conditions(view: DatasetView | None) -> list[Condition]:
    """The Dataset's conditions, prefixed `Dataset`, as they are (reasons included)."""
    if view is None:
        return []
    return [
        Condition.model_validate(
            {
                "type": f"{DATASET_CONDITION_PREFIX}{found.get('type', '')}",
                "status": found.get("status", "Unknown"),
                "reason": found.get("reason") or "Unknown",
                "message": found.get("message") or "",
                "lastTransitionTime": found.get("lastTransitionTime") or None,
            }
        )
        for found in view.conditions
    ]


def readiness(view: DatasetView, plan: RoundPlan, limit: int) -> tuple[Phase, Verdict]:
    """The phase and the Ready of a Dataset's round state."""
    state = round_state(view)
    phase = PHASE_OF_STATE[state]
    name, number = view.name, view.round
    if state == "succeeded":
        return phase, Verdict(True, DATASET_READY, f"Dataset {name} is READY (round {number})")
    if state == "processing":
        return phase, Verdict(False, PROCESSING, f"Dataset {name} round {number} is downloading")
    if state == "waiting":
        return phase, Verdict(
            False, PENDING, f"waiting for the loader Job of Dataset {name} round {number}"
        )
    failure = f"Dataset {name} round {number} failed: {view.failure_message}"
    if plan.exhausted:
        return phase, Verdict(
            False, RETRY_LIMIT_REACHED, f"{failure}; {plan.attempts} of {limit} retries used"
        )
    wait = f" in {int(plan.due_in)}s" if plan.due_in is not None else ""
    return phase, Verdict(
        False, ROUND_FAILED, f"{failure}; retry {plan.attempts + 1} of {limit}{wait}"
    )


def share_withdrawal(existing: dict[str, Any], model: Model) -> tuple[str, dict[str, Any]] | None:
    """The merge patch that takes the share off modelfs's Dataset when its Model's share is
    invalid (stored before the admission rules): an invalid share shares with nobody, rather
    than keeping the selector it was created with (`{}`: every namespace). None when the share
    is valid, absent, or already off the Dataset."""
    if model.spec.share is None:
        return None
    if not any(e.field.startswith("spec.share") for e in model_errors(model)):
        return None
    spec = existing.get("spec") or {}
    if not pruned({k: spec.get(k) for k in ("share", "shareToNamespaceSelector")}):
        return None
    name = str(existing.get("metadata", {}).get("name", ""))
    return name, {"spec": {"share": None, "shareToNamespaceSelector": None}}


def rounds_verdict(sync: ModelSync, view: DatasetView, source_type: str) -> Verdict | None:
    """Why a round trigger (a raised syncRound, a schedule) starts no round: the Dataset type
    runs no loader Job. None when the type has rounds, or nothing asks for one."""
    if view.loader_job or (sync.spec.sync_round <= 1 and sync.spec.schedule is None):
        return None
    asked = [f"syncRound {sync.spec.sync_round}"] if sync.spec.sync_round > 1 else []
    if sync.spec.schedule is not None:
        asked.append(f"schedule every {sync.spec.schedule.interval}")
    return Verdict(
        False,
        NO_LOADER_JOB,
        f"{' and '.join(asked)} start no download round: a {source_type} Dataset runs no loader "
        "Job, it reads the data in place, so it is always current",
    )


def plan_round_after(
    sync: ModelSync, view: DatasetView, applied: RoundPlan, now: datetime
) -> RoundPlan:
    """The plan to report once this reconcile's round (if any) has been applied."""
    follow = plan_round(
        sync.model_copy(
            update={
                "status": sync.status.model_copy(
                    update={
                        "observed_sync_round": applied.observed_sync_round,
                        "attempts": applied.attempts,
                    }
                )
            }
        ),
        view,
        now,
    )
    if follow.reason:  # due, but waits for the next reconcile (the round just applied is pending)
        return RoundPlan(None, applied.observed_sync_round, applied.attempts, due_in=0.0)
    return follow


def apply_event(
    before: DatasetView | None, plan: RoundPlan, resolution: Resolution, sync: ModelSync
) -> Event | None:
    """The Event of an apply, or None for a new Dataset: that is told by the status
    (`datasetName`, `source`, Resolved) and the log (docs/decisions.md, "Events")."""
    name = resolution.name
    if before is None:
        return None
    if plan.reason == RETRY:
        return (
            "Normal",
            ROUND_RETRIED,
            f"Started round {before.round + 1} of Dataset {name}: retry {plan.attempts} of "
            f"{sync.spec.retry.limit} after a failed round",
        )
    if plan.reason:
        return (
            "Normal",
            ROUND_STARTED,
            f"Started round {before.round + 1} of Dataset {name} ({plan.reason.lower()})",
        )
    return ("Normal", DATASET_UPDATED, f"Updated Dataset {name} (takes effect at its next round)")


# ----------------------------------------------------------------------------- observe


@dataclass(frozen=True, kw_only=True)
class Observed:
    """A ModelSync and everything its reconcile reads, from the indexes (and the Secret key-name
    cache)."""

    key: Key
    body: dict[str, Any]
    sync: ModelSync
    rival: str | None = None
    """The older ModelSync that already syncs this model and version."""
    model: Model | None = None
    source: ModelSource | None = None
    source_verdict: Verdict | None = None
    error: ResolutionError | None = None
    """The Model or ModelSource could not be read."""
    dataset: dict[str, Any] | None = None
    shared_with_us: tuple[tuple[str, str], bool] | None = None
    """A REFERENCE source in another namespace: that Dataset, and whether it is shared with
    this namespace (`shared.shares_with`)."""
    written: tuple[str, str] | None = None
    """The Ready (reason, message) modelfs last wrote on it (the index may lag behind)."""
    catalog: Mapping[AnswerKey, Answer] | None = None
    """The catalog's answers (`controllers.catalog.Catalog.answers`); None: lookups are off
    (`modelfs run --catalog=off`)."""


async def observe(ctx: Context, key: Key, body: dict[str, Any]) -> Observed | None:
    """What the reconcile of `body` (the object `key`, as the runner found it) reads."""
    observed = await observe_indexes(ctx, key, body)
    if observed is None:
        return None
    return replace(observed, written=last_written(ctx, PLURAL, observed.body))


async def observe_indexes(ctx: Context, key: Key, body: dict[str, Any]) -> Observed | None:
    try:
        sync = ctx.runtime.parse(ModelSync, body)
    except ResolutionError as error:
        logger.debug("Refused ModelSync", extra={"object": key, "error": str(error)})
        return None
    namespace = key[0]
    if sync.metadata.deletion_timestamp:
        return Observed(key=key, body=body, sync=sync)
    model_key = (namespace, sync.spec.model_ref)
    first = first_syncer(
        ctx.indexes.syncs_of_version(model_key, sync.spec.version), sync.spec.version
    )
    if first is not None and first.get("metadata", {}).get("uid") != sync.metadata.uid:
        return Observed(key=key, body=body, sync=sync, rival=str(first["metadata"].get("name")))
    model_body = ctx.indexes.model(model_key)
    if model_body is None:
        return Observed(key=key, body=body, sync=sync)
    try:
        model = ctx.runtime.parse(Model, model_body)
        source_body = ctx.indexes.source((namespace, model.spec.source_ref))
        if source_body is None:
            return Observed(key=key, body=body, sync=sync, model=model)
        source = ctx.runtime.parse(ModelSource, source_body)
    except ResolutionError as error:
        return Observed(key=key, body=body, sync=sync, error=error)
    keys = None
    if source.spec.secret_ref:
        keys = await ctx.runtime.secret_keys(namespace, source.spec.secret_ref)
    dataset = ctx.indexes.dataset((namespace, dataset_name(model.metadata.name, sync.spec.version)))
    target = reference_target(source, model, sync.spec.version)
    shared = None
    if target is not None:
        labels = (ctx.indexes.namespace(namespace) or {}).get("labels")
        shared = (target, shares_with(ctx.indexes.dataset(target), labels))
    return Observed(
        key=key,
        body=body,
        sync=sync,
        model=model,
        source=source,
        source_verdict=source_verdict(source, keys),
        dataset=dataset,
        shared_with_us=shared,
        catalog=ctx.runtime.catalog.answers if ctx.runtime.catalog is not None else None,
    )


# ----------------------------------------------------------------------------- decide


@dataclass(frozen=True)
class Plan:
    """What a reconcile of one ModelSync does, and what it found on the way. The steps of
    `decide` fill it in, one part each (`STEPS`); `finish` adds the status; `act` carries it
    out."""

    # -- what act does
    status: dict[str, Any] | None = None
    """The whole status it should have (written only where it differs from the stored one)."""
    apply: dict[str, Any] | None = None
    """A Dataset manifest to apply (server-side, modelfs's field manager)."""
    apply_cause: str | None = None
    """Why it applies (create, adopt, update, requested, scheduled, retry): a metric label."""
    repair: dict[str, Any] | None = None
    """A merge patch after the apply: what a hand edit added to modelfs's fields."""
    events: list[Event] = field(default_factory=list)
    """(type, reason, message) of what the plan does: posted when it is done."""
    status_events: list[Event] = field(default_factory=list)
    """Posted when the status is written (a new phase, a new refusal)."""
    finalizers: list[str] | None = None
    """The ModelSync's finalizers, when they change (Retain)."""
    withdraw: tuple[str, dict[str, Any]] | None = None
    """(Dataset name, merge patch) taking an invalid share off the Dataset."""
    orphan: str | None = None
    """A Dataset to leave without its owner reference (Retain, on deletion)."""
    requeue_after: float | None = None
    status_wait: float | None = None
    """Seconds the status write waits (`first_status_wait`): act writes nothing of the status,
    and the ModelSync is reconciled again then."""
    # -- what the steps found
    now: datetime | None = None
    """The moment of the decision: a rejected apply is shown as of it too (`rejected`)."""
    stopped: bool = False
    """A step ended the decision: the steps after it do not run."""
    refusal: Verdict | None = None
    """Why the ModelSync is refused: Resolved and Ready say it, the phase is FAILED."""
    phase: Phase | None = None
    resolved: Verdict | None = None
    """The Resolved condition."""
    ready: Verdict | None = None
    """The Ready condition."""
    rounds: Verdict | None = None
    """The Rounds condition: set when a round trigger meets a type that runs no loader Job."""
    adopting: bool = False
    """The Dataset is modelfs's own for this ModelSync, but lost its owner reference."""
    view: DatasetView | None = None
    """The Dataset as this reconcile leaves it (after its apply, if any)."""
    round: RoundPlan | None = None
    resolution: Resolution | None = None
    catalog: CatalogVerdict | None = None
    """The Catalog condition: set when a Dataset is about to be created or a round to start
    (`catalog`); None keeps the stored one."""
    catalog_status: CatalogStatus | None = None
    """status.catalog, when a lookup let a download go ahead (or skipped a tick)."""
    lookup: AnswerKey | None = None
    """A lookup for act to start (in the background)."""
    lookup_after: datetime | None = None
    """An answer older than this does not do (a schedule tick asks afresh)."""
    awaiting: bool = False
    """The decision waits for the catalog's answer: nothing is written, the answer enqueues the
    ModelSync again."""
    skipped: bool = False
    """A schedule tick started no round: the upstream is what the last round fetched."""
    recheck_in: float | None = None
    """Seconds until the catalog is asked again about a refused or held download (when its
    answer expires)."""


def refuse(plan: Plan, verdict: Verdict) -> Plan:
    """`plan` stopped by a refusal: nothing is applied, nothing of a Dataset is reported."""
    return replace(
        plan,
        stopped=True,
        refusal=verdict,
        phase=Phase.FAILED,
        resolved=verdict,
        ready=verdict,
        rounds=None,
        view=None,
        round=None,
        resolution=None,
        apply=None,
        apply_cause=None,
        repair=None,
    )


def reference_refusal(observed: Observed) -> Verdict | None:
    """Why the objects the ModelSync names cannot be used, in the order a user fixes them."""
    sync, model, source = observed.sync, observed.model, observed.source
    if observed.rival is not None:
        return Verdict(
            False,
            DUPLICATE,
            f"ModelSync {observed.rival!r} already syncs Model {sync.spec.model_ref!r} "
            f"version {sync.spec.version!r}; delete this one or that one",
        )
    if observed.error is not None:
        return Verdict(False, str(observed.error.reason), str(observed.error))
    for error in name_errors("ModelSync", "spec.modelRef", sync.spec.model_ref):
        return Verdict(False, INVALID_MODEL_REF, str(error))  # stored before the rule: no Model
    if model is None:
        return Verdict(
            False,
            MODEL_NOT_FOUND,
            f"Model {sync.spec.model_ref!r} does not exist in this namespace",
        )
    for error in name_errors("Model", "spec.sourceRef", model.spec.source_ref):
        return Verdict(False, INVALID_SOURCE_REF, f"Model {model.metadata.name!r}: {error}")
    if source is None:
        return Verdict(
            False,
            SOURCE_NOT_FOUND,
            f"ModelSource {model.spec.source_ref!r} of Model {model.metadata.name!r} does "
            "not exist in this namespace",
        )
    verdict = observed.source_verdict
    if verdict is not None and not verdict.ready:
        return replace(verdict, message=f"ModelSource {source.metadata.name!r}: {verdict.message}")
    if observed.shared_with_us is not None and not observed.shared_with_us[1]:
        return not_shared(observed.shared_with_us[0], sync.metadata.namespace or "")
    return None


# -- the steps, in the order `decide` runs them


def references(observed: Observed, plan: Plan) -> Plan:
    """Resolved: refused while an object the ModelSync names is missing, invalid or not ready,
    a REFERENCE to another namespace is not shared with it, or an older ModelSync syncs the
    same version."""
    refusal = reference_refusal(observed)
    return plan if refusal is None else refuse(plan, refusal)


def ownership(observed: Observed, plan: Plan) -> Plan:
    """Resolved: refused when a Dataset of its name is not its own (taken back when modelfs
    made it for this ModelSync and only its owner reference is gone)."""
    existing = observed.dataset
    if existing is None:
        return plan
    conflict = ownership_conflict(existing, observed.sync.metadata.uid or "")
    if conflict is not None and not adoptable(existing, observed.body):
        return refuse(
            plan, Verdict(False, DATASET_CONFLICT, f"{conflict}; modelfs does not take it over")
        )
    return plan if conflict is None else replace(plan, adopting=True)


def resolution(observed: Observed, plan: Plan) -> Plan:
    """Resolved: the round the Dataset should be at now (`plan_round`) and the Dataset for it.
    A spec that does not resolve is refused; when the fault is the Model's share, the share
    comes off the Dataset too (`share_withdrawal`)."""
    sync, existing, now = observed.sync, observed.dataset, plan_now(plan)
    assert observed.model is not None and observed.source is not None  # `references`
    view = None
    if existing is not None:
        view = with_failure_time(view_dataset(existing), sync.status.last_failure_time, now)
    round_ = plan_round(sync, view, now)
    next_round = (view.round + 1 if round_.reason else view.round) if view else 1
    try:
        found = resolved(observed.source, observed.model, sync, data_sync_round=next_round)
    except ResolutionError as error:
        refused = refuse(plan, Verdict(False, str(error.reason), str(error)))
        withdraw = share_withdrawal(existing, observed.model) if existing is not None else None
        if withdraw is None:
            return refused
        name = dataset_name(observed.model.metadata.name, sync.spec.version)
        withdrawn = (
            "Normal",
            DATASET_SHARE_WITHDRAWN,
            f"Withdrew the share of Dataset {name}: the share of Model "
            f"{observed.model.metadata.name!r} is invalid, so it shares with no namespace",
        )
        return replace(refused, withdraw=withdraw, events=[*refused.events, withdrawn])
    notes = " ".join(found.notes)
    message = f"Dataset {found.name} from {found.uri}" + (f". Note: {notes}" if notes else "")
    return replace(
        plan,
        view=view,
        round=round_,
        resolution=found,
        resolved=Verdict(True, RESOLVED, message),
    )


def dataset(observed: Observed, plan: Plan) -> Plan:
    """Ready, while the Dataset is being deleted: wait for it to go (stops). Else the apply
    that brings the Dataset where the spec and the round want it, with its Event (an adoption,
    a reverted hand edit, a new round, an update), and the view of the Dataset it leaves."""
    existing, found, before = observed.dataset, plan.resolution, plan.view
    assert found is not None and plan.round is not None  # `resolution`
    if existing is not None and existing.get("metadata", {}).get("deletionTimestamp"):
        return replace(
            plan,
            stopped=True,
            phase=Phase.PENDING,
            ready=Verdict(
                False, DATASET_DELETING, f"waiting for Dataset {found.name} to be deleted"
            ),
            view=None,
            round=None,
        )
    desired = with_served(found.dataset.to_manifest(), plan.round)
    if not needs_apply(existing, desired):
        return plan
    events = list(plan.events)
    repair = drift_patch(existing, desired) if existing is not None else None
    if repair is not None:
        events.append(("Normal", DATASET_REVERTED, f"Reverted a hand edit of Dataset {found.name}"))
    if plan.adopting:
        events.append(
            (
                "Normal",
                DATASET_ADOPTED,
                f"Took back Dataset {found.name}: it had lost its owner reference (modelfs "
                "made it for this ModelSync)",
            )
        )
    else:
        announced = apply_event(before, plan.round, found, observed.sync)
        if announced is not None:
            events.append(announced)
    cause = "create" if before is None else "adopt" if plan.adopting else plan.round.reason
    # What the status says until the watch brings the Dataset back: the stored status (none
    # yet, for a new Dataset) under the spec just applied.
    predicted = {**desired, "status": (existing or {}).get("status") or {}}
    recorded = observed.sync.status.last_failure_time
    return replace(
        plan,
        apply=desired,
        apply_cause=(cause or "update").lower(),
        repair=repair,
        events=events,
        view=with_failure_time(view_dataset(predicted), recorded, plan_now(plan)),
    )


def rounds(observed: Observed, plan: Plan) -> Plan:
    """Rounds: a trigger (a raised syncRound, a schedule) on a type that runs no loader Job
    says why it starts no round. And the rounds to report once this reconcile's round (if any)
    is applied: a further one waits for the next reconcile."""
    sync, view, applied = observed.sync, plan.view, plan.round
    assert view is not None and applied is not None and plan.resolution is not None
    if applied.reason:
        applied = RoundPlan(None, applied.observed_sync_round, applied.attempts)
    verdict = rounds_verdict(sync, view, plan.resolution.source_type)
    events = plan.events
    served = sync.status.observed_sync_round
    if verdict is not None and served is not None and sync.spec.sync_round > served:
        events = [*events, ("Normal", ROUND_NOT_STARTED, verdict.message)]
    return replace(
        plan,
        round=plan_round_after(sync, view, applied, plan_now(plan)),
        rounds=verdict,
        events=events,
    )


def ready(observed: Observed, plan: Plan) -> Plan:
    """Ready, and the phase: where the Dataset's round stands (its retries, when it failed)."""
    assert plan.view is not None and plan.round is not None
    phase, verdict = readiness(plan.view, plan.round, observed.sync.spec.retry.limit)
    return replace(plan, phase=phase, ready=verdict)


# -- the catalog step: what the source's own catalog says before a download


def catalog(observed: Observed, plan: Plan) -> Plan:
    """Catalog: before a Dataset is created or a new round starts, what the source's own catalog
    says about the version (the answer comes from a background lookup: `controllers.catalog`).
    A refusal (no such repository, revision, ref, object or claim; no file matched; more bytes
    than the version's storage) stops the plan: Ready=False, no Dataset, no round. A catalog
    that cannot be asked lets the download go ahead under BestEffort (Catalog=Unknown) and
    holds it under Required. A schedule tick whose upstream is what the last round fetched
    starts no round. Without an answer yet, the decision waits for it (`awaiting`)."""
    sync, found, source = observed.sync, plan.resolution, observed.source
    assert found is not None and plan.round is not None and source is not None  # `resolution`
    if observed.dataset is not None and plan.round.reason is None:
        # nothing is about to be downloaded: the stored Catalog stands
        return unrecorded_answer(observed, plan)
    off = catalog_off(observed, source)
    if off is not None or observed.catalog is None:
        return replace(plan, catalog=off)
    key = answer_key(found, sync.metadata.namespace or "", source.spec.secret_ref)
    answer = observed.catalog.get(key)
    newer = checked_since(sync, plan.view) if plan.round.reason == SCHEDULED else None
    # the status keeps whole seconds: an answer of the second it records is not newer
    if (
        answer is None
        or answer.expires <= plan_now(plan)
        or (newer and answer.at.replace(microsecond=0) <= newer)
    ):
        # a requeue marks the plan unsettled (`settled_inputs`): the answer is news it reads
        wait = LOOKUP_SECONDS + 1.0
        return replace(
            plan, stopped=True, awaiting=True, lookup=key, lookup_after=newer, requeue_after=wait
        )
    recheck = max((answer.expires - plan_now(plan)).total_seconds(), 0.0) + 0.5
    result = answer.result
    if isinstance(result, CatalogEntry):
        result = storage_refusal(result, found) or result
    if isinstance(result, Refusal):  # what the spec names cannot be downloaded: no resolution
        verdict = Verdict(False, str(result.reason), result.message)
        refused = refuse(plan, verdict)
        return replace(
            refused,
            catalog=CatalogVerdict("False", verdict.reason, verdict.message),
            recheck_in=recheck,
        )
    if isinstance(result, Unavailable):
        return catalog_unavailable(source, plan, result, recheck)
    if isinstance(result, NotApplicable):
        return replace(plan, catalog=CatalogVerdict("True", NOTHING_TO_LOOK_UP, result.message))
    entry = entry_status(result, answer.at)
    stored = sync.status.catalog
    if (
        plan.round.reason == SCHEDULED
        and stored is not None
        and stored.fingerprint == result.fingerprint
    ):
        return skipped_tick(observed, plan, entry)
    return replace(
        plan, catalog=CatalogVerdict("True", CATALOG_FOUND, summary(result)), catalog_status=entry
    )


def catalog_off(observed: Observed, source: ModelSource) -> CatalogVerdict | None:
    """Catalog=Unknown when no lookup is made: the operator's flag, or the source's policy."""
    if observed.catalog is not None and source.spec.catalog != CatalogPolicy.DISABLED:
        return None
    why = (
        "the operator runs with --catalog=off"
        if observed.catalog is None
        else f"ModelSource {source.metadata.name!r} sets catalog: Disabled"
    )
    return CatalogVerdict(
        "Unknown", CATALOG_DISABLED, f"{why}: the version is not looked up before download"
    )


def unrecorded_answer(observed: Observed, plan: Plan) -> Plan:
    """The answer that let the Dataset be created, when the status write that was to record it
    did not happen: a new ModelSync's first status waits for the Dataset to start
    (`first_status_wait`), and in a burst a write yields to the backlog
    (`Runtime.yield_status`); the next reconcile, finding the Dataset, would otherwise never
    write `status.catalog` or the Catalog condition (the bench's catalog phase saw 76 of 200
    without it). Only while the stored status has neither and the answer is still kept."""
    sync, found, source = observed.sync, plan.resolution, observed.source
    if sync.status.catalog is not None or found is None or source is None:
        return plan
    recorded = any(c.type == CATALOG_CONDITION for c in sync.status.conditions)
    off = catalog_off(observed, source)
    if off is not None or observed.catalog is None:
        return plan if recorded else replace(plan, catalog=off)
    key = answer_key(found, sync.metadata.namespace or "", source.spec.secret_ref)
    answer = observed.catalog.get(key)
    if answer is None or answer.expires <= plan_now(plan):
        return plan
    result = answer.result
    if isinstance(result, CatalogEntry):
        return replace(
            plan,
            catalog=CatalogVerdict("True", CATALOG_FOUND, summary(result)),
            catalog_status=entry_status(result, answer.at),
        )
    if recorded:
        return plan
    if isinstance(result, NotApplicable):
        return replace(plan, catalog=CatalogVerdict("True", NOTHING_TO_LOOK_UP, result.message))
    if isinstance(result, Unavailable) and source.spec.catalog != CatalogPolicy.REQUIRED:
        return catalog_unavailable(source, plan, result, 0.0)  # BestEffort: it went ahead
    return plan


def checked_since(sync: ModelSync, view: DatasetView | None) -> datetime | None:
    """What a schedule tick's lookup must be newer than: the last success and the last check
    (a tick asks the catalog afresh, however recent an answer another ModelSync got)."""
    times = [parse_time(view.last_sync_time) if view is not None else None]
    times.append(parse_time(sync.status.catalog.looked_up_at) if sync.status.catalog else None)
    return max((t for t in times if t is not None), default=None)


def catalog_unavailable(
    source: ModelSource, plan: Plan, result: Unavailable, recheck: float
) -> Plan:
    """Catalog=Unknown: under BestEffort the download goes ahead; under Required it waits (no
    Dataset, no round: Ready=False, PENDING) until a later lookup answers."""
    reason = str(result.reason)
    if source.spec.catalog != CatalogPolicy.REQUIRED:
        message = f"{result.message}; the download goes ahead (catalog: BestEffort)"
        return replace(plan, catalog=CatalogVerdict("Unknown", reason, message))
    message = (
        f"{result.message}; the download waits for the catalog (ModelSource "
        f"{source.metadata.name!r} sets catalog: Required)"
    )
    return replace(
        plan,
        stopped=True,
        phase=Phase.PENDING,
        ready=Verdict(False, reason, message),
        catalog=CatalogVerdict("Unknown", reason, message),
        view=None,
        round=None,
        resolution=None,
        recheck_in=recheck,
    )


def skipped_tick(observed: Observed, plan: Plan, entry: CatalogStatus) -> Plan:
    """A schedule tick that starts no round: the Dataset stays at its round, the tick is told
    on Catalog (and status.catalog.lookedUpAt, from which the next tick counts)."""
    sync, view = observed.sync, plan.view
    assert view is not None and plan.round is not None and sync.spec.schedule is not None
    assert observed.source is not None and observed.model is not None  # `references`
    current = resolved(observed.source, observed.model, sync, data_sync_round=view.round)
    moment = format_time(plan_now(plan))
    message = (
        f"the schedule (every {sync.spec.schedule.interval}) started no round at {moment}: "
        f"{summary(entry)} is what round {view.round} fetched"
    )
    return replace(
        plan,
        round=RoundPlan(None, plan.round.observed_sync_round, plan.round.attempts),
        resolution=current,
        catalog=CatalogVerdict("True", SCHEDULE_SKIPPED, message),
        catalog_status=entry,
        skipped=True,
    )


@dataclass(frozen=True)
class Step:
    name: str
    condition: str
    """The one condition the step decides (a refusal: Resolved, and Ready with it)."""
    run: Callable[[Observed, Plan], Plan]


STEPS: tuple[Step, ...] = (
    Step("references", RESOLVED_CONDITION, references),
    Step("ownership", RESOLVED_CONDITION, ownership),
    Step("resolution", RESOLVED_CONDITION, resolution),
    Step("catalog", CATALOG_CONDITION, catalog),
    Step("dataset", READY_CONDITION, dataset),
    Step("rounds", ROUNDS_CONDITION, rounds),
    Step("ready", READY_CONDITION, ready),
)
"""How `decide` reaches a ModelSync's plan, in order. A step reads what the ones before it
found; one that stops the plan (a refusal, a Dataset being deleted) ends the table."""


def plan_now(plan: Plan) -> datetime:
    assert plan.now is not None  # set by `decide` before the steps run
    return plan.now


def finalizers_for(sync: ModelSync) -> list[str] | None:
    """The finalizers the ModelSync should carry when they differ from what it has."""
    have = list(sync.metadata.finalizers or [])
    retain = sync.spec.deletion_policy == "Retain" and not sync.metadata.deletion_timestamp
    if retain and RETAIN_FINALIZER not in have:
        return [*have, RETAIN_FINALIZER]
    if not retain and RETAIN_FINALIZER in have:
        return [f for f in have if f != RETAIN_FINALIZER]
    return None


def decide(observed: Observed, now: datetime) -> Plan:
    sync = observed.sync
    finalizers = finalizers_for(sync)
    if sync.metadata.deletion_timestamp:
        if finalizers is None:
            return Plan()
        retained = sync.status.dataset_name if sync.spec.deletion_policy == "Retain" else None
        return Plan(finalizers=finalizers, orphan=retained)
    plan = Plan(now=now, finalizers=finalizers)
    for step in STEPS:
        plan = step.run(observed, plan)
        if plan.stopped:
            break
    if plan.awaiting:
        return plan  # the catalog's answer enqueues the ModelSync again: nothing to write yet
    done = finish(observed, plan)
    if plan.recheck_in is not None and done.requeue_after is None:
        return replace(done, requeue_after=plan.recheck_in)
    return done


def finish(observed: Observed, plan: Plan) -> Plan:
    """`plan` with the status it leads to, the Events of that status, and when to look again."""
    current = observed.body.get("status") or {}
    status = desired_status(observed.sync, current, plan).to_dict()
    changed = bool(status_changes(current, status))
    due_in = plan.round.due_in if plan.round is not None else None
    requeue_after = due_in + 0.5 if due_in is not None else None
    wait = first_status_wait(observed.sync, current, plan) if changed else None
    if wait is not None:
        requeue_after = wait if requeue_after is None else min(wait, requeue_after)
    return replace(
        plan,
        status=status,
        status_events=transition_events(current, plan, observed.written) if changed else [],
        requeue_after=requeue_after,
        status_wait=wait,
    )


def first_status_wait(sync: ModelSync, current: Mapping[str, Any], plan: Plan) -> float | None:
    """Seconds the first status of a new ModelSync waits, or None to write it now. It waits
    only while all it would say is that its Dataset, just created, has not started: the API
    server shows PENDING meanwhile (the CRD's default). A refusal, any other phase, and every
    status after the first are written at once; FIRST_STATUS_WAIT after creation at the
    latest."""
    if set(current) - {"phase"} or plan.refusal is not None or plan.view is None:
        return None
    if plan.phase != Phase.PENDING or plan.ready is None or plan.ready.reason != PENDING:
        return None
    created = parse_time(sync.metadata.creation_timestamp)
    if created is None:
        return None
    elapsed = (plan_now(plan) - created).total_seconds()
    if not 0 <= elapsed < FIRST_STATUS_WAIT:  # < 0: a clock behind the API server's; no wait
        return None
    return FIRST_STATUS_WAIT - elapsed


def rejected(observed: Observed, plan: Plan, message: str) -> Plan:
    """The plan once the API server refused its Dataset (422): the refusal, shown as of the
    same moment as the plan, announced once; the Events of the apply are void."""
    return finish(
        observed, refuse(replace(plan, events=[]), Verdict(False, DATASET_REJECTED, message))
    )


def desired_status(sync: ModelSync, current: dict[str, Any], plan: Plan) -> ModelSyncStatus:
    assert plan.phase is not None and plan.resolved is not None and plan.ready is not None
    generation = sync.metadata.generation
    own = [
        c
        for c in current.get("conditions") or []
        if not str(c.get("type", "")).startswith(DATASET_CONDITION_PREFIX)
        and (plan.rounds is not None or c.get("type") != ROUNDS_CONDITION)
        and (plan.catalog is not None or plan.refusal is None or c.get("type") != CATALOG_CONDITION)
    ]
    updates = [(RESOLVED_CONDITION, plan.resolved), (READY_CONDITION, plan.ready)]
    if plan.rounds is not None:
        updates.append((ROUNDS_CONDITION, plan.rounds))
    conditions = set_verdicts(own, updates, generation, plan_now(plan))
    if plan.catalog is not None:
        found = plan.catalog
        moment = format_time(plan_now(plan))
        conditions = set_condition(
            conditions,
            CATALOG_CONDITION,
            found.status,
            found.reason,
            found.message,
            generation,
            moment,
        )
    # What this reconcile did not find out is kept as the stored status says it.
    status = ModelSyncStatus(
        phase=plan.phase,
        conditions=conditions + dataset_conditions(plan.view),
        observed_generation=generation,
        source=sync.status.source,
        dataset_name=current.get("datasetName"),
        dataset_round=current.get("datasetRound"),
        pvc_name=current.get("pvcName"),
        last_sync_time=current.get("lastSyncTime"),
        last_failure_time=current.get("lastFailureTime"),
        observed_sync_round=current.get("observedSyncRound"),
        attempts=current.get("attempts"),
    )
    stored_catalog = current.get("catalog")
    status.catalog = plan.catalog_status or (
        CatalogStatus.model_validate(stored_catalog) if stored_catalog else None
    )
    if plan.resolution is not None:
        status.source = SyncedSource(
            type=SourceType(plan.resolution.source_type), uri=plan.resolution.uri
        )
        status.dataset_name = plan.resolution.name
    view = plan.view
    if view is not None:
        status.dataset_name, status.dataset_round = view.name, view.round
        status.pvc_name = view.pvc_name or status.pvc_name
        status.last_sync_time = view.last_sync_time or status.last_sync_time
        if view.failed_at is not None and round_state(view) == "failed":
            status.last_failure_time = format_time(view.failed_at)
    if plan.round is not None:
        status.observed_sync_round = plan.round.observed_sync_round
        status.attempts = plan.round.attempts
    return status


def transition_events(
    current: dict[str, Any], plan: Plan, written: tuple[str, str] | None = None
) -> list[Event]:
    """Events for what changed in the user's eyes: a failure, a new refusal, and the end of a
    round that an Event started (RoundStarted, RoundRetried: a Dataset round past the first).
    The first round's end is told by the status (Ready, `lastSyncTime`). `written`: the Ready
    modelfs last wrote, which a lagging index may not show yet (`status.ready_changed`)."""
    ready = plan.ready
    assert ready is not None
    if not ready_changed(current, ready.reason, ready.message, written):
        return []
    if ready.ready:
        ended = round_ended(current, plan)
        return [("Normal", SYNCED, ended)] if ended is not None else []
    if current.get("phase") == plan.phase and plan.phase != Phase.FAILED:
        return []
    if plan.phase == Phase.FAILED:
        return [("Warning", ready.reason, ready.message)]
    return []


def round_ended(current: dict[str, Any], plan: Plan) -> str | None:
    """What a round that just succeeded fetched (revision, files, size, how long it took), or
    None when no round ended (Ready back to True after a refusal was lifted, say). A round ends
    when the Dataset's lastSyncTime moves; a type without rounds, when it first turns READY."""
    view, ready = plan.view, plan.ready
    assert ready is not None
    if view is None:
        return None
    if view.last_sync_time:
        if view.last_sync_time == current.get("lastSyncTime"):
            return None
    elif current.get("phase") == Phase.READY or current.get("lastSyncTime"):
        return None
    if not view.loader_job:
        return f"{ready.message}: the source is read in place, nothing was downloaded"
    stored = current.get("catalog")
    found = plan.catalog_status or (CatalogStatus.model_validate(stored) if stored else None)
    what = summary(found) if found is not None else "the version (size unknown: not looked up)"
    took = ""
    end = parse_time(view.last_sync_time) or plan.now
    if view.round_started is not None and end is not None and end >= view.round_started:
        took = f" in {format_duration(end - view.round_started)}"
    return f"Fetched {what}{took}: {ready.message}"


def format_duration(elapsed: timedelta) -> str:
    """`1h2m3s`, `4m5s`, `6s`: as kubectl shows ages."""
    seconds = int(elapsed.total_seconds())
    hours, rest = divmod(seconds, 3600)
    minutes, seconds = divmod(rest, 60)
    if hours:
        return f"{hours}h{minutes}m{seconds}s"
    return f"{minutes}m{seconds}s" if minutes else f"{seconds}s"


# ----------------------------------------------------------------------------- act


async def act(ctx: Context, observed: Observed, plan: Plan) -> float | None:
    key, body = observed.key, observed.body
    writer = ctx.runtime.writer
    uid = observed.sync.metadata.uid or ""
    if plan.lookup is not None and ctx.runtime.catalog is not None:
        # returns at once: the answer enqueues `key`
        ctx.runtime.catalog.start(plan.lookup, key, newer_than=plan.lookup_after)
    if plan.orphan and await writer.orphan_dataset(key[0], plan.orphan, uid):
        if not ctx.indexes.terminating(key[0]):  # no Events can be posted there any more
            ctx.runtime.post_event(
                body, "Normal", DATASET_RETAINED, f"Retained Dataset {plan.orphan}"
            )
        logger.info("Retained Dataset", extra={"object": key, "dataset": plan.orphan})
    if plan.finalizers is not None:
        meta = {
            "finalizers": plan.finalizers,
            "resourceVersion": observed.sync.metadata.resource_version,
        }
        await ctx.runtime.write(
            PLURAL, key, writer.patch_metadata(PLURAL, key[0], key[1], {"metadata": meta})
        )
    if plan.status is None:
        return None
    shown = plan
    if plan.apply is not None:
        dataset_key = (key[0], plan.apply["metadata"]["name"])
        try:
            await ctx.runtime.write(
                DATASETS, dataset_key, apply_and_repair(writer, plan, dataset_key)
            )
        except InvalidError as error:
            message = f"the API server refused Dataset {dataset_key[1]}: {error}"
            shown = rejected(observed, plan, message)
        else:
            metrics.DATASET_APPLIES.labels(cause=plan.apply_cause or "update").inc()
            if plan.apply_cause == "retry":
                metrics.RETRIES.inc()
            logger.info(
                "Applied Dataset",
                extra={
                    "object": f"{key[0]}/{key[1]}",
                    "dataset": dataset_key[1],
                    "round": plan.apply["spec"]["dataSyncRound"],
                    "trigger": plan.apply_cause,
                },
            )
    if plan.withdraw is not None:
        await ctx.runtime.write(
            DATASETS,
            (key[0], plan.withdraw[0]),
            writer.patch_dataset(key[0], plan.withdraw[0], plan.withdraw[1]),
        )
        logger.info(
            "Withdrew Dataset share",
            extra={"object": f"{key[0]}/{key[1]}", "dataset": plan.withdraw[0]},
        )
    stored = body.get("status") or {}
    status = shown.status
    assert status is not None
    if shown.status_wait is not None:  # the first status waits for the Dataset to start
        ctx.runtime.post_events(body, shown.events)
        return shown.requeue_after
    if status_changes(stored, status) and ctx.runtime.yield_status(PLURAL, key):
        metrics.STATUS_YIELDS.labels(kind=PLURAL).inc()
        ctx.runtime.post_events(body, shown.events)  # what was done; the status tells the rest
        return plan.requeue_after
    written = await write_status(ctx, PLURAL, key, stored, status)
    if written:
        remember_written(ctx, PLURAL, body, status)
        if plan.skipped:
            metrics.SCHEDULE_SKIPS.inc()
    ctx.runtime.post_events(body, shown.events + (shown.status_events if written else []))
    record_metrics(key, stored, status, plan)
    return plan.requeue_after


async def apply_and_repair(writer: Writer, plan: Plan, dataset: Key) -> dict[str, Any]:
    """Apply the plan's Dataset, then patch what a hand edit added to modelfs's fields."""
    assert plan.apply is not None
    applied = await writer.apply_dataset(plan.apply)
    if plan.repair is not None:
        applied = await writer.patch_dataset(*dataset, plan.repair)
    return applied


def record_metrics(key: Key, stored: dict[str, Any], desired: dict[str, Any], plan: Plan) -> None:
    metrics.set_phase(key, str(desired.get("phase")))
    became_ready = desired.get("phase") == Phase.READY and stored.get("phase") != Phase.READY
    view = plan.view
    if became_ready and view is not None and view.round_started is not None:
        elapsed = (plan_now(plan) - view.round_started).total_seconds()
        metrics.SYNC_DURATION.observe(max(elapsed, 0.0))


async def reconcile(ctx: Context, key: Key, body: dict[str, Any]) -> Result:
    """Observe, decide, act, for one ModelSync."""
    observed = await observe(ctx, key, body)
    if observed is None:
        ctx.runtime.forget_object(PLURAL, key)
        metrics.forget_phase(key)
        return Result.done()
    waiting = ctx.runtime.wait_for_own_write(PLURAL, key)
    if waiting is None and observed.model is not None:
        name = dataset_name(observed.model.metadata.name, observed.sync.spec.version)
        waiting = ctx.runtime.wait_for_own_write(DATASETS, (key[0], name))
    if waiting is not None:
        return Result.after(waiting)
    inputs = observed_versions(observed)
    if ctx.runtime.is_settled(PLURAL, key, inputs):
        return Result.done()
    metrics.RECONCILES.labels(kind="ModelSync").inc()
    plan = decide(observed, datetime.now(UTC))
    # Set before acting: a status write that fails or yields leaves the stored status as it
    # was, which these inputs do not match.
    ctx.runtime.settle(PLURAL, key, settled_inputs(observed, plan))
    return Result.after(await act(ctx, observed, plan))


def observed_versions(observed: Observed) -> tuple[Any, ...]:
    """What `decide` reads, compactly: every field of `observed` (so a field added to Observed
    counts too), its Dataset by what reconcilers read of one (`triggers.dataset_reads`), each
    other object as `object_version` says, the ModelSync by its body without
    its resourceVersion (modelfs's own status write makes a new version of it with exactly the
    status it wrote). Equal inputs give the same plan: decide reads nothing else but the time,
    which only a plan with a requeue depends on."""
    found: list[Any] = []
    for f in fields(observed):
        value = getattr(observed, f.name)
        if f.name == "body":
            meta = {k: v for k, v in value.get("metadata", {}).items() if k != "resourceVersion"}
            found.append({**value, "metadata": meta})
        elif f.name == "dataset" and value is not None:
            found.append((value.get("metadata", {}).get("uid"), triggers.dataset_reads(value)))
        elif f.name != "sync":  # the body, parsed
            found.append(object_version(value))
    return tuple(found)


def settled_inputs(observed: Observed, plan: Plan) -> tuple[Any, ...] | None:
    """The inputs with which the next reconcile finds nothing to do: these when this one does
    nothing, these with the status it writes when it only writes its status (the resync after
    READY then decides nothing), None when it does anything else."""
    if (
        plan.apply is not None
        or plan.withdraw is not None
        or plan.orphan is not None
        or plan.finalizers is not None
        or plan.events
        or plan.requeue_after is not None
    ):
        return None
    stored = observed.body.get("status") or {}
    if plan.status is None or not status_changes(stored, plan.status):
        return observed_versions(observed)
    written = ready_of(plan.status) or observed.written
    return observed_versions(
        replace(observed, body={**observed.body, "status": plan.status}, written=written)
    )


def object_version(value: Any) -> Any:
    """A Model or ModelSource by what a ModelSync reads of it (its spec, by generation, and its
    metadata; not its status, which modelfs writes as its ModelSyncs change); any other object
    by its resourceVersion; one never stored as itself."""
    meta = getattr(value, "metadata", None)
    if isinstance(value, ApiModel) and isinstance(meta, ObjectMeta) and meta.generation:
        return (
            type(value).__name__,
            meta.uid,
            meta.generation,
            meta.labels,
            meta.annotations,
            meta.deletion_timestamp,
        )
    if isinstance(value, dict) and (value.get("metadata") or {}).get("resourceVersion"):
        return (value["metadata"].get("uid"), value["metadata"]["resourceVersion"])
    return value


def index(body: Mapping[str, Any]) -> dict[tuple[str, ...], dict[str, Any] | str]:
    """By name, by (namespace, Model) and by (namespace, Model, version)."""
    namespace, name = body_key(body)
    spec = body.get("spec") or {}
    model = str(spec.get("modelRef", ""))
    return {
        (namespace, name): snapshot(body),
        (BY_MODEL, namespace, model): name,
        (BY_VERSION, namespace, model, str(spec.get("version", ""))): name,
    }


DESCRIPTOR = Descriptor(
    kind=ModelSync.kind_name,
    plural=PLURAL,
    group=GROUP,
    version=VERSION,
    parsed=ModelSync,
    index=index,
    views={"modelsyncs": None, SYNCS_BY_MODEL: BY_MODEL, SYNCS_BY_VERSION: BY_VERSION},
    triggers=triggers.sync_changed,
    own_write=triggers.sync_written,
    reconcile=reconcile,
    # With the Dataset controller at work an apply takes tens to hundreds of milliseconds: the
    # workers bound the applies in flight (benchmarks/README.md, Run I).
    workers=32,
    phase=True,
    finalizes=True,  # a Retain finalizer comes off even in a namespace being deleted
    on_gone=metrics.forget_phase,
)
