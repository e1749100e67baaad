"""`decide` of each reconciler, branch by branch: pure functions of what was observed."""

from __future__ import annotations

import itertools
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar

from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import BaseModel

from modelfs.api.v1 import Model, ModelReference, ModelSource, ModelSync
from modelfs.controllers import model, modelreference, modelsource, modelsync
from modelfs.controllers.shared import Verdict, reference_target, shares_with, source_verdict
from modelfs.pkg.dataset import ResolutionError, adoptable
from modelfs.pkg.dataset.client import FIELD_MANAGER
from modelfs.pkg.dataset.errors import Reason
from modelfs.pkg.dataset.ownership import MODELFS_MANAGER

NOW = datetime(2026, 11, 27, 12, 0, tzinfo=UTC)
NS = "team-a"


GENERATIONS = itertools.count(1)


Parsed = TypeVar("Parsed", bound=BaseModel)


def parsed(cls: type[Parsed], kind: str, name: str, spec: dict[str, Any], **meta: Any) -> Parsed:
    """An object as the API server stores it; each one built is a new generation of its spec
    (resolution is remembered per uid and generation: `controllers.shared.SpecMemo`)."""
    generation = next(GENERATIONS)
    metadata = {"name": name, "namespace": NS, "uid": f"uid-{name}", "generation": generation}
    metadata.update(meta)
    return cls.model_validate({"metadata": metadata, "spec": spec})


SOURCE = parsed(ModelSource, "ModelSource", "src", {"type": "HTTP"})
MODEL = parsed(
    Model, "Model", "mdl", {"sourceRef": "src", "versionConfigs": {"v1": {"repo": "https://h/x/"}}}
)


def sync(**spec: Any) -> ModelSync:
    return parsed(ModelSync, "ModelSync", "sync", {"modelRef": "mdl", "version": "v1", **spec})


def observed(**fields: Any) -> modelsync.Observed:
    the_sync = fields.pop("sync", sync())
    body = {"metadata": the_sync.metadata.to_dict(), "spec": the_sync.spec.to_dict(), "status": {}}
    defaults: dict[str, Any] = {
        "model": MODEL,
        "source": SOURCE,
        "source_verdict": source_verdict(SOURCE, None),
    }
    return modelsync.Observed(
        key=("team-a", "sync"), body=body, sync=the_sync, **{**defaults, **fields}
    )


def ready_of(plan: modelsync.Plan) -> dict[str, Any]:
    assert plan.status is not None
    return next(c for c in plan.status["conditions"] if c["type"] == "Ready")


def test_sync_refusals_name_what_is_wrong() -> None:
    cases = [
        (observed(rival="older"), "DuplicateModelSync", "'older'"),
        (observed(model=None), "ModelNotFound", "'mdl'"),
        (observed(source=None), "SourceNotFound", "'src'"),
        (
            observed(source_verdict=Verdict(False, "SecretMissing", "Secret 's' does not exist")),
            "SecretMissing",
            "Secret 's'",
        ),
        (
            observed(error=ResolutionError("Model", "spec.x", "bad", Reason.INVALID_CONFIG)),
            "InvalidConfig",
            "spec.x",
        ),
    ]
    for seen, reason, named in cases:
        plan = modelsync.decide(seen, NOW)
        assert plan.apply is None and plan.status is not None
        assert plan.status["phase"] == "FAILED"
        ready = ready_of(plan)
        assert ready["reason"] == reason and named in ready["message"], ready
        assert ("Warning", reason, ready["message"]) in plan.status_events


def test_sync_creates_its_dataset_and_says_so_in_its_status() -> None:
    plan = modelsync.decide(observed(), NOW)
    assert plan.apply is not None and plan.apply["metadata"]["name"] == "mdl-v1"
    assert plan.apply["spec"]["dataSyncRound"] == 1
    assert plan.events == [] and plan.status_events == []  # the status tells it (decisions.md)
    assert plan.status is not None and plan.status["phase"] == "PENDING"
    assert plan.status["datasetName"] == "mdl-v1"
    assert plan.apply_cause == "create"


def test_sync_refuses_a_dataset_it_does_not_own() -> None:
    foreign = {"metadata": {"name": "mdl-v1", "namespace": NS, "ownerReferences": []}, "spec": {}}
    plan = modelsync.decide(observed(dataset=foreign), NOW)
    assert plan.apply is None
    assert ready_of(plan)["reason"] == "DatasetConflict"


