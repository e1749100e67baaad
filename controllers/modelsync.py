"""ModelSync controller: resolve the spec, apply the Dataset, move its rounds, mirror its status.

Every trigger of a new download round (the user's `syncRound`, the schedule, a retry) moves the
same Dataset `dataSyncRound` forward by exactly one, and only once the previous round has ended:
the Dataset operator would start a second, concurrent Job otherwise.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any, Literal

import kopf

from api.v1 import Model, ModelSource, ModelSync, Phase
from controllers import metrics
from controllers.model import reconcile_model
from controllers.modelsource import source_verdict
from controllers.runtime import Context, Key, body_key, condition, retry_later
from controllers.status import (
    forget,
    format_time,
    parse_duration,
    parse_time,
    with_conditions,
    write_status,
)
from pkg.dataset import (
    RULES,
    Resolution,
    ResolutionError,
    controller_owner,
    ownership_conflict,
    parse,
    resolve,
)
from pkg.kube import ApiError, InvalidError

PLURAL = "modelsyncs"
DATASET_CONDITION_PREFIX = "Dataset"
MANAGED_SPEC_KEYS = (
    "source",
    "secretRef",
    "dataSyncRound",
    "volumeClaimTemplate",
    "share",
    "shareToNamespaceSelector",
)

REQUESTED, SCHEDULED, RETRY = "Requested", "Scheduled", "Retry"
MODEL_NOT_FOUND = "ModelNotFound"
SOURCE_NOT_FOUND = "SourceNotFound"
DUPLICATE = "DuplicateModelSync"
CONFLICT = "DatasetConflict"
REJECTED = "DatasetRejected"
NO_LOADER_JOB = "NoLoaderJob"
ROUNDS_CONDITION = "Rounds"
#: Dataset source types the Dataset operator runs no loader Job for (it mounts the data where it
#: is): a raised dataSyncRound never succeeds on them, so modelfs never raises it.
NO_LOADER_JOB_TYPES = frozenset(str(t) for t, rules in RULES.items() if not rules.loader_job)

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

    @property
    def failure_message(self) -> str:
        messages = [c.get("message", "") for c in self.conditions if c.get("status") == "False"]
        return "; ".join(m for m in messages if m) or "the loader Job failed"


def view_dataset(body: dict[str, Any]) -> DatasetView:
    spec, status = body.get("spec") or {}, body.get("status") or {}
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
    observed = status.observed_sync_round or spec.sync_round
    attempts = status.attempts or 0
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
        due = (view.failed_at or now) + parse_duration(spec.retry.backoff) * (2**attempts)
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


def pruned(value: Any) -> Any:
    """`value` without None and empty maps or lists, at any depth: `{}` and absent mean the same
    to the Dataset operator. Its finalizer Update writes `resources: {}` and
    `volumeClaimTemplate: {metadata: {}, spec: {resources: {}}, status: {}}` into the spec
    (FACTS.md, Measured 8); compared raw, that looks like a change nobody made."""
    if isinstance(value, dict):
        kept = {k: pruned(v) for k, v in value.items()}
        return {k: v for k, v in kept.items() if v is not None and v != {} and v != []}
    if isinstance(value, list):
        return [pruned(v) for v in value]
    return value


def needs_apply(existing: dict[str, Any] | None, desired: dict[str, Any]) -> bool:
    """Whether the Dataset differs from what modelfs wants in the fields modelfs owns."""
    if existing is None:
        return True
    meta, want_meta = existing.get("metadata", {}), desired["metadata"]
    labels = meta.get("labels") or {}
    if any(labels.get(k) != v for k, v in want_meta.get("labels", {}).items()):
        return True
    owners = {ref.get("uid") for ref in meta.get("ownerReferences") or []}
    if any(ref["uid"] not in owners for ref in want_meta.get("ownerReferences", [])):
        return True
    spec, want = existing.get("spec") or {}, desired["spec"]
    have = pruned({k: spec.get(k) for k in MANAGED_SPEC_KEYS})
    return bool(have != pruned({k: want.get(k) for k in MANAGED_SPEC_KEYS}))


def drift_patch(stored: dict[str, Any], desired: dict[str, Any]) -> dict[str, Any] | None:
    """A merge patch that removes what a hand edit added to the fields modelfs manages.

    Server-side apply takes back the fields modelfs sets, but leaves a field another manager
    added (a secretRef, an extra option) in place; those are removed here.
    """
    spec, want = stored.get("spec") or {}, desired["spec"]
    patch: dict[str, Any] = {}
    for key in ("secretRef", "volumeClaimTemplate", "share", "shareToNamespaceSelector"):
        if key not in want and pruned({key: spec.get(key)}):
            patch[key] = None
    extra = set((spec.get("source") or {}).get("options") or {}) - set(
        want["source"].get("options") or {}
    )
    if extra:
        patch["source"] = {"options": dict.fromkeys(sorted(extra))}
    return {"spec": patch} if patch else None


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


def transition_events(current: dict[str, Any], outcome: Outcome) -> list[tuple[str, str, str]]:
    """Events for what changed in the user's eyes: a new phase or a new refusal."""
    old_ready = condition(current, "Ready")
    ready, reason, message = outcome.ready
    if (old_ready.get("reason"), old_ready.get("message")) == (reason, message):
        return []
    if current.get("phase") == outcome.phase and outcome.phase != Phase.FAILED:
        return []
    if ready:
        return [("Normal", "Synced", message)]
    if outcome.phase == Phase.FAILED:
        return [("Warning", reason, message)]
    return []


