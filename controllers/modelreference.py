"""ModelReference controller: read-only use, in namespace B, of a version synced in namespace A.

modelfs runs with cluster-wide rights, so it must not become the way around a namespace
boundary: a reference is allowed only when the Model opts in (`spec.share.namespaceSelector`)
and the selector, evaluated here by modelfs, matches the consumer namespace's labels. Then it
waits for the source Dataset to be READY and shared (the Dataset operator would not wait), and
creates a REFERENCE Dataset in B. When sharing ends or the source goes, that Dataset is deleted.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any

from modelfs.api.v1 import GROUP, VERSION, Model, ModelReference, ModelSync, Phase
from modelfs.api.v1.reasons import (
    DATASET_ADOPTED,
    DATASET_CONFLICT,
    DATASET_CREATED,
    DATASET_DELETED,
    DATASET_READY,
    DATASET_REJECTED,
    FAILED,
    INVALID_MODEL_REF,
    INVALID_SELECTOR,
    MODEL_NOT_FOUND,
    NAMESPACE_NOT_SELECTED,
    NO_MODELSYNC,
    NOT_ALLOWED,
    NOT_SHARED,
    PENDING,
    PROCESSING,
    READY,
    SHARED,
    SOURCE_LOST,
    SOURCE_NOT_READY,
    SOURCE_READY,
    VERSION_NOT_FOUND,
)
from modelfs.api.v1.rules import check_label, check_subdomain
from modelfs.controllers import metrics, triggers
from modelfs.controllers.descriptor import Descriptor
from modelfs.controllers.result import Result
from modelfs.controllers.runtime import (
    BY_MODEL,
    REFERENCES_BY_MODEL,
    Context,
    Key,
    body_key,
    condition,
    snapshot,
)
from modelfs.controllers.shared import Verdict, first_syncer
from modelfs.controllers.status import (
    Event,
    created_once,
    last_written,
    ready_changed,
    remember_written,
    set_verdicts,
    write_status,
)
from modelfs.pkg.dataset import (
    DATASET_PLURAL,
    MANAGED_BY,
    MANAGED_BY_LABEL,
    MODEL_LABEL,
    VERSION_LABEL,
    Dataset,
    ResolutionError,
    adoptable,
    label_value,
    ownership_conflict,
    reference_dataset_name,
)
from modelfs.pkg.kube import InvalidError
from modelfs.pkg.labels import SelectorError, selector_matches, validate_selector

PLURAL = ModelReference.plural
DATASETS = DATASET_PLURAL
SOURCE_NAMESPACE_LABEL = "model.samzong.dev/source-namespace"

PHASE_REASONS = {Phase.PENDING: PENDING, Phase.PROCESSING: PROCESSING, Phase.FAILED: FAILED}
"""The reason of a Ready that is False while the REFERENCE Dataset is not READY: its phase."""

logger = logging.getLogger("modelfs.modelreference")


# ----------------------------------------------------------------------------- pure builders


def allowed(
    ref: ModelReference, model: Model | None, namespace_labels: dict[str, str] | None
) -> Verdict:
    """Whether the Model shares with the reference's namespace, by modelfs's own evaluation."""
    target = f"{ref.spec.model_ref.namespace}/{ref.spec.model_ref.name}"
    consumer = ref.metadata.namespace or ""
    reference = ref.spec.model_ref
    problems = [
        (f"spec.modelRef.{what}", problem)
        for what, problem in (
            ("namespace", check_label(reference.namespace, "namespace")),
            ("name", check_subdomain(reference.name, "name")),
        )
        if problem is not None
    ]
    for path, problem in problems:  # stored before the rule: no such Model can exist
        return Verdict(False, INVALID_MODEL_REF, f"ModelReference {path}: {problem}")
    if model is None:
        return Verdict(False, MODEL_NOT_FOUND, f"Model {target} does not exist")
    if model.spec.share is None:
        return Verdict(False, NOT_SHARED, f"Model {target} does not share (it has no spec.share)")
    selector = model.spec.share.namespace_selector.to_dict()
    try:
        validate_selector(selector, "spec.share.namespaceSelector")
    except SelectorError as error:
        return Verdict(False, INVALID_SELECTOR, f"Model {target} has an invalid selector: {error}")
    if namespace_labels is None or not selector_matches(selector, namespace_labels):
        return Verdict(
            False,
            NAMESPACE_NOT_SELECTED,
            f"Model {target} does not share with namespace {consumer!r}: its "
            "spec.share.namespaceSelector does not match the namespace's labels",
        )
    if ref.spec.version not in model.spec.version_configs:
        available = ", ".join(sorted(model.spec.version_configs))
        return Verdict(
            False,
            VERSION_NOT_FOUND,
            f"spec.version: Model {target} has no version {ref.spec.version!r} "
            f"(available: {available})",
        )
    return Verdict(
        True, SHARED, f"Model {target} shares version {ref.spec.version} with {consumer!r}"
    )


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
        return Verdict(
            False, reason, f"no ModelSync syncs version {ref.spec.version} of Model {target}"
        )
    dataset = f"{sync.metadata.namespace}/{sync.status.dataset_name or '?'}"
    if source is None or source.get("metadata", {}).get("deletionTimestamp"):
        reason = SOURCE_LOST if was_ready else SOURCE_NOT_READY
        return Verdict(False, reason, f"source Dataset {dataset} does not exist")
    phase = (source.get("status") or {}).get("phase") or Phase.PENDING
    if phase != Phase.READY:
        # The ModelSync's phase, not the Dataset's: it reads the brief FAILED before a round's
        # Job exists as the PENDING it is.
        shown = sync.status.phase or phase
        return Verdict(
            False, SOURCE_NOT_READY, f"source Dataset {dataset} is {shown}, waiting for READY"
        )
    if not (source.get("spec") or {}).get("share"):
        return Verdict(False, SOURCE_NOT_READY, f"source Dataset {dataset} is not shared yet")
    return Verdict(True, SOURCE_READY, f"source Dataset {dataset} is READY")


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


# ----------------------------------------------------------------------------- observe


@dataclass(frozen=True, kw_only=True)
class Observed:
    key: Key
    body: dict[str, Any]
    ref: ModelReference
    model: Model | None
    namespace_labels: dict[str, str] | None
    sync: ModelSync | None
    """The ModelSync that syncs the version (the oldest, as the ModelSync reconciler decides)."""
    source: dict[str, Any] | None
    """The source Dataset, in the Model's namespace."""
    dataset: dict[str, Any] | None
    """The REFERENCE Dataset, in the reference's namespace."""
    written: tuple[str, str] | None = None
    """The Ready (reason, message) modelfs last wrote on it (the index may lag behind)."""
    unseen: bool = False
    """modelfs applied the REFERENCE Dataset and the watch has not brought it back yet: the
    index lacks it, the API server has it (a revocation deletes it all the same)."""


