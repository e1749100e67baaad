"""What keeps the operator cheap (issue 11's targets) without changing what it does: kopf's
readiness set, the index snapshots, the ModelSync trigger, and the coalesced first status."""

from __future__ import annotations

import asyncio
from typing import Any, cast

import kopf
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from modelfs.controllers import modelsync, triggers
from modelfs.controllers.runtime import snapshot
from modelfs.kopf_internals import CountingToggleSet
from modelfs.operator import indexes_of, kopf_index
from tests.memcluster import obj
from tests.test_reconcile_core import NS, phase, shared_model_cluster

# ----------------------------------------------------------------------------- kopf's readiness


@settings(derandomize=True, max_examples=60, deadline=None)
@given(
    fn=st.sampled_from([all, any]),
    steps=st.lists(
        st.tuples(st.sampled_from(["make", "drop", "turn"]), st.integers(0, 7), st.booleans()),
        max_size=30,
    ),
)
def test_the_counting_toggle_set_says_what_kopfs_own_says(fn: Any, steps: list[Any]) -> None:
    async def run() -> None:
        counting = CountingToggleSet(fn)
        toggles: list[Any] = []
        for action, index, value in steps:
            if action == "make":
                toggles.append(await counting.make_toggle(value))
            elif toggles and action == "drop":
                await counting.drop_toggle(toggles[index % len(toggles)])
            elif toggles:
                await toggles[index % len(toggles)].turn_to(value)
            expected = fn(t.is_on() for t in counting)
            assert counting.is_on() == expected
            if expected:  # a waiter for the current state returns at once
                await asyncio.wait_for(counting.wait_for(True), 1)
            else:
                await asyncio.wait_for(counting.wait_for(False), 1)

    asyncio.run(run())


async def test_waiters_wake_when_the_last_object_is_indexed() -> None:
    indexed = CountingToggleSet(all)
    objects = [await indexed.make_toggle(name=f"object-{i}") for i in range(3)]
    waiters = [asyncio.create_task(indexed.wait_for(True)) for _ in range(5)]
    for toggle in objects[:2]:
        await indexed.drop_toggle(toggle)
        await asyncio.sleep(0)
        assert not any(w.done() for w in waiters)
    await indexed.drop_toggle(objects[2])
    await asyncio.wait_for(asyncio.gather(*waiters), 1)


# ----------------------------------------------------------------------------- indexes


def test_an_index_snapshot_keeps_only_the_managers_of_managed_fields_not_kubectls_copy() -> None:
    body: dict[str, Any] = {
        "metadata": {
            "name": "a",
            "managedFields": [
                {"manager": "modelfs", "operation": "Apply", "fieldsV1": {"f:x": {}}}
            ],
            "annotations": {"kubectl.kubernetes.io/last-applied-configuration": "{}", "x": "1"},
            "labels": {"l": "v"},
        },
        "spec": {"k": 1},
        "status": {"phase": "READY"},
    }
    kept = snapshot(body)
    assert kept == {
        "metadata": {
            "name": "a",
            "managedFields": [{"manager": "modelfs"}],
            "annotations": {"x": "1"},
            "labels": {"l": "v"},
        },
        "spec": {"k": 1},
        "status": {"phase": "READY"},
    }
    assert body["metadata"]["managedFields"][0]["fieldsV1"]  # the body itself is left alone


# ----------------------------------------------------------------------------- triggers


def test_a_modelsync_change_reaches_only_the_modelsyncs_of_its_version() -> None:
    cluster = shared_model_cluster(versions=3, references=1)
    cluster.put(obj("ModelSync", NS, "dup-of-v1", {"modelRef": "mdl", "version": "v1"}))
    affected = triggers.sync_changed(cluster.indexes, cluster.objects["modelsyncs"][(NS, "sync-1")])
    assert affected.keys["modelsyncs"] == {(NS, "sync-1"), (NS, "dup-of-v1")}
    assert affected.keys["models"] == {(NS, "mdl")}
    assert len(affected.keys["modelreferences"]) == 1


async def test_the_duplicate_takes_over_when_the_first_is_deleted() -> None:
    cluster = shared_model_cluster(versions=2, references=0)
    cluster.put(obj("ModelSync", NS, "zz-second", {"modelRef": "mdl", "version": "v0"}))
    async with cluster.running():
        await cluster.settle()
        assert phase(cluster, "modelsyncs", (NS, "zz-second")) == "FAILED"
        cluster.delete("ModelSync", (NS, "sync-0"))
        await cluster.settle()
    # Here nothing collects sync-0's Dataset, so the second stops being a duplicate and finds
    # the Dataset owned by another: it was reconciled when the first went.
    status = cluster.objects["modelsyncs"][(NS, "zz-second")]["status"]
    ready = next(c for c in status["conditions"] if c["type"] == "Ready")
    assert ready["reason"] == "DatasetConflict", ready


# ----------------------------------------------------------------------------- every phase


