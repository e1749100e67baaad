"""The fake Dataset controller's pure logic against FACTS.md (no cluster)."""

from __future__ import annotations

import asyncio
import datetime as dt
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from modelfs.testing.fake_dataset import logic
from modelfs.testing.fake_dataset.cli import build_parser, settings_from_args
from modelfs.testing.fake_dataset.controller import SANDBOX_TIMINGS
from modelfs.testing.fake_dataset.logic import (
    FAILED,
    FINALIZER,
    NAME_LABEL,
    PENDING,
    PROCESSING,
    READY,
    JobView,
    Observed,
    SourceObservation,
    Timings,
    reconcile,
)

T0 = dt.datetime(2026, 1, 1, 12, 0, 0, tzinfo=dt.UTC)
NO_WAIT = Timings(pending=0, transient_failed=0, round_duration=1)


def at(seconds: float) -> dt.datetime:
    return T0 + dt.timedelta(seconds=seconds)


def dataset(
    name: str = "qwen-v1",
    *,
    type_: str = "HUGGING_FACE",
    uri: str = "huggingface://org/model",
    round_: int = 1,
    status: dict[str, Any] | None = None,
    labels: dict[str, str] | None = None,
    annotations: dict[str, str] | None = None,
    finalizers: list[str] | None = None,
    deleting: bool = False,
    namespace: str = "team-a",
    **spec: Any,
) -> dict[str, Any]:
    meta: dict[str, Any] = {
        "name": name,
        "namespace": namespace,
        "uid": "0123456789abcdef-uid",
        "resourceVersion": "7",
        "creationTimestamp": logic.rfc3339(T0),
        "finalizers": [FINALIZER] if finalizers is None else finalizers,
    }
    if labels:
        meta["labels"] = labels
    if annotations:
        meta["annotations"] = annotations
    if deleting:
        meta["deletionTimestamp"] = logic.rfc3339(at(100))
    body: dict[str, Any] = {
        "apiVersion": logic.API_VERSION,
        "kind": logic.KIND,
        "metadata": meta,
        "spec": {"source": {"type": type_, "uri": uri}, "dataSyncRound": round_, **spec},
    }
    if status is not None:
        body["status"] = status
    return body


def own_pvc(name: str = "qwen-v1", owner: str = "qwen-v1", **extra: Any) -> dict[str, Any]:
    return {"metadata": {"name": name, "labels": {NAME_LABEL: owner}}, **extra}


def job(name: str, state: str = "running", end: str | None = None) -> JobView:
    return JobView(
        name=name,
        succeeded=state == "succeeded",
        failed=state == "failed",
        start_time=logic.rfc3339(T0) if state != "running" else None,
        completion_time=end if state == "succeeded" else None,
    )


def conditions(status: dict[str, Any]) -> dict[str, tuple[str, str, str]]:
    return {c["type"]: (c["status"], c["reason"], c["message"]) for c in status["conditions"]}


def step(ds: dict[str, Any], obs: Observed, timings: Timings = NO_WAIT) -> logic.Plan:
    """reconcile, then fold the written status back into the Dataset (as the server would)."""
    plan = reconcile(ds, obs, timings)
    if plan.status_changed:
        ds["status"] = plan.status
    if plan.finalizers is not None:
        ds["metadata"]["finalizers"] = plan.finalizers
    return plan


# --------------------------------------------------------------------------- rounds and phases


