"""ModelSync controller: resolve the spec, apply the Dataset, move its rounds, mirror its status.

Every trigger of a new download round (the user's `syncRound`, the schedule, a retry) moves the
same Dataset `dataSyncRound` forward by exactly one, and only once the previous round has ended:
the Dataset operator would start a second, concurrent Job otherwise.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any, Literal

from modelfs.api.v1 import GROUP, VERSION, Model, ModelSource, ModelSync, Phase
from modelfs.api.v1.rules import retry_wait
from modelfs.controllers import metrics, triggers
from modelfs.controllers.descriptor import Descriptor
from modelfs.controllers.result import Result
from modelfs.controllers.runtime import (
    BY_MODEL,
    BY_VERSION,
    SYNCS_BY_MODEL,
    SYNCS_BY_VERSION,
    Context,
    Key,
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
    remember_written,
    status_changes,
    with_conditions,
    write_status,
)
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

REQUESTED, SCHEDULED, RETRY = "Requested", "Scheduled", "Retry"
MODEL_NOT_FOUND = "ModelNotFound"
SOURCE_NOT_FOUND = "SourceNotFound"
INVALID_MODEL_REF = "InvalidModelRef"
INVALID_SOURCE_REF = "InvalidSourceRef"
DUPLICATE = "DuplicateModelSync"
SHARE_WITHDRAWN = "DatasetShareWithdrawn"
CONFLICT = "DatasetConflict"
ADOPTED = "DatasetAdopted"
REJECTED = "DatasetRejected"
NO_LOADER_JOB = "NoLoaderJob"
ROUNDS_CONDITION = "Rounds"
#: Dataset source types the Dataset operator runs no loader Job for (it mounts the data where it
#: is): a raised dataSyncRound never succeeds on them, so modelfs never raises it.
NO_LOADER_JOB_TYPES = frozenset(str(t) for t, rules in RULES.items() if not rules.loader_job)
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
    # A failed round has no endTime and no False condition (FACTS.md, Measured 10): its failure
    # time is then the one modelfs recorded when it saw it (`with_failure_time`), never the
    # round's start, from which a backoff would have run out long ago.
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

    The Dataset operator shows FAILED for a moment after a round is raised and before its Job
    exists (lastSucceedRound != dataSyncRound); that is "waiting", not a failure: a failure is
    FAILED once the round has a Job, or a condition that reports an error.
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


def dataset_conditions(view: DatasetView | None) -> list[dict[str, Any]]:
    """The Dataset's conditions, prefixed `Dataset`, as they are (reasons included)."""
    if view is None:
        return []
    copied = []
    for found in view.conditions:
        entry = {
            "type": f"{DATASET_CONDITION_PREFIX}{found.get('type', '')}",
            "status": found.get("status", "Unknown"),
            "reason": found.get("reason") or "Unknown",
            "message": found.get("message") or "",
        }
        if found.get("lastTransitionTime"):
            entry["lastTransitionTime"] = found["lastTransitionTime"]
        copied.append(entry)
    return copied


@dataclass
class Outcome:
    """Everything a reconcile found, from which the status and the events follow."""

    phase: Phase
    resolved: tuple[bool, str, str]
    ready: tuple[bool, str, str]
    view: DatasetView | None = None
    plan: RoundPlan | None = None
    resolution: Resolution | None = None
    events: list[tuple[str, str, str]] = field(default_factory=list)
    """(type Normal|Warning, reason, message) to post."""
    rounds: tuple[bool, str, str] | None = None
    """The Rounds condition: set when a round trigger meets a type that runs no loader Job."""
    apply: dict[str, Any] | None = None
    repair: dict[str, Any] | None = None
    apply_cause: str | None = None
    withdraw: tuple[str, dict[str, Any]] | None = None
    """(Dataset name, merge patch): the share of a Dataset whose Model's share is invalid."""


def refused(reason: str, message: str) -> Outcome:
    return Outcome(Phase.FAILED, (False, reason, message), (False, reason, message))


def readiness(
    view: DatasetView, plan: RoundPlan, limit: int
) -> tuple[Phase, tuple[bool, str, str]]:
    state = round_state(view)
    phase = PHASE_OF_STATE[state]
    name, number = view.name, view.round
    if state == "succeeded":
        return phase, (True, "DatasetReady", f"Dataset {name} is READY (round {number})")
    if state == "processing":
        return phase, (False, "Processing", f"Dataset {name} round {number} is downloading")
    if state == "waiting":
        return phase, (
            False,
            "Pending",
            f"waiting for the loader Job of Dataset {name} round {number}",
        )
    failure = f"Dataset {name} round {number} failed: {view.failure_message}"
    if plan.exhausted:
        return phase, (
            False,
            "RetryLimitReached",
            f"{failure}; {plan.attempts} of {limit} retries used",
        )
    wait = f" in {int(plan.due_in)}s" if plan.due_in is not None else ""
    return phase, (False, "RoundFailed", f"{failure}; retry {plan.attempts + 1} of {limit}{wait}")


