"""The steps of ModelSync's `decide` (`modelsync.STEPS`), as properties over generated inputs:
the order they stop in, the one condition each decides, and the status they lead to."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import replace
from datetime import timedelta
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from modelfs.api.v1 import Model, ModelSource, ModelSyncStatus
from modelfs.controllers import modelsync
from modelfs.controllers.catalog import Answer, AnswerKey
from modelfs.controllers.shared import Verdict, source_verdict
from modelfs.pkg.catalog.types import (
    CatalogEntry,
    NotApplicable,
    Refusal,
    RefusalReason,
    Unavailable,
    UnavailableReason,
)
from modelfs.pkg.dataset import ResolutionError
from modelfs.pkg.dataset.errors import Reason
from tests.test_decide import (
    NOW,
    SOURCE,
    SYNC_CREATED,
    lost_owner,
    observed,
    owned,
    parsed,
    served,
    sync,
)

SETTINGS = settings(
    max_examples=300, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.too_slow]
)


def stamp(seconds_ago: int) -> str:
    return (NOW - timedelta(seconds=seconds_ago)).strftime("%Y-%m-%dT%H:%M:%SZ")


ROUND = st.fixed_dictionaries(
    {
        "round": st.integers(1, 3),
        "jobName": st.just("j"),
        "startTime": st.integers(0, 4000).map(stamp),
    },
    optional={"endTime": st.integers(0, 4000).map(stamp), "succeed": st.booleans()},
)
DATASET_CONDITION = st.fixed_dictionaries(
    {
        "type": st.sampled_from(["JobStatus", "PVCStatus"]),
        "status": st.sampled_from(["True", "False", "Unknown"]),
    },
    optional={"reason": st.sampled_from(["", "JobFailed"]), "message": st.sampled_from(["", "m"])},
)
DATASET_STATUS = st.fixed_dictionaries(
    {},
    optional={
        "phase": st.sampled_from(["PENDING", "PROCESSING", "READY", "FAILED"]),
        "inProcessing": st.booleans(),
        "lastSucceedRound": st.integers(1, 3),
        "syncRoundStatuses": st.lists(ROUND, max_size=2),
        "conditions": st.lists(DATASET_CONDITION, max_size=2, unique_by=lambda c: c["type"]),
        "pvcName": st.sampled_from(["", "pvc"]),
        "lastSyncTime": st.integers(0, 90_000).map(stamp),
    },
)
SYNC_STATUS = st.fixed_dictionaries(
    {},
    optional={
        "observedSyncRound": st.integers(1, 4),
        "attempts": st.integers(0, 3),
        "lastFailureTime": st.integers(0, 4000).map(stamp),
        "datasetName": st.just("mdl-v1"),
        "phase": st.sampled_from(["READY", "FAILED", "PENDING"]),
        "conditions": st.just(
            [
                {
                    "type": "Ready",
                    "status": "True",
                    "reason": "DatasetReady",
                    "message": "Dataset mdl-v1 is READY (round 1)",
                    "lastTransitionTime": stamp(600),
                },
                {"type": "Rounds", "status": "False", "reason": "NoLoaderJob", "message": "m"},
                {"type": "Catalog", "status": "True", "reason": "CatalogFound", "message": "m"},
            ]
        ),
        "catalog": st.fixed_dictionaries(
            {
                "fingerprint": st.sampled_from(["f1", "f2"]),
                "lookedUpAt": st.integers(0, 90_000).map(stamp),
            }
        ),
    },
)
PVC_SOURCE = parsed(ModelSource, "ModelSource", "src", {"type": "PVC"})
SIZED_MODEL = parsed(
    Model,
    "Model",
    "mdl",
    {
        "sourceRef": "src",
        "storage": {"size": "1Gi"},
        "versionConfigs": {"v1": {"repo": "https://h/x/"}},
    },
)
RESULTS = st.one_of(
    st.builds(
        CatalogEntry,
        revision=st.sampled_from([None, "a" * 40]),
        files=st.integers(0, 3),
        bytes=st.sampled_from([None, 10, 2**40]),  # 1 TiB: more than any storage drawn
        fingerprint=st.sampled_from(["f1", "f2"]),
    ),
    st.just(Refusal(RefusalReason.REPO_NOT_FOUND, "repository x/y does not exist")),
    st.just(Unavailable(UnavailableReason.UNREACHABLE, "connection refused")),
    st.just(NotApplicable("nothing to look up")),
)


class AnyAnswer(Mapping[AnswerKey, Answer]):
    """The catalog's answer to whatever the step asks (the request is the resolution's)."""

    def __init__(self, answer: Answer) -> None:
        self.answer = answer

    def __getitem__(self, key: AnswerKey) -> Answer:
        return self.answer

    def __iter__(self) -> Iterator[AnswerKey]:
        return iter(())

    def __len__(self) -> int:
        return 0


PVC_MODEL = parsed(
    Model, "Model", "mdl", {"sourceRef": "src", "versionConfigs": {"v1": {"repo": "claim/m"}}}
)
REFUSALS: dict[str, dict[str, Any]] = {
    "rival": {"rival": "older"},
    "no model": {"model": None},
    "no source": {"source": None},
    "secret": {"source_verdict": Verdict(False, "SecretMissing", "Secret 's' does not exist")},
    "unreadable": {"error": ResolutionError("Model", "spec.x", "bad", Reason.INVALID_CONFIG)},
}


@st.composite
def observed_syncs(draw: st.DrawFn) -> modelsync.Observed:
    """A live ModelSync with what its reconcile could read: any Dataset state (none, its own,
    another's, one that lost its owner, one being deleted), any status, any refusal."""
    spec: dict[str, Any] = {
        "syncRound": draw(st.integers(1, 4)),
        "retry": {"limit": draw(st.integers(0, 3)), "backoff": draw(st.sampled_from(["1s", "1m"]))},
    }
    if draw(st.booleans()):
        spec["schedule"] = {"interval": draw(st.sampled_from(["1m", "1h"]))}
    status = draw(SYNC_STATUS)
    the_sync = sync(**spec)
    the_sync = the_sync.model_copy(update={"status": ModelSyncStatus.model_validate(status)})
    fields: dict[str, Any] = {"sync": the_sync}
    source, model = draw(
        st.sampled_from([(None, None), (PVC_SOURCE, PVC_MODEL), (None, SIZED_MODEL)])
    )
    if source is not None:
        fields.update(source=source, source_verdict=source_verdict(source, None))
    if model is not None:
        fields["model"] = model
    policy = draw(st.sampled_from(["BestEffort", "Required", "Disabled"]))
    chosen = fields.get("source", SOURCE)
    fields["source"] = chosen.model_copy(
        update={"spec": chosen.spec.model_copy(update={"catalog": policy})}
    )
    # the catalog: off, no answer yet, or an answer (fresh or expired)
    catalog = draw(st.sampled_from(["off", "none", "answer", "answer", "answer"]))
    if catalog == "off":
        fields["catalog"] = None
    elif catalog == "none":
        fields["catalog"] = {}
    else:
        expires = NOW + timedelta(seconds=draw(st.integers(-60, 900)))
        fields["catalog"] = AnyAnswer(Answer(draw(RESULTS), NOW - timedelta(seconds=5), expires))
    kind = draw(st.sampled_from(["none", "own", "own", "own", "foreign", "lost", "deleting"]))
    if kind != "none":
        dataset = owned(draw(DATASET_STATUS), round_=draw(st.integers(1, 3)))
        if draw(st.booleans()):
            dataset = served(dataset, draw(st.integers(1, 4)), draw(st.integers(0, 3)))
        if kind == "foreign":
            dataset["metadata"] = {**dataset["metadata"], "ownerReferences": []}
        elif kind == "lost":
            dataset = lost_owner()
        elif kind == "deleting":
            dataset["metadata"] = {**dataset["metadata"], "deletionTimestamp": stamp(1)}
        if draw(st.booleans()):
            dataset["spec"] = {**dataset["spec"], "secretRef": "edited"}
        fields["dataset"] = dataset
    refusal = draw(st.sampled_from([None, None, None, *REFUSALS]))
    if refusal is not None:
        fields.update(REFUSALS[refusal])
    seen = observed(**fields)
    body = {
        **seen.body,
        "metadata": {**seen.body["metadata"], "creationTimestamp": SYNC_CREATED},
        "status": status,
    }
    return replace(seen, body=body)


def conditions_of(plan: modelsync.Plan) -> dict[str, Any]:
    return {
        modelsync.RESOLVED_CONDITION: plan.resolved,
        modelsync.READY_CONDITION: plan.ready,
        modelsync.ROUNDS_CONDITION: plan.rounds,
        modelsync.CATALOG_CONDITION: plan.catalog,
    }


def test_every_step_decides_one_condition_of_the_status() -> None:
    owned_conditions = {step.condition for step in modelsync.STEPS}
    assert owned_conditions == set(conditions_of(modelsync.Plan()))
    assert len({step.name for step in modelsync.STEPS}) == len(modelsync.STEPS)


@SETTINGS
@given(observed_syncs(), st.integers(0, 300))
def test_each_step_changes_no_condition_but_its_own_and_a_refusal_stops_the_table(
    seen: modelsync.Observed, later: int
) -> None:
    """Run step by step: a step that does not stop sets at most its own condition; a refusal
    sets Resolved and Ready to itself, FAILED, and leaves no apply and nothing of a Dataset."""
    plan = modelsync.Plan(now=NOW + timedelta(seconds=later))
    ran = []
    for step in modelsync.STEPS:
        before = conditions_of(plan)
        plan = step.run(seen, plan)
        ran.append(step.name)
        after = conditions_of(plan)
        if plan.refusal is not None:
            assert plan.stopped
            assert plan.resolved == plan.ready == plan.refusal and not plan.refusal.ready
            assert plan.phase == "FAILED"
            assert plan.apply is None and plan.view is None and plan.round is None
            assert step.condition in (modelsync.RESOLVED_CONDITION, modelsync.CATALOG_CONDITION)
        else:
            # a step that stops the table (a Dataset being deleted, a catalog that must answer
            # first) says why on Ready
            said = {modelsync.READY_CONDITION} if plan.stopped else set()
            changed = {name for name in after if after[name] != before[name]}
            assert changed <= {step.condition} | said, (step.name, changed)
        if plan.awaiting:  # the catalog has not answered: a lookup, nothing else
            assert step.name == "catalog" and plan.lookup is not None and plan.apply is None
        if plan.stopped:
            break
    assert ran == [step.name for step in modelsync.STEPS[: len(ran)]]
    # decide is that same table, then the status
    decided = modelsync.decide(seen, NOW + timedelta(seconds=later))
    assert replace(decided, status=None, status_events=[], requeue_after=None) == replace(
        plan, finalizers=decided.finalizers, requeue_after=None
    )


@SETTINGS
@given(observed_syncs())
def test_a_step_after_a_refusal_never_runs(seen: modelsync.Observed) -> None:
    """Whatever the steps after the refusing one would do, it is not done."""
    refused = [False]
    calls: list[str] = []

    def recording(step: modelsync.Step) -> modelsync.Step:
        def run(observed: modelsync.Observed, plan: modelsync.Plan) -> modelsync.Plan:
            assert not refused[0], f"{step.name} ran after a refusal"
            calls.append(step.name)
            result = step.run(observed, plan)
            refused[0] = result.stopped
            return result

        return replace(step, run=run)

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(modelsync, "STEPS", tuple(recording(s) for s in modelsync.STEPS))
        plan = modelsync.decide(seen, NOW)
    if plan.awaiting:  # nothing is written until the catalog answers
        assert plan.status is None and plan.apply is None and plan.status_events == []
        return
    assert plan.status is not None and plan.status["phase"] == plan.phase
    if plan.refusal is not None:
        assert plan.apply is None and plan.requeue_after is None
        assert not [c for c in plan.status["conditions"] if c["type"].startswith("Dataset")]
        assert not [c for c in plan.status["conditions"] if c["type"] == "Rounds"]
        if plan.catalog is None:  # refused before the catalog step: its old word is void
            assert not [c for c in plan.status["conditions"] if c["type"] == "Catalog"]
    if plan.apply is not None:  # only a plan that went through every step applies
        assert calls == [step.name for step in modelsync.STEPS]


@SETTINGS
@given(observed_syncs())
def test_the_status_is_a_valid_modelsync_status(seen: modelsync.Observed) -> None:
    plan = modelsync.decide(seen, NOW)
    assert plan.status is not None or plan.awaiting
    if plan.status is None:
        return
    assert ModelSyncStatus.model_validate(plan.status).to_dict() == plan.status
    types = [c["type"] for c in plan.status["conditions"]]
    assert len(types) == len(set(types))
    assert {"Resolved", "Ready"} <= set(types)


@SETTINGS
@given(observed_syncs(), observed_syncs(), st.integers(1, 10**5))
def test_ready_moves_its_transition_time_only_when_its_status_changes(
    first: modelsync.Observed, second: modelsync.Observed, later: int
) -> None:
    """Decide once, store the status, decide again later on other inputs: Ready keeps its
    lastTransitionTime unless its status (True/False) changed; then it is the later moment."""
    stored = modelsync.decide(first, NOW).status
    then = NOW + timedelta(seconds=later)
    if stored is None:  # waiting for the catalog: nothing stored
        return
    again = modelsync.decide(replace(second, body={**second.body, "status": stored}), then).status
    if again is None:
        return

    def ready(status: dict[str, Any]) -> dict[str, Any]:
        return next(c for c in status["conditions"] if c["type"] == "Ready")

    if ready(again)["status"] == ready(stored)["status"]:
        assert ready(again)["lastTransitionTime"] == ready(stored)["lastTransitionTime"]
    else:
        assert ready(again)["lastTransitionTime"] == then.strftime("%Y-%m-%dT%H:%M:%SZ")


@SETTINGS
@given(observed_syncs(), st.integers(0, 300))
def test_a_rejected_apply_is_shown_as_of_the_moment_of_the_plan(
    seen: modelsync.Observed, later: int
) -> None:
    """The 422 on a Dataset apply: act needs no clock; the rejection is a refusal decided at
    the plan's own moment, its Ready announced once, the apply's own Events void."""
    plan = modelsync.decide(seen, NOW + timedelta(seconds=later))
    if plan.apply is None:
        return
    shown = modelsync.rejected(seen, plan, "the API server refused Dataset mdl-v1: 422")
    assert shown.status is not None and shown.status["phase"] == "FAILED"
    ready = next(c for c in shown.status["conditions"] if c["type"] == "Ready")
    assert (ready["status"], ready["reason"]) == ("False", "DatasetRejected")
    assert shown.events == [] and shown.apply is None
    stored = seen.body.get("status") or {}
    before = next((c for c in stored.get("conditions") or [] if c["type"] == "Ready"), None)
    assert plan.now is not None
    if before is None or before["status"] == "True":
        assert ready["lastTransitionTime"] == plan.now.strftime("%Y-%m-%dT%H:%M:%SZ")
    if seen.written != ("DatasetRejected", ready["message"]):
        assert ("Warning", "DatasetRejected", ready["message"]) in shown.status_events