async def observe(ctx: Context, key: Key, body: dict[str, Any]) -> Observed | None:
    """What the reconcile of `body` (the object `key`, as the runner found it) reads."""
    if body.get("metadata", {}).get("deletionTimestamp"):
        return None
    try:
        ref = ctx.runtime.parse(ModelReference, body)
    except ResolutionError as error:
        logger.debug("Refused ModelReference", extra={"object": key, "error": str(error)})
        return None
    model_key = (ref.spec.model_ref.namespace, ref.spec.model_ref.name)
    model_body = ctx.indexes.model(model_key)
    try:
        model = ctx.runtime.parse(Model, model_body) if model_body is not None else None
    except ResolutionError:
        model = None
    first = first_syncer(ctx.indexes.syncs_of_model(model_key), ref.spec.version)
    sync = None
    if first is not None:
        try:
            sync = ctx.runtime.parse(ModelSync, first)
        except ResolutionError:
            sync = None
    source_name = sync.status.dataset_name if sync is not None else None
    source = ctx.indexes.dataset((model_key[0], source_name)) if source_name else None
    consumer = ctx.indexes.namespace(key[0])
    labels = (consumer or {}).get("labels")
    dataset_key = (key[0], reference_dataset_name(ref.metadata.name))
    dataset = ctx.indexes.dataset(dataset_key)
    written = last_written(ctx, PLURAL, body)
    unseen = dataset is None and ctx.runtime.expecting(DATASETS, dataset_key)
    return Observed(
        key=key,
        body=body,
        ref=ref,
        model=model,
        namespace_labels=labels,
        sync=sync,
        source=source,
        dataset=dataset,
        written=written,
        unseen=unseen,
    )


# ----------------------------------------------------------------------------- decide


@dataclass(frozen=True)
class Plan:
    """What a reconcile of one ModelReference does, and what it found. Built by `decide`,
    carried out by `act`."""

    status: dict[str, Any] = field(default_factory=dict)
    """The whole status it should have (written only where it differs from the stored one)."""
    create: dict[str, Any] | None = None
    """A REFERENCE Dataset manifest to create (server-side apply)."""
    delete: str | None = None
    """The REFERENCE Dataset to delete, when the reference lost its right or its source."""
    deleted: Event | None = None
    """The Event of that delete: posted when the delete found the Dataset."""
    events: list[Event] = field(default_factory=list)
    status_events: list[Event] = field(default_factory=list)
    # -- what it found
    now: datetime | None = None
    """The moment of the decision: a rejected create is shown as of it too (`rejected`)."""
    phase: Phase = Phase.PENDING
    allowed: Verdict | None = None
    """The Allowed condition: whether the Model shares with the reference's namespace."""
    source_ready: Verdict | None = None
    """The SourceReady condition."""
    ready: Verdict | None = None
    """The Ready condition."""
    source: tuple[str, str] | None = None
    """The source Dataset (namespace, name)."""
    dataset: dict[str, Any] | None = None
    """The REFERENCE Dataset, as it is or as it is created."""