def test_first_round_processing_then_ready_with_quirky_conditions() -> None:
    ds = dataset(finalizers=[])
    first = step(ds, Observed(now=at(1)))
    assert first.finalizers == [FINALIZER]
    kinds = [o["kind"] for o in first.creates]
    assert kinds == ["PersistentVolumeClaim", "Job"]
    assert first.started_job == "dataset-qwen-v1-round-1"
    assert ds["status"]["phase"] == PROCESSING
    assert ds["status"]["inProcessing"] is True
    assert ds["status"]["inProcessingRound"] == 1
    assert ds["status"]["pvcName"] == "qwen-v1"

    running = {"dataset-qwen-v1-round-1": job("dataset-qwen-v1-round-1")}
    second = step(ds, Observed(now=at(2), pvc=own_pvc(), jobs=running))
    assert not second.creates
    assert ds["status"]["phase"] == PROCESSING
    (entry,) = ds["status"]["syncRoundStatuses"]
    assert entry == {
        "round": 1,
        "jobName": "dataset-qwen-v1-round-1",
        "startTime": logic.rfc3339(at(2)),
    }

    done = {
        "dataset-qwen-v1-round-1": job("dataset-qwen-v1-round-1", "succeeded", logic.rfc3339(at(5)))
    }
    step(ds, Observed(now=at(6), pvc=own_pvc(), jobs=done))
    status = ds["status"]
    assert status["phase"] == READY
    assert status["lastSucceedRound"] == 1
    assert "inProcessing" not in status and "inProcessingRound" not in status  # omitempty
    assert status["lastSyncTime"] == logic.rfc3339(at(5))
    assert status["syncRoundStatuses"] == [
        {
            "round": 1,
            "jobName": "dataset-qwen-v1-round-1",
            "startTime": logic.rfc3339(T0),
            "endTime": logic.rfc3339(at(5)),
            "succeed": True,
        }
    ]
    assert conditions(status) == {
        t: ("True", f"{t}Ready", "") for t in ("Config", "PVC", "ConfigMap", "Job", "JobStatus")
    }
    assert "observedGeneration" not in str(status)


def test_idle_ready_dataset_plans_nothing() -> None:
    ds = dataset()
    done = {
        "dataset-qwen-v1-round-1": job("dataset-qwen-v1-round-1", "succeeded", logic.rfc3339(at(5)))
    }
    step(ds, Observed(now=at(1)))
    step(ds, Observed(now=at(6), pvc=own_pvc(), jobs=done))
    again = reconcile(ds, Observed(now=at(600), pvc=own_pvc(), jobs=done), NO_WAIT)
    assert not again.status_changed
    assert not again.creates and not again.deletes and again.finalizers is None
    assert again.requeue_after is None  # READY is not polled


def test_transient_failed_before_the_rounds_job_exists() -> None:
    timings = Timings(pending=0, transient_failed=0.5, round_duration=1)
    ds = dataset()
    first = step(ds, Observed(now=at(1)), timings)
    assert ds["status"]["phase"] == FAILED
    assert first.transient_round == 1
    assert [o["kind"] for o in first.creates] == ["PersistentVolumeClaim"]
    assert first.requeue_after == pytest.approx(0.5)
    # FACTS.md: look at the conditions before calling it a failure: none is False, and no
    # round status says round 1 failed
    assert all(c["status"] == "True" for c in ds["status"]["conditions"])
    assert "syncRoundStatuses" not in ds["status"]
    still = step(ds, Observed(now=at(1.2), pvc=own_pvc(), transient_since=at(1)), timings)
    assert ds["status"]["phase"] == FAILED and not still.creates
    assert still.requeue_after == pytest.approx(0.3)
    later = step(ds, Observed(now=at(1.6), pvc=own_pvc(), transient_since=at(1)), timings)
    assert [o["kind"] for o in later.creates] == ["Job"]
    assert ds["status"]["phase"] == PROCESSING


def test_pending_window_writes_pending_only() -> None:
    timings = Timings(pending=3, transient_failed=0, round_duration=1)
    ds = dataset(finalizers=[])
    plan = step(ds, Observed(now=at(1)), timings)
    assert ds["status"] == {"phase": PENDING}
    assert plan.finalizers is None and not plan.creates
    assert plan.requeue_after == pytest.approx(2)
    again = reconcile(ds, Observed(now=at(2)), timings)
    assert not again.status_changed
    step(ds, Observed(now=at(3.5)), timings)
    assert ds["status"]["phase"] == PROCESSING