def owned(status: dict[str, Any], round_: int = 1) -> dict[str, Any]:
    manifest = modelsync.decide(observed(), NOW).apply
    assert manifest is not None
    body = {**manifest, "status": status}
    body["spec"] = {**manifest["spec"], "dataSyncRound": round_}
    return body


def test_sync_mirrors_a_ready_dataset_without_writing_it() -> None:
    ready = owned({"phase": "READY", "lastSucceedRound": 1, "pvcName": "mdl-v1"})
    plan = modelsync.decide(observed(dataset=ready), NOW)
    assert plan.apply is None and plan.events == []
    assert plan.status is not None and plan.status["phase"] == "READY"
    assert plan.status["pvcName"] == "mdl-v1"
    # every round's end is told by an Event, the first included (kubectl describe's history)
    [(type_, reason, message)] = plan.status_events
    assert (type_, reason) == ("Normal", "Synced")
    assert (
        message == "Fetched the version (size unknown: not looked up): " + ready_of(plan)["message"]
    )


def test_sync_announces_the_end_of_a_round_an_event_started() -> None:
    second = owned({"phase": "READY", "lastSucceedRound": 2, "pvcName": "mdl-v1"}, round_=2)
    plan = modelsync.decide(observed(dataset=second), NOW)
    assert plan.status is not None and plan.status["phase"] == "READY"
    [(type_, reason, message)] = plan.status_events
    assert (type_, reason) == ("Normal", "Synced")
    assert message.startswith("Fetched ") and message.endswith(ready_of(plan)["message"])


def test_sync_raises_the_round_for_a_raised_trigger() -> None:
    ready = owned({"phase": "READY", "lastSucceedRound": 1})
    raised = sync(syncRound=3)
    raised.status.observed_sync_round = 1
    plan = modelsync.decide(observed(sync=raised, dataset=ready), NOW)
    assert plan.apply is not None and plan.apply["spec"]["dataSyncRound"] == 2
    assert plan.apply_cause == "requested"
    assert plan.status is not None and plan.status["observedSyncRound"] == 3


def test_sync_waits_for_a_dataset_being_deleted() -> None:
    going = owned({})
    going["metadata"] = {**going["metadata"], "deletionTimestamp": "2026-11-27T00:00:00Z"}
    plan = modelsync.decide(observed(dataset=going), NOW)
    assert plan.apply is None and ready_of(plan)["reason"] == "DatasetDeleting"


def test_sync_retry_is_scheduled_after_its_backoff() -> None:
    failed = owned(
        {
            "phase": "FAILED",
            "syncRoundStatuses": [
                {"round": 1, "jobName": "j", "startTime": "2026-11-27T11:00:00Z"}
            ],
        }
    )
    plan = modelsync.decide(observed(dataset=failed), NOW)
    assert plan.apply is None and plan.requeue_after is not None and plan.requeue_after > 59
    assert ready_of(plan)["reason"] == "RoundFailed"
    assert plan.status is not None and plan.status["lastFailureTime"] == "2026-11-27T12:00:00Z"


def test_deletion_without_retain_needs_nothing() -> None:
    gone = sync()
    gone.metadata.deletion_timestamp = "2026-11-27T00:00:00Z"
    assert modelsync.decide(observed(sync=gone), NOW) == modelsync.Plan()


def source_observed(secret_ref: str | None, keys: frozenset[str] | None) -> modelsource.Observed:
    spec: dict[str, Any] = {"type": "HUGGING_FACE"}
    if secret_ref:
        spec["secretRef"] = secret_ref
    source = parsed(ModelSource, "ModelSource", "hf", spec)
    body = {"metadata": source.metadata.to_dict(), "spec": spec, "status": {}}
    return modelsource.Observed(
        key=(NS, "hf"), body=body, source=source, secret_keys=keys, models=2
    )


def test_source_verdicts_and_their_events() -> None:
    cases = [
        (None, None, "Ready", "Normal"),
        ("tok", None, "SecretMissing", "Warning"),
        ("tok", frozenset({"other"}), "SecretKeyMissing", "Warning"),
        ("tok", frozenset({"token"}), "Ready", "Normal"),
    ]
    for secret, keys, reason, type_ in cases:
        plan = modelsource.decide(source_observed(secret, keys), NOW)
        assert plan.verdict.reason == reason
        assert plan.status["models"] == 2
        assert plan.events == [(type_, reason, plan.verdict.message)]