def desired_status(
    sync: ModelSync, current: dict[str, Any], outcome: Outcome, now: str
) -> dict[str, Any]:
    generation = sync.metadata.generation
    own = [
        c
        for c in current.get("conditions") or []
        if not str(c.get("type", "")).startswith(DATASET_CONDITION_PREFIX)
        and (outcome.rounds is not None or c.get("type") != ROUNDS_CONDITION)
    ]
    updates: list[tuple[str, bool | str, str, str]] = [
        ("Resolved", *outcome.resolved),
        ("Ready", *outcome.ready),
    ]
    if outcome.rounds is not None:
        updates.append((ROUNDS_CONDITION, *outcome.rounds))
    conditions = with_conditions(own, updates, generation, now)
    status: dict[str, Any] = {
        "phase": outcome.phase.value,
        "conditions": conditions + dataset_conditions(outcome.view),
        "observedGeneration": generation,
    }
    previous = sync.status
    if outcome.resolution is not None:
        status["source"] = {"type": outcome.resolution.source_type, "uri": outcome.resolution.uri}
        status["datasetName"] = outcome.resolution.name
    elif previous.source is not None:
        status["source"] = previous.source.to_dict()
    if outcome.view is not None:
        status["datasetName"] = outcome.view.name
        status["datasetRound"] = outcome.view.round
        if outcome.view.pvc_name:
            status["pvcName"] = outcome.view.pvc_name
        if outcome.view.last_sync_time:
            status["lastSyncTime"] = outcome.view.last_sync_time
        if outcome.view.failed_at is not None and round_state(outcome.view) == "failed":
            status["lastFailureTime"] = format_time(outcome.view.failed_at)
    for key in ("datasetName", "datasetRound", "pvcName", "lastSyncTime", "lastFailureTime"):
        if key not in status and current.get(key) is not None:
            status[key] = current[key]
    if outcome.plan is not None:
        status["observedSyncRound"] = outcome.plan.observed_sync_round
        status["attempts"] = outcome.plan.attempts
    else:
        for key in ("observedSyncRound", "attempts"):
            if current.get(key) is not None:
                status[key] = current[key]
    return status


def transition_events(
    current: dict[str, Any], outcome: Outcome, written: tuple[str, str] | None = None
) -> list[Event]:
    """Events for what changed in the user's eyes: a failure, a new refusal, and the end of a
    round that an Event started (RoundStarted, RoundRetried: a Dataset round past the first).
    The first round's end is told by the status (Ready, `lastSyncTime`). `written`: the Ready
    modelfs last wrote, which a lagging index may not show yet (`status.ready_changed`)."""
    ready, reason, message = outcome.ready
    if not ready_changed(current, reason, message, written):
        return []
    if current.get("phase") == outcome.phase and outcome.phase != Phase.FAILED:
        return []
    if ready:
        later_round = outcome.view is not None and outcome.view.round > 1
        return [("Normal", "Synced", message)] if later_round else []
    if outcome.phase == Phase.FAILED:
        return [("Warning", reason, message)]
    return []


# ----------------------------------------------------------------------------- observe


@dataclass(frozen=True)
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


async def observe(ctx: Context, key: Key) -> Observed | None:
    observed = await observe_indexes(ctx, key)
    if observed is None:
        return None
    return replace(observed, written=last_written(ctx, PLURAL, observed.body))


async def observe_indexes(ctx: Context, key: Key) -> Observed | None:
    body = ctx.indexes.sync(key)
    if body is None:
        return None
    try:
        sync = ctx.runtime.parse(ModelSync, body)
    except ResolutionError as error:
        logger.debug("Refused ModelSync", extra={"object": key, "error": str(error)})
        return None
    namespace = key[0]
    if sync.metadata.deletion_timestamp:
        return Observed(key, body, sync)
    model_key = (namespace, sync.spec.model_ref)
    first = first_syncer(
        ctx.indexes.syncs_of_version(model_key, sync.spec.version), sync.spec.version
    )
    if first is not None and first.get("metadata", {}).get("uid") != sync.metadata.uid:
        return Observed(key, body, sync, rival=str(first["metadata"].get("name")))
    model_body = ctx.indexes.model(model_key)
    if model_body is None:
        return Observed(key, body, sync)
    try:
        model = ctx.runtime.parse(Model, model_body)
        source_body = ctx.indexes.source((namespace, model.spec.source_ref))
        if source_body is None:
            return Observed(key, body, sync, model=model)
        source = ctx.runtime.parse(ModelSource, source_body)
    except ResolutionError as error:
        return Observed(key, body, sync, error=error)
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
        key, body, sync, None, model, source, source_verdict(source, keys), None, dataset, shared
    )