def test_a_failed_round_stays_failed_until_the_round_is_raised() -> None:
    ds = dataset()
    step(ds, Observed(now=at(1)))
    failed = {"dataset-qwen-v1-round-1": job("dataset-qwen-v1-round-1", "failed")}
    step(ds, Observed(now=at(3), pvc=own_pvc(), jobs=failed))
    status = ds["status"]
    assert status["phase"] == FAILED
    assert status["syncRoundStatuses"] == [
        {"round": 1, "jobName": "dataset-qwen-v1-round-1", "startTime": logic.rfc3339(at(3))}
    ]  # succeed false and no endTime: omitted
    for later in (10, 100, 10_000):
        plan = step(ds, Observed(now=at(later), pvc=own_pvc(), jobs=failed))
        assert not plan.creates and not plan.status_changed and plan.requeue_after is None
    ds["spec"]["dataSyncRound"] = 2
    retry = step(ds, Observed(now=at(20_000), pvc=own_pvc(), jobs=failed))
    assert [o["metadata"]["name"] for o in retry.creates] == ["dataset-qwen-v1-round-2"]
    assert ds["status"]["phase"] == PROCESSING


def test_round_statuses_keep_the_last_five() -> None:
    ds = dataset()
    jobs: dict[str, JobView] = {}
    for round_ in range(1, 8):
        ds["spec"]["dataSyncRound"] = round_
        name = f"dataset-qwen-v1-round-{round_}"
        step(ds, Observed(now=at(round_ * 10), pvc=own_pvc(), jobs=jobs))
        jobs[name] = job(name, "succeeded", logic.rfc3339(at(round_ * 10 + 5)))
        step(ds, Observed(now=at(round_ * 10 + 6), pvc=own_pvc(), jobs=jobs))
    assert [r["round"] for r in ds["status"]["syncRoundStatuses"]] == [3, 4, 5, 6, 7]
    assert ds["status"]["lastSucceedRound"] == 7


def test_raising_the_round_while_a_job_runs_starts_a_second_job_and_says_so() -> None:
    ds = dataset()
    step(ds, Observed(now=at(1)))
    one = "dataset-qwen-v1-round-1"
    step(ds, Observed(now=at(2), pvc=own_pvc(), jobs={one: job(one)}))
    ds["spec"]["dataSyncRound"] = 2
    plan = step(ds, Observed(now=at(3), pvc=own_pvc(), jobs={one: job(one)}))
    assert [o["metadata"]["name"] for o in plan.creates] == ["dataset-qwen-v1-round-2"]
    ((kind, reason, message),) = plan.events
    assert (kind, reason) == ("Warning", logic.EVENT_CONCURRENT_ROUNDS)
    assert one in message
    two = "dataset-qwen-v1-round-2"
    step(ds, Observed(now=at(4), pvc=own_pvc(), jobs={one: job(one), two: job(two)}))
    rounds = ds["status"]["syncRoundStatuses"]
    assert [r["round"] for r in rounds] == [1, 2]  # overlapping: round 1 never ends
    assert ds["status"]["inProcessingRound"] == 2
    # round 1's Job finishing later is never looked at again
    end = logic.rfc3339(at(9))
    step(
        ds,
        Observed(now=at(10), pvc=own_pvc(), jobs={one: job(one, "succeeded", end), two: job(two)}),
    )
    assert ds["status"]["phase"] == PROCESSING
    assert "lastSucceedRound" not in ds["status"]


def test_no_concurrent_event_when_the_previous_round_is_over() -> None:
    ds = dataset()
    step(ds, Observed(now=at(1)))
    one = "dataset-qwen-v1-round-1"
    done = {one: job(one, "succeeded", logic.rfc3339(at(2)))}
    step(ds, Observed(now=at(3), pvc=own_pvc(), jobs=done))
    ds["spec"]["dataSyncRound"] = 2
    plan = step(ds, Observed(now=at(4), pvc=own_pvc(), jobs=done))
    assert plan.events == []