def removal(plan: Plan, existing: dict[str, Any] | None, why: str) -> Plan:
    """`plan` deleting the REFERENCE Dataset `existing`, unless there is none or it is going
    already."""
    if existing is None or existing.get("metadata", {}).get("deletionTimestamp"):
        return plan
    name = existing["metadata"]["name"]
    deleted = ("Warning", DATASET_DELETED, f"Deleted Dataset {name}: {why}")
    return replace(plan, delete=name, deleted=deleted)


def converge(observed: Observed) -> Plan:
    """Where the REFERENCE Dataset should be, and what the ModelReference says about it."""
    ref, existing = observed.ref, observed.dataset
    # What a revocation deletes: the Dataset as the index shows it, or as modelfs applied it.
    going = existing
    if going is None and observed.unseen:
        going = {"metadata": {"name": reference_dataset_name(ref.metadata.name)}}
    current = observed.body.get("status") or {}
    permission = allowed(ref, observed.model, observed.namespace_labels)
    before = condition(current, "SourceReady")
    # Lost stays lost (not "never had one") until a source is back.
    was_ready = before.get("status") == "True" or before.get("reason") == SOURCE_LOST
    name = reference_dataset_name(ref.metadata.name)
    adopting = False
    if existing is not None:
        conflict = ownership_conflict(existing, ref.metadata.uid or "")
        if conflict is not None and not adoptable(existing, observed.body):
            verdict = Verdict(False, DATASET_CONFLICT, f"{conflict}; modelfs does not take it over")
            return Plan(phase=Phase.FAILED, allowed=permission, source_ready=verdict, ready=verdict)
        adopting = conflict is not None  # modelfs's own, for this reference: taken back
    if not permission.ready:
        refused = Plan(
            phase=Phase.FAILED,
            allowed=permission,
            source_ready=Verdict(False, NOT_ALLOWED, "the reference is not allowed"),
            ready=permission,
        )
        return removal(refused, going, permission.message)
    sync = observed.sync
    model_namespace = ref.spec.model_ref.namespace
    source_key = (
        (model_namespace, sync.status.dataset_name) if sync and sync.status.dataset_name else None
    )
    readiness = source_readiness(ref, sync, observed.source, was_ready)
    if readiness.reason in (NO_MODELSYNC, SOURCE_LOST) or (
        observed.source is None and existing is not None
    ):
        lost = Plan(
            allowed=permission, source_ready=readiness, ready=replace(readiness, ready=False)
        )
        return removal(lost, going, readiness.message)
    if not readiness.ready and existing is None:
        return Plan(
            allowed=permission,
            source_ready=readiness,
            ready=replace(readiness, ready=False),
            source=source_key,
        )
    assert source_key is not None
    if existing is None:
        created = (
            "Normal",
            DATASET_CREATED,
            f"Created Dataset {name} reading {source_key[0]}/{source_key[1]}",
        )
        manifest = reference_dataset(ref, source_key).to_manifest()
        return Plan(
            allowed=permission,
            source_ready=readiness,
            ready=Verdict(False, PENDING, f"Dataset {name} is PENDING"),
            source=source_key,
            dataset=manifest,
            events=[created],
            create=manifest,
        )
    phase = Phase((existing.get("status") or {}).get("phase") or Phase.PENDING)
    ready = (
        Verdict(True, DATASET_READY, f"Dataset {name} is READY: mount PVC read-only")
        if phase == Phase.READY
        else Verdict(False, PHASE_REASONS[phase], f"Dataset {name} is {phase.value}")
    )
    found = Plan(
        phase=phase,
        allowed=permission,
        source_ready=readiness,
        ready=ready,
        source=source_key,
        dataset=existing,
    )
    if not adopting:
        return found
    adopted = (
        "Normal",
        DATASET_ADOPTED,
        f"Took back Dataset {name}: it had lost its owner reference (modelfs made it for "
        "this ModelReference)",
    )
    manifest = reference_dataset(ref, source_key).to_manifest()
    return replace(found, events=[adopted], create=manifest)