def model_observed(**fields: Any) -> model.Observed:
    body = {"metadata": MODEL.metadata.to_dict(), "spec": MODEL.spec.to_dict(), "status": {}}
    defaults: dict[str, Any] = {
        "source": SOURCE,
        "source_verdict": source_verdict(SOURCE, None),
        "syncs": [],
        "readers": [],
    }
    return model.Observed(key=(NS, "mdl"), body=body, model=MODEL, **{**defaults, **fields})


def test_model_readiness_branches() -> None:
    assert model.decide(model_observed(source=None), NOW).ready.reason == "SourceNotFound"
    not_ready = Verdict(False, "SecretMissing", "no Secret")
    assert (
        model.decide(model_observed(source_verdict=not_ready), NOW).ready.reason == "SourceNotReady"
    )
    plan = model.decide(
        model_observed(
            syncs=[
                {
                    "metadata": {"name": "s", "uid": "u"},
                    "spec": {"version": "v1"},
                    "status": {"phase": "READY"},
                }
            ],
            readers=[("v1", "team-b/ref")],
        ),
        NOW,
    )
    assert plan.ready.ready
    assert plan.status["versions"] == [
        {"name": "v1", "sync": "s", "phase": "READY", "size": "-", "references": ["team-b/ref"]}
    ]


def ref_observed(**fields: Any) -> modelreference.Observed:
    ref = parsed(
        ModelReference,
        "ModelReference",
        "ref",
        {"modelRef": {"namespace": "team-a", "name": "mdl"}, "version": "v1"},
    )
    body = {"metadata": ref.metadata.to_dict(), "spec": ref.spec.to_dict(), "status": {}}
    shared = parsed(
        Model,
        "Model",
        "mdl",
        {
            "sourceRef": "src",
            "versionConfigs": {"v1": {"repo": "https://h/x/"}},
            "share": {"namespaceSelector": EVERY_NAMESPACE},
        },
    )
    syncing = sync()
    syncing.status.dataset_name = "mdl-v1"
    defaults: dict[str, Any] = {
        "model": shared,
        "namespace_labels": {"kubernetes.io/metadata.name": "team-b"},
        "sync": syncing,
        "source": {
            "metadata": {"name": "mdl-v1"},
            "spec": {"share": True},
            "status": {"phase": "READY"},
        },
        "dataset": None,
    }
    return modelreference.Observed(key=(NS, "ref"), body=body, ref=ref, **{**defaults, **fields})


# How a Model shares with every namespace (an empty selector is refused: docs/decisions.md).
EVERY_NAMESPACE = {
    "matchExpressions": [{"key": "kubernetes.io/metadata.name", "operator": "Exists"}]
}


def test_reference_branches() -> None:
    created = modelreference.decide(ref_observed(), NOW)
    assert created.create is not None
    assert created.create["spec"]["source"]["uri"] == "dataset://team-a/mdl-v1"
    assert [e[1] for e in created.events] == ["DatasetCreated"]

    existing = {**created.create, "status": {"phase": "READY", "pvcName": "ref"}}
    ready = modelreference.decide(ref_observed(dataset=existing), NOW)
    assert ready.create is None and ready.status["phase"] == "READY"

    revoked = modelreference.decide(ref_observed(model=MODEL, dataset=existing), NOW)
    assert revoked.delete == "ref" and revoked.status["phase"] == "FAILED"
    assert revoked.deleted is not None and revoked.deleted[1] == "DatasetDeleted"
    assert revoked.events == []

    waiting = modelreference.decide(
        ref_observed(source={"metadata": {}, "spec": {}, "status": {"phase": "PROCESSING"}}), NOW
    )
    assert waiting.create is None and waiting.status["phase"] == "PENDING"

    lost = modelreference.decide(ref_observed(sync=None, dataset=existing), NOW)
    assert lost.delete == "ref" and lost.status["phase"] == "PENDING"


# ----------------------------------------------------------------------------- adoption (defect 7)

SYNC_CREATED = "2026-11-27T10:00:00Z"


def lost_owner(**overrides: Any) -> dict[str, Any]:
    """modelfs's Dataset of `sync()` after a hand edit removed its owner reference."""
    manifest = modelsync.decide(observed(), NOW).apply
    assert manifest is not None
    meta = {
        **manifest["metadata"],
        "ownerReferences": [],
        "creationTimestamp": "2026-11-27T10:00:01Z",
        "managedFields": [{"manager": "modelfs", "operation": "Apply"}],
        **overrides,
    }
    return {**manifest, "metadata": meta, "status": {"phase": "READY", "lastSucceedRound": 1}}