def test_options_are_read_when_a_rounds_job_is_made() -> None:
    ds = dataset(secretRef="hf-token")
    ds["spec"]["source"]["options"] = {"repoType": "MODEL"}
    first = step(ds, Observed(now=at(1)))
    job_body = next(o for o in first.creates if o["kind"] == "Job")
    args = job_body["spec"]["template"]["spec"]["containers"][0]["args"]
    assert args[:3] == ["HUGGING_FACE", "huggingface://org/model", "--options=repoType=MODEL"]
    one = "dataset-qwen-v1-round-1"
    ds["spec"]["source"]["options"] = {"repoType": "DATASET"}
    unchanged = step(ds, Observed(now=at(2), pvc=own_pvc(), jobs={one: job(one)}))
    assert not unchanged.creates  # the running round keeps its options
    done = {one: job(one, "succeeded", logic.rfc3339(at(3)))}
    step(ds, Observed(now=at(3), pvc=own_pvc(), jobs=done))
    assert ds["status"]["phase"] == READY
    ds["spec"]["dataSyncRound"] = 2
    nxt = step(ds, Observed(now=at(4), pvc=own_pvc(), jobs=done))
    (made,) = nxt.creates
    assert made["metadata"]["name"] == "dataset-qwen-v1-round-2"
    assert "--options=repoType=DATASET" in made["spec"]["template"]["spec"]["containers"][0]["args"]
    volumes = made["spec"]["template"]["spec"]["volumes"]
    assert {"name": "dataset-secret", "secret": {"secretName": "hf-token"}} in volumes


def test_option_with_whitespace_reaches_the_loader_quoted() -> None:
    ds = dataset()
    ds["spec"]["source"]["options"] = {"include": "a b"}
    plan = reconcile(ds, Observed(now=at(1)), NO_WAIT)
    job_body = next(o for o in plan.creates if o["kind"] == "Job")
    assert (
        "--options=include='a b'" in job_body["spec"]["template"]["spec"]["containers"][0]["args"]
    )


# --------------------------------------------------------------------------- PVC, Job, finalizers


def test_pvc_and_job_copy_labels_and_annotations() -> None:
    labels = {"app.kubernetes.io/managed-by": "modelfs", "model.samzong.dev/model": "qwen"}
    annotations = {"note": "x", logic.ANN_ROUND_DURATION: "2s"}
    ds = dataset(labels=labels, annotations=annotations)
    plan = reconcile(ds, Observed(now=at(1)), NO_WAIT)
    pvc, job_body = plan.creates
    for obj in (pvc, job_body):
        assert obj["metadata"]["labels"] == {**labels, NAME_LABEL: "qwen-v1"}
        assert obj["metadata"]["annotations"] == annotations
        (owner,) = obj["metadata"]["ownerReferences"]
        assert owner["kind"] == "Dataset" and owner["controller"] is True
    assert pvc["spec"]["accessModes"] == ["ReadWriteMany"]
    assert pvc["spec"]["resources"]["requests"]["storage"] == "100Ti"
    assert job_body["metadata"]["name"] == "dataset-qwen-v1-round-1"
    assert job_body["spec"]["managedBy"] == logic.JOB_MANAGED_BY


def test_pvc_from_the_claim_template() -> None:
    template = {
        "metadata": {"name": "weights"},
        "spec": {
            "storageClassName": "fast",
            "accessModes": ["ReadWriteOnce"],
            "resources": {"requests": {"storage": "20Gi"}},
        },
    }
    ds = dataset(volumeClaimTemplate=template)
    plan = reconcile(ds, Observed(now=at(1)), NO_WAIT)
    pvc = plan.creates[0]
    assert pvc["metadata"]["name"] == "weights"
    assert pvc["spec"]["storageClassName"] == "fast"
    assert pvc["spec"]["accessModes"] == ["ReadWriteOnce"]
    assert pvc["spec"]["resources"]["requests"]["storage"] == "20Gi"
    assert plan.status["pvcName"] == "weights"