async def test_a_new_datasets_pending_is_written_even_when_processing_follows_at_once() -> None:
    """No coalescing (docs/decisions.md): PENDING is a phase users and the sandbox see."""
    cluster = shared_model_cluster(versions=1, references=0)
    async with cluster.running():
        await cluster.settle()
        assert phase(cluster, "modelsyncs", (NS, "sync-0")) == "PENDING"
        cluster.dataset_status((NS, "mdl-v0"), phase="PROCESSING", inProcessing=True)
        await cluster.settle()
        assert phase(cluster, "modelsyncs", (NS, "sync-0")) == "PROCESSING"
    statuses = [w for w in cluster.writes if w[:2] == ("patch-status", "modelsyncs")]
    assert len(statuses) == 2, cluster.writes


async def test_the_modelsync_index_answers_by_model_and_by_version() -> None:
    bodies = {
        (NS, n): {"metadata": {"namespace": NS, "name": n}, "spec": {"modelRef": "m", "version": v}}
        for n, v in (("a", "v1"), ("b", "v1"), ("c", "v2"))
    }
    index: dict[Any, list[Any]] = {}
    for body in bodies.values():
        entries = await kopf_index(modelsync.DESCRIPTOR)(body=kopf.Body(cast(kopf.RawBody, body)))
        for key, value in entries.items():
            index.setdefault(key, []).append(value)
    empty: dict[Any, Any] = {}
    ix = indexes_of(
        {
            "namespaces_index": empty,
            "modelsources_index": empty,
            "models_index": empty,
            "modelsyncs_index": index,
            "modelreferences_index": empty,
            "datasets_index": empty,
        }
    )
    assert ix.sync_names_of_model((NS, "m")) == ["a", "b", "c"]
    assert [b["metadata"]["name"] for b in ix.syncs_of_version((NS, "m"), "v1")] == ["a", "b"]
    assert [b["metadata"]["name"] for b in ix.syncs_of_version((NS, "m"), "v3")] == []
    assert [b["metadata"]["name"] for b in ix.syncs_of_version((NS, "m"), "v2")] == ["c"]