def desired_status(ref: ModelReference, current: dict[str, Any], plan: Plan) -> dict[str, Any]:
    assert plan.allowed is not None and plan.source_ready is not None and plan.ready is not None
    assert plan.now is not None
    generation = ref.metadata.generation
    conditions = set_verdicts(
        current.get("conditions") or [],
        [("Allowed", plan.allowed), ("SourceReady", plan.source_ready), ("Ready", plan.ready)],
        generation,
        plan.now,
    )
    status: dict[str, Any] = {
        "phase": plan.phase.value,
        "conditions": [c.to_dict() for c in conditions],
        "observedGeneration": generation,
        "readOnly": True,
    }
    if plan.source is not None:
        status["source"] = {"namespace": plan.source[0], "dataset": plan.source[1]}
    if plan.dataset is not None:
        status["datasetName"] = plan.dataset["metadata"]["name"]
        pvc = (plan.dataset.get("status") or {}).get("pvcName")
        if pvc:
            status["pvcName"] = pvc
    return status


def decide(observed: Observed, now: datetime) -> Plan:
    plan = replace(converge(observed), now=now)
    assert plan.ready is not None and plan.allowed is not None
    current = observed.body.get("status") or {}
    status_events: list[Event] = []
    if ready_changed(current, plan.ready.reason, plan.ready.message, observed.written):
        if plan.ready.ready:
            status_events.append(("Normal", READY, plan.ready.message))
        elif not plan.allowed.ready:
            status_events.append(("Warning", plan.allowed.reason, plan.allowed.message))
    status = desired_status(observed.ref, current, plan)
    return replace(plan, status=status, status_events=status_events)


def rejected(observed: Observed, plan: Plan, message: str) -> Plan:
    """The plan once the API server refused its Dataset (422): Ready says so, as of the same
    moment as the plan; the Events of the create are void."""
    refused = replace(
        plan,
        phase=Phase.FAILED,
        ready=Verdict(False, DATASET_REJECTED, message),
        dataset=None,
        create=None,
        events=[],
    )
    return replace(
        refused, status=desired_status(observed.ref, observed.body.get("status") or {}, refused)
    )


# ----------------------------------------------------------------------------- act


async def act(ctx: Context, observed: Observed, plan: Plan) -> None:
    key, writer = observed.key, ctx.runtime.writer
    events: list[Event] = []
    if plan.delete is not None:
        # Whatever modelfs applied before is void: the Dataset is not expected back.
        ctx.runtime.drop_expectation(DATASETS, (key[0], plan.delete))
        if await writer.delete_dataset(key[0], plan.delete):
            logger.info("Deleted reference Dataset", extra={"object": key, "dataset": plan.delete})
            if plan.deleted is not None:
                events.append(plan.deleted)
        # else gone already: nothing to announce
    shown = plan
    if plan.create is not None:
        name = plan.create["metadata"]["name"]
        try:
            created = await ctx.runtime.write(
                DATASETS, (key[0], name), writer.apply_dataset(plan.create)
            )
        except InvalidError as error:
            shown = rejected(observed, plan, f"the API server refused Dataset {name}: {error}")
        else:
            assert created is not None
            shown = replace(plan, events=created_once(ctx, (key[0], name), created, plan.events))
            logger.info("Applied reference Dataset", extra={"object": key, "dataset": name})
    events += shown.events
    stored = observed.body.get("status") or {}
    written = await write_status(ctx, PLURAL, key, stored, shown.status)
    if written:
        remember_written(ctx, PLURAL, observed.body, shown.status)
    ctx.runtime.post_events(observed.body, events + (plan.status_events if written else []))


async def reconcile(ctx: Context, key: Key, body: dict[str, Any]) -> Result:
    observed = await observe(ctx, key, body)
    if observed is None:
        ctx.runtime.forget_object(PLURAL, key)
        return Result.done()
    plan = decide(observed, datetime.now(UTC))
    if plan.delete is None:
        # A revocation never waits for modelfs's own writes to come back: access ends now.
        dataset_key = (key[0], reference_dataset_name(key[1]))
        waiting = ctx.runtime.wait_for_own_write(PLURAL, key) or ctx.runtime.wait_for_own_write(
            DATASETS, dataset_key
        )
        if waiting is not None:
            return Result.after(waiting)
    metrics.RECONCILES.labels(kind="ModelReference").inc()
    await act(ctx, observed, plan)
    return Result.done()


def index(body: Mapping[str, Any]) -> dict[tuple[str, ...], dict[str, Any] | tuple[str, str]]:
    """By name, and by the Model it reads (namespace, name) -> (namespace, name)."""
    namespace, name = body_key(body)
    target = (body.get("spec") or {}).get("modelRef") or {}
    model = (str(target.get("namespace", "")), str(target.get("name", "")))
    return {(namespace, name): snapshot(body), (BY_MODEL, *model): (namespace, name)}


DESCRIPTOR = Descriptor(
    kind=ModelReference.kind_name,
    plural=PLURAL,
    group=GROUP,
    version=VERSION,
    parsed=ModelReference,
    index=index,
    views={"modelreferences": None, REFERENCES_BY_MODEL: BY_MODEL},
    triggers=triggers.reference_changed,
    reconcile=reconcile,
    workers=4,
    phase=True,
)