def test_a_pvc_of_someone_else_is_a_pvc_condition() -> None:
    ds = dataset()
    plan = reconcile(ds, Observed(now=at(1), pvc=own_pvc(owner="other")), NO_WAIT)
    assert conditions(plan.status)["PVC"] == (
        "False",
        "PVCReady",
        "pvc qwen-v1 already exists, but not belong to dataset qwen-v1",
    )
    assert plan.status["phase"] == FAILED
    assert not any(o["kind"] == "Job" for o in plan.creates)


def test_the_finalizer_list_is_replaced_not_appended() -> None:
    plan = reconcile(dataset(finalizers=["modelfs/keep"]), Observed(now=at(1)), NO_WAIT)
    assert plan.finalizers == [FINALIZER]
    kept = reconcile(dataset(finalizers=[FINALIZER, "modelfs/keep"]), Observed(now=at(1)), NO_WAIT)
    assert kept.finalizers is None  # its own is there: left alone


def test_deletion_deletes_the_pvc_then_clears_every_finalizer() -> None:
    ds = dataset(deleting=True, finalizers=[FINALIZER, "modelfs/keep"], status={"phase": READY})
    plan = reconcile(ds, Observed(now=at(1), pvc=own_pvc()), NO_WAIT)
    assert plan.deletes == [("v1", "PersistentVolumeClaim", "team-a", "qwen-v1")]
    assert plan.finalizers == []
    assert not plan.creates


def test_deleting_a_reference_leaves_its_pvc_to_the_garbage_collector() -> None:
    ds = dataset(type_="REFERENCE", uri="dataset://src/model", deleting=True)
    plan = reconcile(ds, Observed(now=at(1)), NO_WAIT)
    assert plan.deletes == [] and plan.finalizers == []


# --------------------------------------------------------------------------- REFERENCE


def source_dataset(share: bool = True, selector: dict[str, Any] | None = None) -> dict[str, Any]:
    spec: dict[str, Any] = {"source": {"type": "HUGGING_FACE", "uri": "huggingface://o/m"}}
    if share:
        spec["share"] = True
    if selector is not None:
        spec["shareToNamespaceSelector"] = selector
    return {
        "metadata": {"name": "model", "namespace": "src"},
        "spec": spec,
        "status": {"pvcName": "model", "phase": PROCESSING},
    }


def bound_source(share: bool = True, selector: dict[str, Any] | None = None) -> SourceObservation:
    return SourceObservation(
        dataset=source_dataset(share, selector),
        pvc={
            "metadata": {"name": "model"},
            "spec": {"volumeName": "pv-src", "accessModes": ["ReadWriteMany"]},
        },
        pv={
            "metadata": {"name": "pv-src", "resourceVersion": "3", "uid": "x"},
            "spec": {
                "claimRef": {"name": "model"},
                "persistentVolumeReclaimPolicy": "Delete",
                "csi": {"driver": "d"},
            },
            "status": {"phase": "Bound"},
        },
    )


def namespace(labels: dict[str, str]) -> dict[str, Any]:
    return {"metadata": {"name": "team-a", "labels": labels}}


def reference(**kw: Any) -> dict[str, Any]:
    return dataset("ref", type_="REFERENCE", uri="dataset://src/model", **kw)


def test_reference_is_ready_when_its_pvc_exists_without_waiting_for_the_source() -> None:
    ds = reference()
    obs = Observed(now=at(1), namespace=namespace({}), source=bound_source())
    plan = step(ds, obs)
    clone, pvc = plan.creates
    assert clone["kind"] == "PersistentVolume"
    assert clone["metadata"]["name"] == "dataset-team-a-ref-0123456789ab"
    assert clone["spec"]["persistentVolumeReclaimPolicy"] == "Retain"
    assert "claimRef" not in clone["spec"]
    assert pvc["spec"]["volumeName"] == clone["metadata"]["name"]
    status = ds["status"]
    assert status["phase"] == READY  # the source is still PROCESSING
    assert status["readOnly"] is True
    assert status["lastSucceedRound"] == 1
    assert status["lastSyncTime"] == logic.rfc3339(T0)
    assert not any(o["kind"] == "Job" for o in plan.creates)