def test_the_parse_cache_keeps_the_recent_modelsyncs_and_every_model(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from modelfs.api.v1 import Model, ModelSync
    from modelfs.controllers import runtime as runtime_module

    monkeypatch.setattr(runtime_module, "PARSED_SYNCS", 3)
    rt = runtime_module.Runtime(writer=None)  # type: ignore[arg-type]

    def body(kind: str, name: str, spec: dict[str, Any]) -> dict[str, Any]:
        made = obj(kind, NS, name, spec)
        made["metadata"].update(uid=f"uid-{name}", resourceVersion="1")
        return made

    model = body("Model", "m", {"sourceRef": "s", "versionConfigs": {"v": {"repo": "https://h/"}}})
    first = rt.parse(Model, model)
    syncs = [body("ModelSync", f"s{i}", {"modelRef": "m", "version": "v"}) for i in range(5)]
    parsed = [rt.parse(ModelSync, s) for s in syncs]
    assert rt.parse(ModelSync, syncs[4]) is parsed[4]  # kept: read once already
    assert rt.parse(ModelSync, syncs[0]) is not parsed[0]  # evicted, parsed anew
    assert rt.parse(Model, model) is first  # Models are read by all their ModelSyncs: kept
    assert len(rt.parsed_syncs) == 3


async def test_a_dataset_event_that_changes_nothing_read_reconciles_nothing() -> None:
    """The Dataset operator's finalizer Update (a finalizer, the spec's empty shells, the API
    server's mountOptions defaults) changes nothing a reconciler reads: no reconcile. Its status
    writes do."""
    cluster = shared_model_cluster(versions=1, references=0)
    sync_key, dataset_key = (NS, "sync-0"), (NS, "mdl-v0")
    async with cluster.running():
        await cluster.settle()
        before = cluster.reconciles[("modelsyncs", sync_key)]
        body = cluster.objects["datasets"][dataset_key]
        written_back = {
            **body,
            "metadata": {**body["metadata"], "finalizers": ["dataset.baizeai.io/finalizer"]},
            # the controller's full Update of the spec, then the API server's defaults
            "spec": {
                **body["spec"],
                "volumeClaimTemplate": {"metadata": {}, "status": {}},
                "mountOptions": {"path": "/", "mode": "0774", "uid": 1000, "gid": 1000},
            },
        }
        cluster._store("datasets", dataset_key, written_back)
        await cluster.settle()
        assert cluster.reconciles[("modelsyncs", sync_key)] == before
        cluster.dataset_status(dataset_key, phase="PROCESSING", inProcessing=True)
        await cluster.settle()
        assert cluster.reconciles[("modelsyncs", sync_key)] == before + 1
        assert phase(cluster, "modelsyncs", sync_key) == "PROCESSING"


def test_a_write_whose_watch_event_came_before_its_response_is_not_waited_for() -> None:
    """The watch and the write's response travel on two connections: when the event of
    modelfs's own write arrives first, nothing is left to wait for (a reconcile used to wait
    the full 5 s for it, and a 3 s round went by without its PROCESSING written)."""
    from modelfs.controllers.runtime import Runtime

    rt = Runtime(writer=None)  # type: ignore[arg-type]
    key = (NS, "mdl-v0")
    written = {"metadata": {"namespace": NS, "name": "mdl-v0", "resourceVersion": "7"}}
    assert not rt.record_event("datasets", key, written)  # the event, before the response
    rt.expect("datasets", key, written)  # the response
    assert rt.wait_for_own_write("datasets", key) is None
    later = {"metadata": {**written["metadata"], "resourceVersion": "9"}}
    rt.expect("datasets", key, later)  # the usual order: response first, then the event
    assert rt.wait_for_own_write("datasets", key) is not None
    assert (
        rt.record_event("datasets", key, later) and rt.wait_for_own_write("datasets", key) is None
    )


async def test_an_own_write_whose_event_beats_its_response_wakes_none_of_its_readers() -> None:
    """A Model's status write comes back through the watch before its response: the event is
    held until the response says it is modelfs's own, and none of the Model's ModelSyncs is
    reconciled for it. Someone else's write held meanwhile is news once the response is in."""
    from modelfs import operator as operator_module
    from modelfs.controllers import model as model_controller

    cluster = shared_model_cluster(versions=3, references=0)
    operator = operator_module.Operator(cluster.runtime)
    syncs = operator.queues["modelsyncs"]
    key = (NS, "mdl")
    stored = cluster.objects["models"][key]

    def version(rv: str, status: dict[str, Any]) -> dict[str, Any]:
        return {
            **stored,
            "metadata": {**stored["metadata"], "resourceVersion": rv},
            "status": status,
        }

    ours, theirs = version("900", {"versions": []}), version("901", {"edited": "by hand"})
    response: asyncio.Future[dict[str, Any] | None] = asyncio.get_running_loop().create_future()
    write = asyncio.ensure_future(cluster.runtime.write("models", key, response))
    await asyncio.sleep(0)
    operator.on_event(model_controller.DESCRIPTOR, ours, cluster.indexes)
    operator.on_event(model_controller.DESCRIPTOR, theirs, cluster.indexes)
    assert len(syncs) == 0  # both held
    response.set_result(ours)
    assert await write is ours
    assert cluster.runtime.in_flight == {}
    await asyncio.sleep(1.2)  # a Model's own key is added with a delay (fan-in)
    assert len(syncs) == 3  # the hand edit reached the three ModelSyncs, once each
    assert not cluster.runtime.expecting("models", key)  # nothing left to wait for
    await operator.stop()


async def test_a_held_event_is_news_when_the_write_fails() -> None:
    """A write that raises: what the watch brought meanwhile is handed on as news."""
    from modelfs import operator as operator_module
    from modelfs.controllers import model as model_controller

    cluster = shared_model_cluster(versions=2, references=0)
    operator = operator_module.Operator(cluster.runtime)
    key = (NS, "mdl")
    stored = cluster.objects["models"][key]
    event = {**stored, "metadata": {**stored["metadata"], "resourceVersion": "950"}}

    async def refused() -> dict[str, Any] | None:
        operator.on_event(model_controller.DESCRIPTOR, event, cluster.indexes)
        assert len(operator.queues["modelsyncs"]) == 0
        raise RuntimeError("refused")

    with pytest.raises(RuntimeError):
        await cluster.runtime.write("models", key, refused())
    assert len(operator.queues["modelsyncs"]) == 2
    await operator.stop()


async def test_a_resync_of_settled_modelsyncs_decides_nothing(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Once a ModelSync's reconcile had nothing to do, another with the same inputs (the
    resync, news about something it does not read) does not decide again; a change of anything
    it reads does."""
    decided: list[tuple[str, str]] = []
    original = modelsync.decide

    def counting(observed: modelsync.Observed, now: Any) -> modelsync.Plan:
        decided.append(observed.key)
        return original(observed, now)

    monkeypatch.setattr(modelsync, "decide", counting)
    cluster = shared_model_cluster(versions=3, references=0)
    async with cluster.running() as operator:
        await cluster.settle()
        cluster.ready_all_datasets()
        await cluster.settle()
        assert {phase(cluster, "modelsyncs", (NS, f"sync-{i}")) for i in range(3)} == {"READY"}
        settled = len(decided)
        operator.enqueue(triggers.everything(cluster.indexes, operator.kinds), low=True)
        await cluster.settle()
        assert len(decided) == settled  # every one of them settled: nothing decided
        cluster.dataset_status((NS, "mdl-v1"), phase="PROCESSING", inProcessing=True)
        await cluster.settle()
        assert decided[settled:] == [(NS, "sync-1")]
        assert phase(cluster, "modelsyncs", (NS, "sync-1")) == "PROCESSING"