def synced_before(**status: Any) -> modelsync.Observed:
    """A ModelSync whose status names its Dataset (it resolved to it before)."""
    seen = observed(dataset=lost_owner())
    body = {
        **seen.body,
        "metadata": {**seen.body["metadata"], "creationTimestamp": SYNC_CREATED},
        "status": {"datasetName": "mdl-v1", "phase": "READY", **status},
    }
    return modelsync.Observed(
        key=seen.key,
        body=body,
        sync=seen.sync,
        model=seen.model,
        source=seen.source,
        source_verdict=seen.source_verdict,
    )


def test_sync_takes_back_its_own_dataset_that_lost_its_owner() -> None:
    base = synced_before()
    plan = modelsync.decide(replace(base, dataset=lost_owner()), NOW)
    assert plan.apply is not None
    owners = plan.apply["metadata"]["ownerReferences"]
    assert [(o["kind"], o["uid"], o["controller"]) for o in owners] == [
        ("ModelSync", "uid-sync", True)
    ]
    assert [e[1] for e in plan.events] == ["DatasetAdopted"]
    assert plan.apply_cause == "adopt"
    assert ready_of(plan)["reason"] != "DatasetConflict"


def test_sync_never_takes_a_look_alike_without_all_the_evidence() -> None:
    """Each piece of evidence alone is missing once: every such Dataset is refused."""
    base = synced_before()
    look_alikes = {
        "label only (no modelfs field manager)": lost_owner(managedFields=[]),
        "another manager": lost_owner(managedFields=[{"manager": "kubectl", "operation": "Apply"}]),
        "no managed-by label": lost_owner(labels={"model.samzong.dev/model": "mdl"}),
        "older than the ModelSync": lost_owner(creationTimestamp="2026-11-27T09:59:59Z"),
        "owned by someone else": lost_owner(
            ownerReferences=[{"kind": "X", "name": "x", "uid": "u", "controller": True}]
        ),
    }
    for why, dataset in look_alikes.items():
        plan = modelsync.decide(replace(base, dataset=dataset), NOW)
        assert plan.apply is None, why
        assert ready_of(plan)["reason"] == "DatasetConflict", why
    # The ModelSync's status does not name it (a new ModelSync, e.g. after a Retain).
    fresh = replace(base, body={**base.body, "status": {}}, dataset=lost_owner())
    assert modelsync.decide(fresh, NOW).apply is None


def test_adoptable_requires_every_piece_of_evidence() -> None:
    owner = {
        "metadata": {"name": "s", "namespace": NS, "creationTimestamp": SYNC_CREATED},
        "status": {"datasetName": "mdl-v1"},
    }
    assert adoptable(lost_owner(), owner)
    assert not adoptable(lost_owner(namespace="elsewhere"), owner)
    assert not adoptable(lost_owner(), {**owner, "status": {"datasetName": "other"}})
    assert not adoptable(lost_owner(creationTimestamp=None), owner)
    assert not adoptable(lost_owner(), {**owner, "metadata": {"name": "s", "namespace": NS}})


def test_the_field_manager_of_the_evidence_is_the_one_modelfs_applies_with() -> None:
    assert MODELFS_MANAGER == FIELD_MANAGER


def test_reference_takes_back_its_own_dataset_that_lost_its_owner() -> None:
    created = modelreference.decide(ref_observed(), NOW).create
    assert created is not None
    lost = {
        **created,
        "metadata": {
            **created["metadata"],
            "ownerReferences": [],
            "creationTimestamp": "2026-11-27T10:00:01Z",
            "managedFields": [{"manager": "modelfs", "operation": "Apply"}],
        },
        "status": {"phase": "READY"},
    }
    base = ref_observed(dataset=lost)
    body = {
        **base.body,
        "metadata": {**base.body["metadata"], "creationTimestamp": SYNC_CREATED},
        "status": {"datasetName": "ref"},
    }
    plan = modelreference.decide(replace(base, body=body), NOW)
    assert plan.create is not None and plan.create["metadata"]["ownerReferences"]
    assert [e[1] for e in plan.events] == ["DatasetAdopted"]
    forged = {**lost, "metadata": {**lost["metadata"], "managedFields": []}}
    refused = modelreference.decide(replace(base, body=body, dataset=forged), NOW)
    assert refused.create is None and refused.status["phase"] == "FAILED"


# ----------------------------------------------------------------------------- events (defect 8)