@pytest.mark.parametrize(
    ("source", "ns_labels", "message"),
    [
        (bound_source(share=False), {}, "source dataset dataset://src/model is not shared"),
        (
            bound_source(selector={"matchLabels": {"team": "b"}}),
            {"team": "a"},
            "source dataset dataset://src/model is not shared to current namespace",
        ),
        (
            SourceObservation(dataset_error="fetch source dataset dataset://src/model error: nope"),
            {},
            "fetch source dataset dataset://src/model error: nope",
        ),
    ],
)
def test_reference_refused_in_the_config_condition(
    source: SourceObservation, ns_labels: dict[str, str], message: str
) -> None:
    plan = reconcile(
        reference(), Observed(now=at(1), namespace=namespace(ns_labels), source=source), NO_WAIT
    )
    assert conditions(plan.status)["Config"] == ("False", "ConfigReady", message)
    assert plan.status["phase"] == FAILED
    assert plan.creates == [] and plan.requeue_after is None  # FAILED is not retried


def test_reference_needs_the_source_pvc_bound() -> None:
    unbound = SourceObservation(
        dataset=source_dataset(), pvc={"metadata": {"name": "model"}, "spec": {}}
    )
    plan = reconcile(
        reference(), Observed(now=at(1), namespace=namespace({}), source=unbound), NO_WAIT
    )
    assert conditions(plan.status)["PVC"] == ("False", "PVCReady", "pvc src/model has no volume")
    assert plan.status["phase"] == FAILED
    no_pvc = SourceObservation(dataset={**source_dataset(), "status": {}})
    plan = reconcile(
        reference(), Observed(now=at(1), namespace=namespace({}), source=no_pvc), NO_WAIT
    )
    assert conditions(plan.status)["PVC"][2] == "source dataset src/model has no pvc"


def test_reference_keeps_its_first_error_message() -> None:
    ds = reference()
    step(ds, Observed(now=at(1), namespace=namespace({}), source=bound_source(share=False)))
    step(
        ds,
        Observed(
            now=at(2),
            namespace=namespace({"team": "a"}),
            source=SourceObservation(dataset_error="gone"),
        ),
    )
    assert (
        conditions(ds["status"])["Config"][2] == "source dataset dataset://src/model is not shared"
    )


# --------------------------------------------------------------------------- label selectors


@pytest.mark.parametrize(
    ("selector", "labels", "expected"),
    [
        (None, {}, True),
        ({}, {"a": "1"}, True),
        ({"matchLabels": {"a": "1"}}, {"a": "1", "b": "2"}, True),
        ({"matchLabels": {"a": "1"}}, {"a": "2"}, False),
        (
            {"matchExpressions": [{"key": "a", "operator": "In", "values": ["1", "2"]}]},
            {"a": "2"},
            True,
        ),
        ({"matchExpressions": [{"key": "a", "operator": "In", "values": ["1"]}]}, {}, False),
        ({"matchExpressions": [{"key": "a", "operator": "NotIn", "values": ["1"]}]}, {}, True),
        (
            {"matchExpressions": [{"key": "a", "operator": "NotIn", "values": ["1"]}]},
            {"a": "1"},
            False,
        ),
        ({"matchExpressions": [{"key": "a", "operator": "Exists"}]}, {"a": ""}, True),
        ({"matchExpressions": [{"key": "a", "operator": "Exists"}]}, {}, False),
        ({"matchExpressions": [{"key": "a", "operator": "DoesNotExist"}]}, {}, True),
        ({"matchExpressions": [{"key": "a", "operator": "DoesNotExist"}]}, {"a": "x"}, False),
        (
            {
                "matchLabels": {"t": "x"},
                "matchExpressions": [{"key": "e", "operator": "In", "values": ["p"]}],
            },
            {"t": "x", "e": "q"},
            False,
        ),
    ],
)
def test_selector_semantics(selector: Any, labels: dict[str, str], expected: bool) -> None:
    assert logic.selector_matches(selector, labels) is expected


