"""`decide` of each reconciler, branch by branch: pure functions of what was observed."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from modelfs.api.v1 import Model, ModelReference, ModelSource, ModelSync
from modelfs.controllers import model, modelreference, modelsource, modelsync
from modelfs.controllers.shared import Verdict, source_verdict
from modelfs.pkg.dataset import ResolutionError
from modelfs.pkg.dataset.errors import Reason

NOW = datetime(2026, 11, 27, 12, 0, tzinfo=UTC)
NS = "team-a"


def parsed(cls: Any, kind: str, name: str, spec: dict[str, Any], **meta: Any) -> Any:
    metadata = {"name": name, "namespace": NS, "uid": f"uid-{name}", "generation": 1, **meta}
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
    return modelsync.Observed(("team-a", "sync"), body, the_sync, **{**defaults, **fields})


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


def test_sync_creates_its_dataset_and_says_so() -> None:
    plan = modelsync.decide(observed(), NOW)
    assert plan.apply is not None and plan.apply["metadata"]["name"] == "mdl-v1"
    assert plan.apply["spec"]["dataSyncRound"] == 1
    assert [e[1] for e in plan.events] == ["DatasetCreated"]
    assert plan.status is not None and plan.status["phase"] == "PENDING"
    assert plan.outcome is not None and plan.outcome.apply_cause == "create"


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
    assert ("Normal", "Synced", ready_of(plan)["message"]) in plan.status_events


def test_sync_raises_the_round_for_a_raised_trigger() -> None:
    ready = owned({"phase": "READY", "lastSucceedRound": 1})
    raised = sync(syncRound=3)
    raised.status.observed_sync_round = 1
    plan = modelsync.decide(observed(sync=raised, dataset=ready), NOW)
    assert plan.apply is not None and plan.apply["spec"]["dataSyncRound"] == 2
    assert plan.outcome is not None and plan.outcome.apply_cause == "requested"
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
    return modelsource.Observed((NS, "hf"), body, source, keys, 2)


def test_source_verdicts_and_their_events() -> None:
    cases = [
        (None, None, "Ready", "Normal"),
        ("tok", None, "SecretMissing", "Warning"),
        ("tok", frozenset({"other"}), "SecretKeyMissing", "Warning"),
        ("tok", frozenset({"token"}), "Ready", "Normal"),
    ]
    for secret, keys, reason, type_ in cases:
        plan = modelsource.decide(source_observed(secret, keys), "2026-11-27T12:00:00Z")
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
    return model.Observed((NS, "mdl"), body, MODEL, **{**defaults, **fields})


def test_model_readiness_branches() -> None:
    assert model.decide(model_observed(source=None), "t").ready.reason == "SourceNotFound"
    not_ready = Verdict(False, "SecretMissing", "no Secret")
    assert (
        model.decide(model_observed(source_verdict=not_ready), "t").ready.reason == "SourceNotReady"
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
        "t",
    )
    assert plan.ready.ready
    assert plan.status["versions"] == [
        {"name": "v1", "sync": "s", "phase": "READY", "references": ["team-b/ref"]}
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
            "share": {"namespaceSelector": {}},
        },
    )
    syncing = sync()
    syncing.status.dataset_name = "mdl-v1"
    defaults: dict[str, Any] = {
        "model": shared,
        "namespace_labels": {},
        "sync": syncing,
        "source": {
            "metadata": {"name": "mdl-v1"},
            "spec": {"share": True},
            "status": {"phase": "READY"},
        },
        "dataset": None,
    }
    return modelreference.Observed((NS, "ref"), body, ref, **{**defaults, **fields})


def test_reference_branches() -> None:
    created = modelreference.decide(ref_observed(), "t")
    assert created.create is not None
    assert created.create["spec"]["source"]["uri"] == "dataset://team-a/mdl-v1"
    assert [e[1] for e in created.events] == ["DatasetCreated"]

    existing = {**created.create, "status": {"phase": "READY", "pvcName": "ref"}}
    ready = modelreference.decide(ref_observed(dataset=existing), "t")
    assert ready.create is None and ready.status["phase"] == "READY"

    revoked = modelreference.decide(ref_observed(model=MODEL, dataset=existing), "t")
    assert revoked.delete == "ref" and revoked.status["phase"] == "FAILED"
    assert [e[1] for e in revoked.events] == ["DatasetDeleted"]

    waiting = modelreference.decide(
        ref_observed(source={"metadata": {}, "spec": {}, "status": {"phase": "PROCESSING"}}), "t"
    )
    assert waiting.create is None and waiting.status["phase"] == "PENDING"

    lost = modelreference.decide(ref_observed(sync=None, dataset=existing), "t")
    assert lost.delete == "ref" and lost.status["phase"] == "PENDING"