# ----------------------------------------------------------------------------- decide


@dataclass(frozen=True)
class Plan:
    """What a reconcile of one ModelSync does. Built by `decide`, carried out by `act`."""

    status: dict[str, Any] | None = None
    """The whole status it should have (written only where it differs from the stored one)."""
    apply: dict[str, Any] | None = None
    """A Dataset manifest to apply (server-side, modelfs's field manager)."""
    repair: dict[str, Any] | None = None
    """A merge patch after the apply: what a hand edit added to modelfs's fields."""
    events: list[tuple[str, str, str]] = field(default_factory=list)
    """(type, reason, message) of what the plan does: posted when it is done."""
    status_events: list[tuple[str, str, str]] = field(default_factory=list)
    """Posted when the status is written (a new phase, a new refusal)."""
    finalizers: list[str] | None = None
    """The ModelSync's finalizers, when they change (Retain)."""
    withdraw: tuple[str, dict[str, Any]] | None = None
    """(Dataset name, merge patch) taking an invalid share off the Dataset."""
    orphan: str | None = None
    """A Dataset to leave without its owner reference (Retain, on deletion)."""
    requeue_after: float | None = None
    outcome: Outcome | None = None


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
        retained = sync.status.dataset_name if sync.spec.deletion_policy == "Retain" else None
        if finalizers is None:
            return Plan()
        return Plan(finalizers=finalizers, orphan=retained)
    outcome = converge(observed, now)
    current = observed.body.get("status") or {}
    status = desired_status(sync, current, outcome, format_time(now))
    changed = bool(status_changes(current, status))
    due_in = outcome.plan.due_in if outcome.plan is not None else None
    return Plan(
        status=status,
        apply=outcome.apply,
        repair=outcome.repair,
        events=outcome.events,
        status_events=transition_events(current, outcome, observed.written) if changed else [],
        finalizers=finalizers,
        withdraw=outcome.withdraw,
        requeue_after=due_in + 0.5 if due_in is not None else None,
        outcome=outcome,
    )