@pytest.mark.parametrize(
    "selector",
    [
        {"matchExpressions": [{"key": "a", "operator": "In", "values": []}]},
        {"matchExpressions": [{"key": "a", "operator": "Exists", "values": ["x"]}]},
        {"matchExpressions": [{"key": "a", "operator": "Gt", "values": ["1"]}]},
    ],
)
def test_invalid_selectors_are_errors(selector: dict[str, Any]) -> None:
    with pytest.raises(logic.SelectorError):
        logic.selector_matches(selector, {"a": "1"})


@given(st.dictionaries(st.sampled_from("abc"), st.sampled_from(["1", "2"])))
def test_match_labels_is_a_subset_test(labels: dict[str, str]) -> None:
    selector = {"matchLabels": {"a": "1"}}
    assert logic.selector_matches(selector, labels) is (labels.get("a") == "1")


# --------------------------------------------------------------------------- injection


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("2s", 2), ("500ms", 0.5), ("1m30s", 90), ("1.5h", 5400), ("0", 0), ("0.25", 0.25)],
)
def test_durations(text: str, seconds: float) -> None:
    assert logic.parse_duration(text) == pytest.approx(seconds)


@pytest.mark.parametrize("text", ["", "2x", "s", "1s2", "-1s", "fast"])
def test_bad_durations(text: str) -> None:
    with pytest.raises(logic.InjectionError):
        logic.parse_duration(text)


def test_fail_rounds() -> None:
    assert logic.parse_fail_rounds("1, 3") == frozenset({1, 3})
    assert logic.parse_fail_rounds("ALL") == "all"
    assert logic.parse_fail_rounds("") == frozenset()
    with pytest.raises(logic.InjectionError):
        logic.parse_fail_rounds("0")


def test_dataset_annotations_win_over_namespace_over_defaults() -> None:
    defaults = Timings(pending=0, transient_failed=0.1, round_duration=0.3)
    ns = {logic.ANN_ROUND_DURATION: "5s", logic.ANN_FAIL_ROUNDS: "all"}
    ds = {logic.ANN_ROUND_DURATION: "1s"}
    timings = logic.resolve_timings(ds, ns, defaults)
    assert timings == Timings(pending=0, transient_failed=0.1, round_duration=1, fail_rounds="all")
    with pytest.raises(logic.InjectionError, match="round-duration"):
        logic.resolve_timings({logic.ANN_ROUND_DURATION: "soon"}, None, defaults)


def test_job_verdict_after_the_round_duration() -> None:
    timings = Timings(round_duration=2, fail_rounds=frozenset({2}))
    running = {"metadata": {"name": "dataset-x-round-1"}, "status": {}}
    assert logic.job_verdict(running, T0, timings, at(1)) == logic.JobVerdict(
        done=False, remaining=1
    )
    ok = logic.job_verdict(running, T0, timings, at(2))
    assert ok.done and ok.succeeded
    second = {"metadata": {"name": "dataset-x-round-2"}, "status": {}}
    bad = logic.job_verdict(second, T0, timings, at(3))
    assert bad.done and not bad.succeeded
    patch = logic.job_status_patch(bad, T0, at(3))
    assert [c["type"] for c in patch["conditions"]] == ["FailureTarget", "Failed"]
    assert logic.JobView.from_job({"metadata": {"name": "j"}, "status": patch}).failed
    win = logic.job_status_patch(ok, T0, at(2))
    view = logic.JobView.from_job({"metadata": {"name": "j"}, "status": win})
    assert view.succeeded and view.completion_time == logic.rfc3339(at(2))


# --------------------------------------------------------------------------- robustness