def test_a_ready_change_is_announced_once_however_the_index_lags() -> None:
    """The stored status (from the index) still says SecretMissing; modelfs already wrote Ready
    and announced it: no second event. A real change (back to SecretMissing) is announced."""
    seen = source_observed(None, None)
    stale = {
        "conditions": [
            {
                "type": "Ready",
                "status": "False",
                "reason": "SecretMissing",
                "message": "gone",
                "lastTransitionTime": "2026-11-27T11:00:00Z",
            }
        ]
    }
    lagging = replace(seen, body={**seen.body, "status": stale})
    first = modelsource.decide(lagging, NOW)
    assert [e[1] for e in first.events] == ["Ready"]
    written = (first.verdict.reason, first.verdict.message)
    again = modelsource.decide(replace(lagging, written=written), NOW + timedelta(seconds=1))
    assert again.events == []
    back = modelsource.decide(
        replace(source_observed("tok", None), written=written), NOW + timedelta(seconds=2)
    )
    assert [e[1] for e in back.events] == ["SecretMissing"]
    model_plan = model.decide(replace(model_observed(), written=("Ready", "x")), NOW)
    assert [e[1] for e in model_plan.events] == ["Ready"]
    assert (
        model.decide(
            replace(model_observed(), written=(model_plan.ready.reason, model_plan.ready.message)),
            NOW,
        ).events
        == []
    )


# ----------------------------------------------------------------------------- REFERENCE (defect 6)


def test_a_reference_source_to_another_namespace_needs_its_share_and_says_nothing_more() -> None:
    """A REFERENCE ModelSource whose version names another namespace's Dataset: modelfs
    applies the share rule itself before it creates anything, and every refusal reads the same
    (whether that Dataset exists, or shares with others, is the other namespace's business)."""
    ref_source = parsed(ModelSource, "ModelSource", "src", {"type": "REFERENCE"})
    ref_model = parsed(
        Model, "Model", "mdl", {"sourceRef": "src", "versionConfigs": {"v1": {"repo": "other/ds"}}}
    )
    assert reference_target(ref_source, ref_model, "v1") == ("other", "ds")
    same_ns = parsed(
        Model, "Model", "mdl", {"sourceRef": "src", "versionConfigs": {"v1": {"repo": f"{NS}/ds"}}}
    )
    assert reference_target(ref_source, same_ns, "v1") is None
    assert reference_target(SOURCE, MODEL, "v1") is None

    def dataset(**spec: Any) -> dict[str, Any]:
        return {"metadata": {"name": "ds", "namespace": "other"}, "spec": spec}

    labels = {"team": "a"}
    refused_cases = {
        "no such Dataset": None,
        "not shared": dataset(),
        "shared with other namespaces": dataset(
            share=True, shareToNamespaceSelector={"matchLabels": {"team": "b"}}
        ),
        "a selector in error": dataset(
            share=True,
            shareToNamespaceSelector={"matchExpressions": [{"key": "team", "operator": "Bad"}]},
        ),
    }
    messages = set()
    for why, target in refused_cases.items():
        shared = shares_with(target, labels)
        assert not shared, why
        seen = observed(
            model=ref_model,
            source=ref_source,
            source_verdict=source_verdict(ref_source, None),
            shared_with_us=(("other", "ds"), shared),
        )
        plan = modelsync.decide(seen, NOW)
        assert plan.apply is None, why
        ready = ready_of(plan)
        assert ready["reason"] == "SourceNotShared", why
        messages.add(ready["message"])
    assert len(messages) == 1, messages
    assert "ModelReference" in messages.pop()
    for allowed in (
        dataset(share=True),
        dataset(share=True, shareToNamespaceSelector={"matchLabels": {"team": "a"}}),
    ):
        assert shares_with(allowed, labels)
    seen = observed(
        model=ref_model,
        source=ref_source,
        source_verdict=source_verdict(ref_source, None),
        shared_with_us=(("other", "ds"), True),
    )
    plan = modelsync.decide(seen, NOW)
    assert plan.apply is not None
    assert plan.apply["spec"]["source"] == {"type": "REFERENCE", "uri": "dataset://other/ds"}


EVIDENCE = ("no controller owner", "label", "field manager", "named by status", "not older")