def latest(*bodies: dict[str, Any] | None) -> dict[str, Any] | None:
    """The newest of several copies of one object, by resourceVersion."""

    def version(body: dict[str, Any]) -> int:
        try:
            return int(body.get("metadata", {}).get("resourceVersion") or 0)
        except ValueError:
            return 0

    present = [b for b in bodies if b is not None]
    return max(present, key=version) if present else None


# ----------------------------------------------------------------------------- reconcile


def first_syncer(bodies: Iterable[dict[str, Any]], version: str) -> dict[str, Any] | None:
    """Of the ModelSyncs (raw bodies) for one Model, the oldest live one that syncs `version`.

    Raw bodies, not parsed models: this runs on every reconcile, over every ModelSync of the
    Model."""
    rivals = [
        body
        for body in bodies
        if (body.get("spec") or {}).get("version") == version
        and not body.get("metadata", {}).get("deletionTimestamp")
    ]

    def age(body: dict[str, Any]) -> tuple[str, str]:
        meta = body.get("metadata", {})
        return (str(meta.get("creationTimestamp") or ""), str(meta.get("name") or ""))

    return min(rivals, key=age, default=None)


def duplicate_of(ctx: Context, sync: ModelSync) -> str | None:
    """The name of the older ModelSync that already syncs the same model and version, if any."""
    key = (sync.metadata.namespace or "", sync.spec.model_ref)
    first = first_syncer(ctx.indexes.syncs_of_model(key), sync.spec.version)
    if first is None or first.get("metadata", {}).get("uid") == sync.metadata.uid:
        return None
    return str(first["metadata"].get("name"))