@pytest.mark.parametrize(
    "spec",
    [
        {},
        {"source": "HUGGING_FACE"},
        {"source": {"type": "HUGGING_FACE"}},
        {"source": {"type": "HUGGING_FACE", "uri": "x"}, "dataSyncRound": "two"},
    ],
)
def test_malformed_dataset_is_a_config_condition(spec: dict[str, Any]) -> None:
    ds = dataset()
    ds["spec"] = spec
    plan = reconcile(ds, Observed(now=at(1)), NO_WAIT)
    assert conditions(plan.status)["Config"][0:2] == ("False", "ConfigReady")
    assert plan.status["phase"] == FAILED
    assert plan.creates == []


def test_malformed_status_keeps_config_reason() -> None:
    status = logic.malformed_status({"metadata": {}, "status": "junk"}, "bad", at(1))
    assert status["phase"] == FAILED
    assert conditions(status)["Config"] == ("False", "ConfigReady", "bad")


@given(
    st.fixed_dictionaries(
        {},
        optional={
            "source": st.one_of(
                st.none(),
                st.text(max_size=3),
                st.fixed_dictionaries(
                    {},
                    optional={
                        "type": st.sampled_from(
                            ["HUGGING_FACE", "REFERENCE", "PVC", "NFS", "MANUAL", ""]
                        ),
                        "uri": st.sampled_from(
                            ["", "dataset://", "dataset://a/b", "pvc://p/x", "nfs://h/p"]
                        ),
                    },
                ),
            ),
            "dataSyncRound": st.one_of(st.integers(-2, 9), st.none(), st.text(max_size=2)),
            "volumeClaimRef": st.one_of(st.none(), st.just({"name": "c", "subPath": "../x"})),
            "volumeClaimTemplate": st.one_of(st.none(), st.just({"spec": {"resources": None}})),
        },
    ),
    st.booleans(),
)
def test_reconcile_never_raises(spec: dict[str, Any], deleting: bool) -> None:
    ds = dataset(deleting=deleting)
    ds["spec"] = spec
    try:
        plan = reconcile(ds, Observed(now=at(1)), NO_WAIT)
    except (KeyError, TypeError, AttributeError, ValueError) as error:  # pragma: no cover
        pytest.fail(f"reconcile raised {error!r} for {spec}")
    assert plan.status.get("phase") in {PENDING, PROCESSING, READY, FAILED}


# --------------------------------------------------------------------------- CLI


def test_cli_defaults_are_the_test_timings_and_flags_win() -> None:
    args = build_parser().parse_args(["--kubeconfig", "k"])
    assert settings_from_args(args).defaults == Timings()
    args = build_parser().parse_args(
        [
            "--kubeconfig",
            "k",
            "--sandbox",
            "--round-duration",
            "2s",
            "--namespace",
            "a",
            "--namespace",
            "b",
            "--fail-rounds",
            "2",
        ]
    )
    settings = settings_from_args(args)
    assert settings.namespaces == ("a", "b")
    assert settings.defaults.round_duration == 2
    assert settings.defaults.pending == SANDBOX_TIMINGS.pending
    assert settings.defaults.fail_rounds == frozenset({2})


# --------------------------------------------------------------------------- the work queue


async def test_work_queue_never_runs_a_key_twice_at_once_and_keeps_the_earliest_timer() -> None:
    from modelfs.testing.fake_dataset.controller import WorkQueue

    queue = WorkQueue()
    key = ("dataset", "ns", "a")
    queue.add(key)
    queue.add(key)  # deduplicated
    assert await queue.get() == key
    queue.add(key)  # while active: marked dirty, not queued
    assert queue._queue.empty()
    queue.done(key)  # requeued once done
    assert await queue.get() == key
    queue.done(key)
    queue.add_after(key, 5.0)
    queue.add_after(key, 0.01)  # the earlier one wins
    async with asyncio.timeout(2):
        assert await queue.get() == key
    queue.done(key)
    queue.close()