@settings(max_examples=200, deadline=None, derandomize=True)
@given(
    missing=st.sets(st.sampled_from(EVIDENCE)),
    other_manager=st.sampled_from(["kubectl", "kubectl-client-side-apply", "Modelfs", ""]),
    seconds_before=st.integers(min_value=1, max_value=10**6),
)
def test_adoption_needs_every_piece_of_evidence(
    missing: set[str], other_manager: str, seconds_before: int
) -> None:
    """Whatever forgeable evidence a look-alike carries, missing any one piece is a refusal."""
    overrides: dict[str, Any] = {}
    if "no controller owner" in missing:
        overrides["ownerReferences"] = [
            {"kind": "ModelSync", "name": "x", "uid": "other", "controller": True}
        ]
    if "label" in missing:
        overrides["labels"] = {"app.kubernetes.io/managed-by": "someone"}
    if "field manager" in missing:
        overrides["managedFields"] = [{"manager": other_manager, "operation": "Apply"}]
    if "not older" in missing:
        moment = datetime(2026, 11, 27, 10, 0, tzinfo=UTC).timestamp() - seconds_before
        overrides["creationTimestamp"] = datetime.fromtimestamp(moment, UTC).strftime(
            "%Y-%m-%dT%H:%M:%SZ"
        )
    owner = {
        "metadata": {"name": "s", "namespace": NS, "creationTimestamp": SYNC_CREATED},
        "status": {"datasetName": "other" if "named by status" in missing else "mdl-v1"},
    }
    assert adoptable(lost_owner(**overrides), owner) == (not missing)


def served(body: dict[str, Any], sync_round: int | None, attempts: int = 0) -> dict[str, Any]:
    """The Dataset as an apply leaves it: what its round serves recorded on it (None: a Dataset
    from before that record)."""
    meta = dict(body["metadata"])
    annotations = dict(meta.pop("annotations", None) or {})
    annotations.pop(modelsync.SERVED_ROUND_ANNOTATION, None)
    annotations.pop(modelsync.ATTEMPTS_ANNOTATION, None)
    if sync_round is not None:
        annotations[modelsync.SERVED_ROUND_ANNOTATION] = str(sync_round)
        annotations[modelsync.ATTEMPTS_ANNOTATION] = str(attempts)
    if annotations:
        meta["annotations"] = annotations
    return {**body, "metadata": meta}


def test_the_dataset_records_what_its_round_serves_in_the_same_apply() -> None:
    created = modelsync.decide(observed(sync=sync(syncRound=4)), NOW).apply
    assert created is not None
    assert created["metadata"]["annotations"] == {
        modelsync.SERVED_ROUND_ANNOTATION: "4",
        modelsync.ATTEMPTS_ANNOTATION: "0",
    }
    raised = sync(syncRound=3)
    raised.status.observed_sync_round = 1
    ready = served(owned({"phase": "READY", "lastSucceedRound": 1}), 1)
    plan = modelsync.decide(observed(sync=raised, dataset=ready), NOW)
    assert plan.apply is not None and plan.apply["spec"]["dataSyncRound"] == 2
    assert plan.apply["metadata"]["annotations"][modelsync.SERVED_ROUND_ANNOTATION] == "3"


def test_a_kill_after_a_raised_round_was_applied_starts_no_extra_round() -> None:
    # Killed between the two writes serving syncRound 2: the Dataset's round 2 (recorded as
    # serving syncRound 2) ran and succeeded, the status still says trigger 1.
    raised = sync(syncRound=2)
    raised.status.observed_sync_round = 1
    raised.status.attempts = 0
    done = served(owned({"phase": "READY", "lastSucceedRound": 2}, round_=2), 2)
    plan = modelsync.decide(observed(sync=raised, dataset=done), NOW)
    assert plan.apply is None and plan.events == []
    assert plan.status is not None and plan.status["observedSyncRound"] == 2
    assert plan.status["phase"] == "READY"


def test_a_round_raised_after_an_unrecorded_creation_is_downloaded() -> None:
    # Killed between the Dataset's creation (serving syncRound 1) and the first status write;
    # the user raised syncRound to 2 meanwhile: round 2 is owed.
    raised = sync(syncRound=2)
    ready = served(owned({"phase": "READY", "lastSucceedRound": 1}), 1)
    plan = modelsync.decide(observed(sync=raised, dataset=ready), NOW)
    assert plan.apply is not None and plan.apply["spec"]["dataSyncRound"] == 2
    assert plan.apply_cause == "requested"
    assert plan.status is not None and plan.status["observedSyncRound"] == 2