def converge(observed: Observed, now: datetime) -> Outcome:
    """Where the Dataset should be, and what the ModelSync should say about it."""
    sync = observed.sync
    if observed.rival is not None:
        return refused(
            DUPLICATE,
            f"ModelSync {observed.rival!r} already syncs Model {sync.spec.model_ref!r} "
            f"version {sync.spec.version!r}; delete this one or that one",
        )
    if observed.error is not None:
        return refused(str(observed.error.reason), str(observed.error))
    model, source = observed.model, observed.source
    for error in name_errors("ModelSync", "spec.modelRef", sync.spec.model_ref):
        return refused(INVALID_MODEL_REF, str(error))  # stored before the rule; no such Model
    if model is None:
        return refused(
            MODEL_NOT_FOUND, f"Model {sync.spec.model_ref!r} does not exist in this namespace"
        )
    for error in name_errors("Model", "spec.sourceRef", model.spec.source_ref):
        return refused(INVALID_SOURCE_REF, f"Model {model.metadata.name!r}: {error}")
    if source is None:
        return refused(
            SOURCE_NOT_FOUND,
            f"ModelSource {model.spec.source_ref!r} of Model {model.metadata.name!r} does "
            "not exist in this namespace",
        )
    verdict = observed.source_verdict
    if verdict is not None and not verdict.ready:
        return refused(verdict.reason, f"ModelSource {source.metadata.name!r}: {verdict.message}")
    if observed.shared_with_us is not None and not observed.shared_with_us[1]:
        refusal = not_shared(observed.shared_with_us[0], sync.metadata.namespace or "")
        return refused(refusal.reason, refusal.message)
    existing = observed.dataset
    name = dataset_name(model.metadata.name, sync.spec.version)
    adopting = False
    if existing is not None:
        conflict = ownership_conflict(existing, sync.metadata.uid or "")
        if conflict is not None and not adoptable(existing, observed.body):
            return refused(CONFLICT, f"{conflict}; modelfs does not take it over")
        adopting = conflict is not None  # modelfs's own, for this ModelSync: taken back
    recorded_failure = sync.status.last_failure_time
    view = None
    if existing is not None:
        view = with_failure_time(view_dataset(existing), recorded_failure, now)
    plan = plan_round(sync, view, now)
    next_round = (view.round + 1 if plan.reason else view.round) if view else 1
    try:
        resolution = resolved(source, model, sync, data_sync_round=next_round)
    except ResolutionError as error:
        outcome = refused(str(error.reason), str(error))
        if existing is not None:
            outcome.withdraw = share_withdrawal(existing, model)
        if outcome.withdraw is not None:
            outcome.events.append(
                (
                    "Normal",
                    SHARE_WITHDRAWN,
                    f"Withdrew the share of Dataset {name}: the share of Model "
                    f"{model.metadata.name!r} is invalid, so it shares with no namespace",
                )
            )
        return outcome
    resolved_message = f"Dataset {name} from {resolution.uri}"
    if existing is not None and existing.get("metadata", {}).get("deletionTimestamp"):
        return Outcome(
            Phase.PENDING,
            (True, "Resolved", resolved_message),
            (False, "DatasetDeleting", f"waiting for Dataset {name} to be deleted"),
            resolution=resolution,
        )
    desired = with_served(resolution.dataset.to_manifest(), plan)
    events: list[tuple[str, str, str]] = []
    apply = repair = cause = None
    after = view
    if needs_apply(existing, desired):
        apply = desired
        repair = drift_patch(existing, desired) if existing is not None else None
        if repair is not None:
            events.append(("Normal", "DatasetReverted", f"Reverted a hand edit of Dataset {name}"))
        if adopting:
            events.append(
                (
                    "Normal",
                    ADOPTED,
                    f"Took back Dataset {name}: it had lost its owner reference (modelfs "
                    "made it for this ModelSync)",
                )
            )
        else:
            announced = apply_event(view, plan, resolution, sync)
            if announced is not None:
                events.append(announced)
        cause = "create" if view is None else "adopt" if adopting else (plan.reason or "update")
        cause = cause.lower()
        # What the status says until the watch brings the Dataset back: the stored status
        # (none yet, for a new Dataset) under the spec just applied.
        predicted = {**desired, "status": (existing or {}).get("status") or {}}
        after = with_failure_time(view_dataset(predicted), recorded_failure, now)
    assert after is not None
    if plan.reason:
        plan = RoundPlan(None, plan.observed_sync_round, plan.attempts)
    plan = plan_round_after(sync, after, plan, now)
    rounds = rounds_verdict(sync, after, resolution.source_type)
    served = sync.status.observed_sync_round
    if rounds is not None and served is not None and sync.spec.sync_round > served:
        events.append(("Normal", "RoundNotStarted", rounds[2]))
    phase, ready = readiness(after, plan, sync.spec.retry.limit)
    notes = " ".join(resolution.notes)
    return Outcome(
        phase=phase,
        resolved=(True, "Resolved", resolved_message + (f". Note: {notes}" if notes else "")),
        ready=ready,
        view=after,
        plan=plan,
        resolution=resolution,
        events=events,
        rounds=rounds,
        apply=apply,
        repair=repair,
        apply_cause=cause,
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


def rounds_verdict(
    sync: ModelSync, view: DatasetView, source_type: str
) -> tuple[bool, str, str] | None:
    """Why a round trigger (a raised syncRound, a schedule) starts no round: the Dataset type
    runs no loader Job. None when the type has rounds, or nothing asks for one."""
    if view.loader_job or (sync.spec.sync_round <= 1 and sync.spec.schedule is None):
        return None
    asked = [f"syncRound {sync.spec.sync_round}"] if sync.spec.sync_round > 1 else []
    if sync.spec.schedule is not None:
        asked.append(f"schedule every {sync.spec.schedule.interval}")
    return (
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
) -> tuple[str, str, str] | None:
    """The Event of an apply, or None for a new Dataset: that is told by the status
    (`datasetName`, `source`, Resolved) and the log (docs/decisions.md, "Events")."""
    name = resolution.name
    if before is None:
        return None
    if plan.reason == RETRY:
        return (
            "Normal",
            "RoundRetried",
            f"Started round {before.round + 1} of Dataset {name}: retry {plan.attempts} of "
            f"{sync.spec.retry.limit} after a failed round",
        )
    if plan.reason:
        return (
            "Normal",
            "RoundStarted",
            f"Started round {before.round + 1} of Dataset {name} ({plan.reason.lower()})",
        )
    return ("Normal", "DatasetUpdated", f"Updated Dataset {name} (takes effect at its next round)")


# ----------------------------------------------------------------------------- act


async def act(ctx: Context, observed: Observed, plan: Plan) -> float | None:
    key, body = observed.key, observed.body
    writer = ctx.runtime.writer
    uid = observed.sync.metadata.uid or ""
    if plan.orphan and await writer.orphan_dataset(key[0], plan.orphan, uid):
        if not ctx.indexes.terminating(key[0]):  # no Events can be posted there any more
            ctx.runtime.post_event(
                body, "Normal", "DatasetRetained", f"Retained Dataset {plan.orphan}"
            )
        logger.info("Retained Dataset", extra={"object": key, "dataset": plan.orphan})
    if plan.finalizers is not None:
        meta = {
            "finalizers": plan.finalizers,
            "resourceVersion": observed.sync.metadata.resource_version,
        }
        patched = await writer.patch_metadata(PLURAL, key[0], key[1], {"metadata": meta})
        ctx.runtime.expect(PLURAL, key, patched)
    if plan.status is None:
        return None
    status = plan.status
    events = list(plan.events)
    status_events = plan.status_events
    if plan.apply is not None:
        dataset_key = (key[0], plan.apply["metadata"]["name"])
        try:
            applied = await writer.apply_dataset(plan.apply)
            if plan.repair is not None:
                applied = await writer.patch_dataset(*dataset_key, plan.repair)
        except InvalidError as error:
            outcome = refused(REJECTED, f"the API server refused Dataset {dataset_key[1]}: {error}")
            current = body.get("status") or {}
            status = desired_status(observed.sync, current, outcome, format_time(datetime.now(UTC)))
            events, status_events = [], transition_events(current, outcome, observed.written)
        else:
            ctx.runtime.expect(DATASETS, dataset_key, applied)
            cause = plan.outcome.apply_cause if plan.outcome is not None else None
            metrics.DATASET_APPLIES.labels(cause=cause or "update").inc()
            if cause == "retry":
                metrics.RETRIES.inc()
            logger.info(
                "Applied Dataset",
                extra={
                    "object": f"{key[0]}/{key[1]}",
                    "dataset": dataset_key[1],
                    "round": plan.apply["spec"]["dataSyncRound"],
                    "trigger": cause,
                },
            )
    if plan.withdraw is not None:
        withdrawn = await writer.patch_dataset(key[0], plan.withdraw[0], plan.withdraw[1])
        ctx.runtime.expect(DATASETS, (key[0], plan.withdraw[0]), withdrawn)
        logger.info(
            "Withdrew Dataset share",
            extra={"object": f"{key[0]}/{key[1]}", "dataset": plan.withdraw[0]},
        )
    stored = body.get("status") or {}
    if status_changes(stored, status) and ctx.runtime.yield_status(PLURAL, key):
        metrics.STATUS_YIELDS.labels(kind=PLURAL).inc()
        for type_, reason, message in events:  # what was done; the status tells the rest later
            ctx.runtime.post_event(body, type_, reason, message)
        return plan.requeue_after
    written = await write_status(ctx, PLURAL, key, stored, status)
    if written:
        remember_written(ctx, PLURAL, body, status)
    for type_, reason, message in events + (status_events if written else []):
        ctx.runtime.post_event(body, type_, reason, message)
    record_metrics(key, stored, status, plan.outcome)
    return plan.requeue_after


def record_metrics(
    key: Key, stored: dict[str, Any], desired: dict[str, Any], outcome: Outcome | None
) -> None:
    metrics.set_phase(key, str(desired.get("phase")))
    became_ready = desired.get("phase") == Phase.READY and stored.get("phase") != Phase.READY
    view = outcome.view if outcome is not None else None
    if became_ready and view is not None and view.round_started is not None:
        elapsed = (datetime.now(UTC) - view.round_started).total_seconds()
        metrics.SYNC_DURATION.observe(max(elapsed, 0.0))


async def reconcile(ctx: Context, key: Key, body: dict[str, Any]) -> Result:
    """Observe, decide, act, for one ModelSync."""
    observed = await observe(ctx, key)
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
    metrics.RECONCILES.labels(kind="ModelSync").inc()
    return Result.after(await act(ctx, observed, decide(observed, datetime.now(UTC))))


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
    workers=8,
    phase=True,
    finalizes=True,  # a Retain finalizer comes off even in a namespace being deleted
    on_gone=metrics.forget_phase,
)