async def converge(ctx: Context, sync: ModelSync) -> Outcome:
    """Bring the Dataset where the ModelSync wants it; report what was found and done."""
    namespace = sync.metadata.namespace or ""
    rival = duplicate_of(ctx, sync)
    if rival is not None:
        return refused(
            DUPLICATE,
            f"ModelSync {rival!r} already syncs Model {sync.spec.model_ref!r} "
            f"version {sync.spec.version!r}; delete this one or that one",
        )
    model_body = ctx.indexes.model((namespace, sync.spec.model_ref))
    if model_body is None:
        return refused(
            MODEL_NOT_FOUND, f"Model {sync.spec.model_ref!r} does not exist in this namespace"
        )
    try:
        model = parse(Model, model_body)
        source_key = (namespace, model.spec.source_ref)
        source_body = ctx.indexes.source(source_key)
        if source_body is None:
            return refused(
                SOURCE_NOT_FOUND,
                f"ModelSource {model.spec.source_ref!r} of Model {model.metadata.name!r} does "
                "not exist in this namespace",
            )
        source = parse(ModelSource, source_body)
        verdict = await source_verdict(ctx, source_key)
        if verdict is not None and not verdict.ready:
            return refused(
                verdict.reason, f"ModelSource {source.metadata.name!r}: {verdict.message}"
            )
        resolution = resolve(source, model, sync)
    except ResolutionError as error:
        return refused(str(error.reason), str(error))

    dataset_key = (namespace, resolution.name)
    existing = latest(ctx.indexes.dataset(dataset_key), ctx.runtime.applied.get(dataset_key))
    if existing is not None:
        conflict = ownership_conflict(existing, sync.metadata.uid or "")
        if conflict is not None:
            return refused(CONFLICT, f"{conflict}; modelfs does not take it over")
    if existing is not None and existing.get("metadata", {}).get("deletionTimestamp"):
        return Outcome(
            Phase.PENDING,
            (True, "Resolved", f"Dataset {resolution.name} from {resolution.uri}"),
            (False, "DatasetDeleting", f"waiting for Dataset {resolution.name} to be deleted"),
            resolution=resolution,
        )
    now = datetime.now(UTC)
    recorded_failure = sync.status.last_failure_time
    view = view_dataset(existing) if existing is not None else None
    if view is not None:
        view = with_failure_time(view, recorded_failure, now)
    plan = plan_round(sync, view, now)
    next_round = (view.round + 1 if plan.reason else view.round) if view else 1
    resolution = resolve(source, model, sync, data_sync_round=next_round)
    desired = resolution.dataset.to_manifest()
    events: list[tuple[str, str, str]] = []
    if needs_apply(existing, desired):
        try:
            applied = await ctx.runtime.datasets.apply(resolution.dataset)
        except InvalidError as error:
            return refused(REJECTED, f"the API server refused Dataset {resolution.name}: {error}")
        repair = drift_patch(applied, desired)
        if repair is not None:
            applied = await ctx.runtime.datasets.patch(namespace, resolution.name, repair)
            events.append(
                ("Normal", "DatasetReverted", f"Reverted a hand edit of Dataset {resolution.name}")
            )
        ctx.runtime.applied[dataset_key] = applied
        existing = applied
        events.append(apply_event(view, plan, resolution, sync))
        cause = "create" if view is None else (plan.reason or "update").lower()
        metrics.DATASET_APPLIES.labels(cause=cause).inc()
        if plan.reason == RETRY:
            metrics.RETRIES.inc()
        logger.info(
            "Applied Dataset",
            extra={
                "object": f"{namespace}/{sync.metadata.name}",
                "dataset": resolution.name,
                "round": next_round,
                "trigger": plan.reason,
            },
        )
    assert existing is not None
    view = with_failure_time(view_dataset(existing), recorded_failure, now)
    rounds = rounds_verdict(sync, view, resolution.source_type)
    served = sync.status.observed_sync_round
    if rounds is not None and served is not None and sync.spec.sync_round > served:
        events.append(("Normal", "RoundNotStarted", rounds[2]))
    if plan.reason:
        plan = RoundPlan(None, plan.observed_sync_round, plan.attempts)
    plan = plan_round_after(sync, view, plan, now)
    phase, ready = readiness(view, plan, sync.spec.retry.limit)
    notes = " ".join(resolution.notes)
    resolved_message = f"Dataset {resolution.name} from {resolution.uri}" + (
        f". Note: {notes}" if notes else ""
    )
    return Outcome(
        phase=phase,
        resolved=(True, "Resolved", resolved_message),
        ready=ready,
        view=view,
        plan=plan,
        resolution=resolution,
        events=events,
        rounds=rounds,
    )


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
) -> tuple[str, str, str]:
    name = resolution.name
    if before is None:
        return ("Normal", "DatasetCreated", f"Created Dataset {name} from {resolution.uri}")
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


async def reconcile_sync(ctx: Context, key: Key) -> None:
    """Converge one ModelSync and write its status when it changed."""
    model_changed = False
    async with ctx.runtime.lock(PLURAL, key):
        body = ctx.indexes.sync(key)
        if (
            body is None
            or body.get("metadata", {}).get("deletionTimestamp")
            or ctx.indexes.terminating(key[0])
        ):
            return
        try:
            sync = parse(ModelSync, body)
        except ResolutionError as error:
            logger.warning("Refused ModelSync", extra={"object": key, "error": str(error)})
            return
        current = ctx.runtime.written_status.get((PLURAL, sync.metadata.uid or "")) or (
            body.get("status") or {}
        )
        metrics.RECONCILES.labels(kind="ModelSync").inc()
        try:
            outcome = await converge(
                ctx, sync.model_copy(update={"status": type(sync.status).model_validate(current)})
            )
            desired = desired_status(sync, current, outcome, format_time(datetime.now(UTC)))
            written = await write_status(
                ctx, PLURAL, key, sync.metadata.uid or "", current, desired
            )
        except ApiError:
            metrics.RECONCILE_ERRORS.labels(kind="ModelSync").inc()
            raise
        record_metrics(ctx, sync, current, desired, outcome)
        for type_, reason, message in outcome.events + (
            transition_events(current, outcome) if written else []
        ):
            ctx.runtime.post_event(body, type_, reason, message)
        due_in = outcome.plan.due_in if outcome.plan is not None else None
        if due_in is not None:
            ctx.runtime.wake(PLURAL, key, due_in + 0.5, lambda: reconcile_later(ctx, key))
        model_changed = written and (
            current.get("phase"),
            current.get("lastSyncTime"),
        ) != (desired.get("phase"), desired.get("lastSyncTime"))
    if model_changed:
        from controllers.modelreference import reconcile_references_of_model

        await reconcile_model(ctx, (key[0], sync.spec.model_ref))
        await reconcile_references_of_model(ctx, (key[0], sync.spec.model_ref))