def test_a_dataset_from_before_the_record_keeps_the_old_reading() -> None:
    raised = sync(syncRound=2)
    ready = served(owned({"phase": "READY", "lastSucceedRound": 1}), None)
    plan = modelsync.decide(observed(sync=raised, dataset=ready), NOW)
    assert plan.apply is None  # no status: the trigger counts as served, as before the record
    assert plan.status is not None and plan.status["observedSyncRound"] == 2


FAILED_ROUND_2 = {
    "phase": "FAILED",
    "lastSucceedRound": 1,
    "syncRoundStatuses": [
        {
            "round": 2,
            "jobName": "j",
            "startTime": "2026-11-27T10:00:00Z",
            "endTime": "2026-11-27T10:01:00Z",
            "succeed": False,
        }
    ],
}


def test_a_kill_after_a_retry_was_applied_uses_no_extra_retry() -> None:
    # Round 2 was the one retry allowed (recorded on the Dataset); the status never counted it.
    limited = sync(retry={"limit": 1, "backoff": "1s"})
    limited.status.observed_sync_round = 1
    limited.status.attempts = 0
    failed = served(owned(FAILED_ROUND_2, round_=2), 1, attempts=1)
    plan = modelsync.decide(observed(sync=limited, dataset=failed), NOW)
    assert plan.apply is None
    assert ready_of(plan)["reason"] == "RetryLimitReached"
    assert plan.status is not None and plan.status["attempts"] == 1


def test_a_requested_round_starts_its_retries_afresh_whatever_the_status_lags() -> None:
    # Round 2 was requested (retries back to 0) after round 1 had used its retry; killed before
    # the status said so: round 2's failure still gets its retry.
    limited = sync(syncRound=2, retry={"limit": 1, "backoff": "1s"})
    limited.status.observed_sync_round = 1
    limited.status.attempts = 1
    failed = served(owned(FAILED_ROUND_2, round_=2), 2, attempts=0)
    plan = modelsync.decide(observed(sync=limited, dataset=failed), NOW)
    assert plan.apply is not None and plan.apply["spec"]["dataSyncRound"] == 3
    assert plan.apply_cause == "retry"


def test_a_model_names_what_is_wrong_with_its_own_reason() -> None:
    versions = {"v1": {"repo": "https://h/x/"}}
    cases = [
        ({"sourceRef": "Bad_Name", "versionConfigs": versions}, "InvalidSourceRef", "sourceRef"),
        (
            {"sourceRef": "src", "versionConfigs": versions, "share": {"namespaceSelector": {}}},
            "InvalidShare",
            "spec.share.namespaceSelector",
        ),
    ]
    for spec, reason, named in cases:
        the_model = parsed(Model, "Model", "mdl", spec)
        verdict = model.readiness(the_model, SOURCE, source_verdict(SOURCE, None))
        assert not verdict.ready and verdict.reason == reason and named in verdict.message
    # an invalid sourceRef name is never "does not exist", even with no such ModelSource
    bad = parsed(Model, "Model", "mdl", {"sourceRef": "Bad_Name", "versionConfigs": versions})
    verdict = model.readiness(bad, None, None)
    assert verdict.reason == "InvalidSourceRef" and "does not exist" not in verdict.message
    plan = modelsync.decide(observed(model=bad, source=None), NOW)
    assert ready_of(plan)["reason"] == "InvalidSourceRef" and plan.apply is None
    plan = modelsync.decide(observed(sync=sync(modelRef="Bad_Name"), model=None), NOW)
    assert ready_of(plan)["reason"] == "InvalidModelRef" and plan.apply is None
    assert "spec.modelRef" in ready_of(plan)["message"]


def test_a_reference_to_an_invalid_model_name_says_the_name_is_invalid() -> None:
    for model_ref, path in (
        ({"namespace": "team-b", "name": "Bad_Name"}, "spec.modelRef.name"),
        ({"namespace": "Team", "name": "mdl"}, "spec.modelRef.namespace"),
    ):
        ref = parsed(
            ModelReference, "ModelReference", "ref", {"modelRef": model_ref, "version": "v1"}
        )
        verdict = modelreference.allowed(ref, None, {"team": "a"})
        assert not verdict.ready and verdict.reason == "InvalidModelRef", verdict
        assert path in verdict.message and "does not exist" not in verdict.message