def record_metrics(
    ctx: Context,
    sync: ModelSync,
    current: dict[str, Any],
    desired: dict[str, Any],
    outcome: Outcome,
) -> None:
    phases = ctx.runtime.phases
    phases[sync.metadata.uid or ""] = str(desired.get("phase"))
    metrics.set_phase_counts(phases)
    became_ready = desired.get("phase") == Phase.READY and current.get("phase") != Phase.READY
    started = outcome.view.round_started if outcome.view is not None else None
    if became_ready and started is not None:
        metrics.SYNC_DURATION.observe(max((datetime.now(UTC) - started).total_seconds(), 0.0))


async def reconcile_later(ctx: Context, key: Key) -> None:
    """A reconcile that was due (retry backoff or schedule); errors wait for the next trigger."""
    try:
        await reconcile_sync(ctx, key)
    except ApiError as error:
        logger.warning("Reconcile failed", extra={"object": key, "error": str(error)})


async def reconcile_syncs_of_model(ctx: Context, model_key: Key) -> None:
    for body in list(ctx.indexes.syncs_of_model(model_key)):
        await reconcile_sync(ctx, body_key(body))


# ----------------------------------------------------------------------------- handlers


async def modelsync_changed(body: kopf.Body, memo: kopf.Memo, **kwargs: Any) -> None:
    """create / update / resume."""
    ctx = Context.from_kwargs(memo, kwargs)
    try:
        await reconcile_sync(ctx, body_key(body))
    except ApiError as error:
        raise retry_later(error) from None
    model_ref = body.get("spec", {}).get("modelRef")
    if model_ref:
        await reconcile_model(ctx, (body_key(body)[0], model_ref))


async def modelsync_retain(body: kopf.Body, memo: kopf.Memo, **kwargs: Any) -> None:
    """deletionPolicy Retain: take the owner reference off the Dataset before the ModelSync goes,
    so garbage collection leaves the Dataset (and the weights) in place."""
    ctx = Context.from_kwargs(memo, kwargs)
    namespace, name = body_key(body)
    dataset = (body.get("status") or {}).get("datasetName")
    uid = body.get("metadata", {}).get("uid", "")
    if dataset:
        try:
            orphaned = await ctx.runtime.datasets.orphan(namespace, dataset, uid)
        except ApiError as error:
            raise retry_later(error) from None
        if orphaned:
            ctx.runtime.post_event(body, "Normal", "DatasetRetained", f"Retained Dataset {dataset}")
            logger.info(
                "Retained Dataset", extra={"object": f"{namespace}/{name}", "dataset": dataset}
            )


async def modelsync_deleted(body: kopf.Body, memo: kopf.Memo, **kwargs: Any) -> None:
    """Once gone: forget it, and let its Model and any duplicate it blocked move on."""
    ctx = Context.from_kwargs(memo, kwargs)
    namespace, _ = body_key(body)
    uid = body.get("metadata", {}).get("uid", "")
    forget(ctx, PLURAL, uid)
    ctx.runtime.phases.pop(uid, None)
    metrics.set_phase_counts(ctx.runtime.phases)
    model_ref = body.get("spec", {}).get("modelRef")
    if model_ref:
        from controllers.modelreference import reconcile_references_of_model

        await reconcile_syncs_of_model(ctx, (namespace, model_ref))
        await reconcile_model(ctx, (namespace, model_ref))
        await reconcile_references_of_model(ctx, (namespace, model_ref))


async def dataset_event(
    event: kopf.RawEvent, body: kopf.Body, memo: kopf.Memo, **kwargs: Any
) -> None:
    """A Dataset modelfs manages changed: reconcile the ModelSync that owns it."""
    ctx = Context.from_kwargs(memo, kwargs)
    key = body_key(body)
    if event.get("type") == "DELETED":
        ctx.runtime.applied.pop(key, None)
    from controllers.modelreference import reconcile_reference, reconcile_references_of_model

    owner = controller_owner(body)
    if owner is None:
        return
    owner_key = (key[0], str(owner.get("name")))
    try:
        if owner.get("kind") == "ModelReference":
            await reconcile_reference(ctx, owner_key)
        elif owner.get("kind") == "ModelSync":
            await reconcile_sync(ctx, owner_key)
            sync = ctx.indexes.sync(owner_key)
            model_ref = (sync or {}).get("spec", {}).get("modelRef")
            if model_ref:  # the source of references: its phase and share settings
                await reconcile_references_of_model(ctx, (key[0], model_ref))
    except ApiError as error:
        logger.warning("Reconcile failed", extra={"object": key, "error": str(error)})