@settings(derandomize=True, max_examples=200, deadline=None)
@given(
    sync_round=st.integers(1, 6),
    served_back=st.integers(0, 5),
    attempts=st.integers(0, 4),
    lag=st.one_of(st.none(), st.integers(0, 5)),
    lag_attempts=st.integers(0, 4),
    outcome=st.sampled_from(["READY", "FAILED", "PROCESSING"]),
)
def test_a_lagging_or_missing_status_plans_as_an_up_to_date_one(
    sync_round: int,
    served_back: int,
    attempts: int,
    lag: int | None,
    lag_attempts: int,
    outcome: str,
) -> None:
    """Whatever the status says of the rounds before (a kill between the two writes), what the
    Dataset records of its own round decides."""
    served_round = max(1, sync_round - served_back)
    round_status: dict[str, Any] = {"phase": outcome, "lastSucceedRound": 2}
    if outcome == "FAILED":
        round_status = FAILED_ROUND_2
    elif outcome == "PROCESSING":
        round_status = {"phase": "PROCESSING", "inProcessing": True, "lastSucceedRound": 1}
    dataset = served(owned(round_status, round_=2), served_round, attempts)
    view = modelsync.with_failure_time(modelsync.view_dataset(dataset), None, NOW)

    def plan(observed_round: int | None, used: int | None) -> modelsync.RoundPlan:
        the_sync = sync(syncRound=sync_round, retry={"limit": 3, "backoff": "1s"})
        the_sync.status.observed_sync_round = observed_round
        the_sync.status.attempts = used
        return modelsync.plan_round(the_sync, view, NOW)

    lagging = None if lag is None else max(1, served_round - lag)
    assert plan(lagging, lag_attempts) == plan(served_round, attempts)


def new_sync_observed(
    created_ago: float, status: dict[str, Any], **fields: Any
) -> modelsync.Observed:
    """A ModelSync created `created_ago` seconds before NOW whose stored status is `status` (the
    API server's default for a new one: `{"phase": "PENDING"}`)."""
    created = (NOW - timedelta(seconds=created_ago)).strftime("%Y-%m-%dT%H:%M:%SZ")
    the_sync = parsed(
        ModelSync,
        "ModelSync",
        "sync",
        {"modelRef": "mdl", "version": "v1"},
        creationTimestamp=created,
    )
    seen = observed(sync=the_sync, **fields)
    return replace(seen, body={**seen.body, "status": status})


DEFAULTED = {"phase": "PENDING"}
"""A new ModelSync's status before modelfs writes one: the CRD's default."""


def test_a_new_sync_s_first_status_waits_for_its_dataset_to_start() -> None:
    # The Dataset is created at once; the status that would only say "PENDING, not started"
    # waits (the API server shows PENDING meanwhile), and the ModelSync is looked at again.
    plan = modelsync.decide(new_sync_observed(1, DEFAULTED), NOW)
    assert plan.apply is not None and plan.apply_cause == "create"
    assert plan.status is not None and plan.status["phase"] == "PENDING"
    assert plan.status_wait == modelsync.FIRST_STATUS_WAIT - 1
    assert plan.requeue_after == plan.status_wait
    # the Dataset exists and has not started: still waiting, for what is left of the time
    waiting = modelsync.decide(new_sync_observed(3, DEFAULTED, dataset=owned({})), NOW)
    assert waiting.apply is None and waiting.status_wait == modelsync.FIRST_STATUS_WAIT - 3
    # nothing is held back from a status that is empty rather than defaulted either
    assert modelsync.decide(new_sync_observed(1, {}), NOW).status_wait is not None


def test_a_new_sync_s_first_status_is_written_once_there_is_more_to_say() -> None:
    started = owned({"phase": "PROCESSING", "inProcessing": True})
    written_before = {"phase": "PENDING", "observedGeneration": 1, "datasetName": "mdl-v1"}
    for name, seen in {
        "the Dataset started": new_sync_observed(1, DEFAULTED, dataset=started),
        "the wait is over": new_sync_observed(modelsync.FIRST_STATUS_WAIT, DEFAULTED),
        "a refusal": new_sync_observed(1, DEFAULTED, model=None),
        "a status was written before": new_sync_observed(1, written_before, dataset=owned({})),
        "a clock behind the API server's": new_sync_observed(-30, DEFAULTED),
    }.items():
        plan = modelsync.decide(seen, NOW)
        assert plan.status_wait is None, name
        assert plan.status is not None and plan.status != seen.body["status"], name
    first = modelsync.decide(new_sync_observed(1, DEFAULTED, dataset=started), NOW).status
    assert first is not None and first["phase"] == "PROCESSING" and first["datasetName"] == "mdl-v1"
