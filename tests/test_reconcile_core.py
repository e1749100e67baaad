"""The reconcile core without a cluster: the work queue, the trigger map, and the reconcilers
end to end on an in-memory cluster (dict-backed indexes, a recording writer)."""

from __future__ import annotations

import asyncio
import itertools
import logging
from collections import Counter
from datetime import UTC, datetime
from typing import Any

import aiohttp
import pytest
from prometheus_client import REGISTRY

from modelfs import operator as operator_module
from modelfs.controllers import modelsync, runtime, triggers, watched
from modelfs.controllers.queue import WorkQueue
from modelfs.controllers.runtime import Key
from tests.memcluster import MemCluster, obj

NS, CONSUMERS = "team-a", "team-b"


# ----------------------------------------------------------------------------- the queue


async def test_keys_added_while_waiting_are_merged() -> None:
    queue: WorkQueue[str] = WorkQueue("test")
    for _ in range(5):
        queue.add("a")
    queue.add("b")
    assert len(queue) == 2
    assert await queue.get() == "a"
    assert await queue.get() == "b"


async def test_a_key_added_while_running_runs_again_after() -> None:
    queue: WorkQueue[str] = WorkQueue("test")
    queue.add("a")
    key = await queue.get()
    queue.add("a")  # while a worker has it
    assert len(queue) == 0, "never two reconciles of one key at once"
    queue.done(key)
    assert len(queue) == 1


async def test_one_worker_per_key_and_failures_back_off_per_key() -> None:
    queue: WorkQueue[str] = WorkQueue("test", base_delay=0.05)
    running: set[str] = set()
    calls: dict[str, list[float]] = {"good": [], "bad": []}
    loop = asyncio.get_running_loop()

    async def reconcile(key: str) -> float | None:
        assert key not in running, "two workers on one key"
        running.add(key)
        calls[key].append(loop.time())
        await asyncio.sleep(0.01)
        running.discard(key)
        if key == "bad" and len(calls["bad"]) < 3:
            raise RuntimeError("boom")
        return None

    queue.start(reconcile, workers=4)
    queue.add("bad")
    for _ in range(3):
        queue.add("good")
        await asyncio.sleep(0.004)
    await asyncio.sleep(0.5)
    await queue.stop()
    bad = calls["bad"]
    assert len(bad) == 3  # failed twice, retried with backoff, then succeeded and stayed done
    assert bad[2] - bad[1] > bad[1] - bad[0] >= 0.05  # 0.05 s, then 0.1 s
    assert 1 <= len(calls["good"]) <= 3  # merged or re-run after, never lost, never parallel


async def test_a_wait_for_an_own_dataset_write_is_taken_when_it_comes_back() -> None:
    """A ModelSync that waited for its Dataset apply to come back through the watch: the wait
    is taken when it does (Datasets have no queue; the ModelSync, their reader, is enqueued),
    so nothing is kept per Dataset for ever."""
    cluster = shared_model_cluster(versions=1, references=0)
    operator = operator_module.Operator(cluster.runtime)
    dataset = {"metadata": {"name": "mdl-v0", "namespace": NS, "resourceVersion": "7"}}
    cluster.runtime.expect("datasets", (NS, "mdl-v0"), dataset)
    assert cluster.runtime.wait_for_own_write("datasets", (NS, "mdl-v0")) is not None
    operator.on_event(watched.DATASETS, dataset, cluster.indexes)
    assert cluster.runtime.deferred == set()
    assert "datasets" not in operator.queues
    await operator.stop()


async def test_add_after_keeps_the_earliest_time() -> None:
    queue: WorkQueue[str] = WorkQueue("test")
    queue.add_after("a", 10)
    queue.add_after("a", 0.02)
    queue.add_after("a", 5)
    await asyncio.sleep(0.05)
    assert len(queue) == 1
    await queue.stop()


async def test_a_reconcile_replaces_the_look_again_set_before_it() -> None:
    """A key set to be looked at again later, then added by a watch event: it is reconciled
    once, now; what that reconcile returns sets the next look (here: none)."""
    queue: WorkQueue[str] = WorkQueue("test")
    runs: list[str] = []

    async def reconcile(key: str) -> float | None:
        runs.append(key)
        return None

    queue.add_after("a", 0.2)
    queue.add("a")
    queue.start(reconcile, 1)
    await asyncio.sleep(0.4)
    assert runs == ["a"]
    queue.add_after("a", 0.05)  # a later look, with no add in between, still comes
    await asyncio.sleep(0.2)
    assert runs == ["a", "a"]
    await queue.stop()


async def test_a_look_again_comes_back_behind_the_news() -> None:
    """What a reconcile asks to look at again is not news: it waits behind keys a watch event
    added (a burst of new objects is not slowed by the looks again of the first ones)."""
    queue: WorkQueue[str] = WorkQueue("test")
    runs: list[str] = []
    gate = asyncio.Event()

    async def reconcile(key: str) -> float | None:
        runs.append(key)
        if key == "first":
            return 0.03 if runs.count("first") == 1 else None  # look again soon, once
        if key == "busy":
            await gate.wait()
        return None

    queue.add("first")
    queue.add("busy")  # the worker is held here while the look again comes due, then news
    queue.start(reconcile, 1)
    await asyncio.sleep(0.1)
    for name in ("n1", "n2"):
        queue.add(name)
    assert len(queue) == 3 and queue.backlog() == 2  # the look again waits at low priority
    gate.set()
    await asyncio.sleep(0.1)
    assert runs == ["first", "busy", "n1", "n2", "first"]
    await queue.stop()


async def test_a_stopped_queue_reports_no_depth() -> None:
    """A replica that stops leading drops its queues: their depth must not stay on the
    metric (the standby would report the last leader's backlog for as long as it waits)."""
    queue: WorkQueue[str] = WorkQueue("stopped")
    for name in ("a", "b", "c"):
        queue.add(name)

    def depth() -> float | None:
        return REGISTRY.get_sample_value("modelfs_workqueue_depth", {"name": "stopped"})

    assert depth() == 3
    await queue.stop()
    assert depth() == 0


# ----------------------------------------------------------------------------- the trigger map


def test_a_source_change_reaches_its_models_and_their_syncs_only() -> None:
    cluster = shared_model_cluster(versions=3, references=2)
    cluster.put(obj("ModelSource", NS, "other", {"type": "HTTP"}))
    affected = triggers.source_changed(
        cluster.indexes, cluster.objects["modelsources"][(NS, "src")]
    )
    assert affected.keys["modelsources"] == {(NS, "src")}
    assert affected.keys["models"] == {(NS, "mdl")}
    assert affected.keys["modelsyncs"] == {(NS, f"sync-{i}") for i in range(3)}
    assert affected.keys["modelreferences"] == set()


def test_a_dataset_change_reaches_its_owner_and_the_models_readers() -> None:
    cluster = shared_model_cluster(versions=1, references=2)
    dataset = {
        "metadata": {
            "name": "mdl-v0",
            "namespace": NS,
            "ownerReferences": [{"kind": "ModelSync", "name": "sync-0", "controller": True}],
        }
    }
    affected = triggers.dataset_changed(cluster.indexes, dataset)
    assert affected.keys["modelsyncs"] == {(NS, "sync-0")}
    assert affected.keys["modelreferences"] == {(CONSUMERS, "ref-0"), (CONSUMERS, "ref-1")}
    assert affected.keys["models"] == set()


def test_a_namespace_change_reaches_the_references_in_it() -> None:
    cluster = shared_model_cluster(versions=1, references=2)
    affected = triggers.namespace_changed(cluster.indexes, CONSUMERS)
    assert affected.keys["modelreferences"] == {(CONSUMERS, "ref-0"), (CONSUMERS, "ref-1")}
    assert triggers.namespace_changed(cluster.indexes, "elsewhere").count() == 0


# ----------------------------------------------------------------------------- end to end


def shared_model_cluster(versions: int, references: int) -> MemCluster:
    cluster = MemCluster()
    cluster.namespace(NS)
    cluster.namespace(CONSUMERS, team="b")
    cluster.put(obj("ModelSource", NS, "src", {"type": "HTTP"}))
    cluster.put(
        obj(
            "Model",
            NS,
            "mdl",
            {
                "sourceRef": "src",
                "versionConfigs": {f"v{i}": {"repo": f"https://h/{i}/"} for i in range(versions)},
                "share": {"namespaceSelector": {"matchLabels": {"team": "b"}}},
            },
        )
    )
    for i in range(versions):
        cluster.put(obj("ModelSync", NS, f"sync-{i}", {"modelRef": "mdl", "version": f"v{i}"}))
    for i in range(references):
        cluster.put(
            obj(
                "ModelReference",
                CONSUMERS,
                f"ref-{i}",
                {"modelRef": {"namespace": NS, "name": "mdl"}, "version": f"v{i % versions}"},
            )
        )
    return cluster


def phase(cluster: MemCluster, plural: str, key: tuple[str, str]) -> Any:
    return (cluster.objects[plural][key].get("status") or {}).get("phase")


async def test_samples_settle_ready_and_then_nothing_is_written() -> None:
    cluster = shared_model_cluster(versions=2, references=1)
    async with cluster.running():
        await cluster.settle()
        assert len(cluster.objects["datasets"]) == 2
        cluster.ready_all_datasets()
        await cluster.settle()
        cluster.ready_all_datasets()  # the REFERENCE Dataset too
        await cluster.settle()
        assert phase(cluster, "modelsyncs", (NS, "sync-0")) == "READY"
        assert phase(cluster, "modelreferences", (CONSUMERS, "ref-0")) == "READY"
        before = len(cluster.writes)
        assert cluster.operator is not None
        cluster.operator.enqueue(triggers.everything(cluster.indexes))  # a resync
        await cluster.settle()
        assert cluster.writes[before:] == [], "an idle cluster sees no writes"


async def test_a_source_edit_that_fails_20_syncs_read_by_20_references_fans_out_once() -> None:
    """The fan-out of issue 11: each affected object is reconciled at most twice."""
    cluster = shared_model_cluster(versions=20, references=20)
    async with cluster.running():
        await cluster.settle()
        cluster.ready_all_datasets()
        await cluster.settle()
        assert all(phase(cluster, "modelsyncs", (NS, f"sync-{i}")) == "READY" for i in range(20))
        cluster.reconciles.clear()
        writes_before = len(cluster.writes)
        source = cluster.objects["modelsources"][(NS, "src")]
        cluster.put({**source, "spec": {"type": "HTTP", "config": {"bogus": "x"}}})
        await cluster.settle(within=30)
        for i in range(20):
            sync = cluster.objects["modelsyncs"][(NS, f"sync-{i}")]
            assert sync["status"]["phase"] == "FAILED"
        worst = max(cluster.reconciles.values())
        assert worst <= 2, cluster.reconciles.most_common(5)
        model_writes = [
            w for w in cluster.writes[writes_before:] if w[:2] == ("patch-status", "models")
        ]
        assert len(model_writes) <= 2, model_writes


async def test_a_duplicate_modelsync_is_refused_naming_the_first() -> None:
    cluster = shared_model_cluster(versions=1, references=0)
    cluster.put(obj("ModelSync", NS, "zz-second", {"modelRef": "mdl", "version": "v0"}))
    async with cluster.running():
        await cluster.settle()
    status = cluster.objects["modelsyncs"][(NS, "zz-second")]["status"]
    assert status["phase"] == "FAILED"
    ready = next(c for c in status["conditions"] if c["type"] == "Ready")
    assert ready["reason"] == "DuplicateModelSync" and "'sync-0'" in ready["message"]
    assert list(cluster.objects["datasets"]) == [(NS, "mdl-v0")]


async def test_retain_adds_its_finalizer_and_orphans_the_dataset_on_deletion() -> None:
    cluster = shared_model_cluster(versions=1, references=0)
    sync = cluster.objects["modelsyncs"][(NS, "sync-0")]
    cluster.put({**sync, "spec": {**sync["spec"], "deletionPolicy": "Retain"}})
    async with cluster.running():
        await cluster.settle()
        stored = cluster.objects["modelsyncs"][(NS, "sync-0")]
        assert stored["metadata"]["finalizers"] == [modelsync.RETAIN_FINALIZER]
        deleting = {**stored, "metadata": {**stored["metadata"], "deletionTimestamp": "now"}}
        cluster.put(deleting)
        await cluster.settle()
    assert ("orphan", "datasets", (NS, "mdl-v0")) in cluster.writes
    assert cluster.objects["modelsyncs"][(NS, "sync-0")]["metadata"]["finalizers"] == []
    assert ((NS, "sync-0"), "Normal", "DatasetRetained") in cluster.events


@pytest.mark.parametrize("labels", [{"team": "b"}, {"team": "c"}])
async def test_references_follow_the_namespace_labels(labels: dict[str, str]) -> None:
    cluster = shared_model_cluster(versions=1, references=1)
    cluster.namespace(CONSUMERS, **labels)
    async with cluster.running():
        await cluster.settle()
        cluster.ready_all_datasets()
        await cluster.settle()
        cluster.ready_all_datasets()  # the REFERENCE Dataset too
        await cluster.settle()
    ref = cluster.objects["modelreferences"][(CONSUMERS, "ref-0")]["status"]
    if labels["team"] == "b":
        assert ref["phase"] == "READY"
        assert (CONSUMERS, "ref-0") in cluster.objects["datasets"]
    else:
        assert ref["phase"] == "FAILED"
        assert (CONSUMERS, "ref-0") not in cluster.objects["datasets"]


async def test_news_is_served_before_a_pass_over_everything() -> None:
    queue: WorkQueue[str] = WorkQueue("test")
    for name in ("r1", "r2", "r3"):
        queue.add(name, low=True)  # the resync, or a restart's listing
    queue.add("new")  # a watch event
    queue.add("r3")  # news about one that was waiting low: it moves up
    assert [await queue.get() for _ in range(4)] == ["new", "r3", "r1", "r2"]
    assert len(queue) == 0


async def test_the_backlog_counts_news_waiting_and_a_pass_stays_low_after_a_run() -> None:
    queue: WorkQueue[str] = WorkQueue("test")
    queue.add("r1", low=True)
    assert queue.backlog() == 0, "a pass over everything is not news"
    queue.add("a")
    queue.add("a")
    queue.add("r1")  # moves up: now it is news
    assert queue.backlog() == 2
    assert await queue.get() == "a"
    assert queue.backlog() == 1
    queue.add("a", low=True)  # while a worker has it: again after, still low
    queue.done("a")
    assert queue.backlog() == 1 and len(queue) == 2
    assert [await queue.get() for _ in range(2)] == ["r1", "a"]
    assert queue.backlog() == 0
    queue.add("r1", low=True)
    queue.add("r1")  # low and high while running: high wins
    queue.done("r1")
    assert queue.backlog() == 1


async def test_in_a_burst_the_datasets_come_first_and_each_status_is_written_once() -> None:
    """A burst of new ModelSyncs (YIELD_BACKLOG or more waiting): their Datasets are applied
    before their statuses are written, and a Dataset that started meanwhile is reported as
    PROCESSING in one write, not as PENDING first."""
    count = 2 * runtime.YIELD_BACKLOG
    cluster = shared_model_cluster(versions=count, references=0)
    cluster.on_apply = lambda key: cluster.dataset_status(
        key, phase="PROCESSING", inProcessing=True
    )
    async with cluster.running():
        await cluster.settle()
    writes = [w for w in cluster.writes if w[1] in ("datasets", "modelsyncs")]
    first_status = next(i for i, w in enumerate(writes) if w[0] == "patch-status")
    applies = [i for i, w in enumerate(writes) if w[0] == "apply"]
    assert len(applies) == count
    # the workers had a few ModelSyncs in hand when the backlog fell below the mark
    assert sum(i > first_status for i in applies) <= runtime.YIELD_BACKLOG, writes
    statuses = Counter(w[2] for w in writes if w[0] == "patch-status")
    # those reconciled while the backlog lasted: one write, PROCESSING; the last ones, after
    # it: PENDING, then PROCESSING, as without a burst
    assert sum(n == 1 for n in statuses.values()) >= count - runtime.YIELD_BACKLOG, statuses
    assert set(statuses.values()) <= {1, 2}, statuses
    for i in range(count):
        assert phase(cluster, "modelsyncs", (NS, f"sync-{i}")) == "PROCESSING"


async def test_without_a_burst_every_phase_is_written() -> None:
    cluster = shared_model_cluster(versions=runtime.YIELD_BACKLOG - 1, references=0)
    cluster.on_apply = lambda key: cluster.dataset_status(
        key, phase="PROCESSING", inProcessing=True
    )
    async with cluster.running():
        await cluster.settle()
    statuses = Counter(w[2] for w in cluster.writes if w[:2] == ("patch-status", "modelsyncs"))
    assert len(statuses) == runtime.YIELD_BACKLOG - 1
    assert set(statuses.values()) == {2}, "PENDING, then PROCESSING"


def created_just_now(cluster: MemCluster, versions: int) -> None:
    """The cluster's ModelSyncs as the API server shows them right after their creation: the
    CRD's default status, created this second."""
    moment = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    for i in range(versions):
        body = obj("ModelSync", NS, f"sync-{i}", {"modelRef": "mdl", "version": f"v{i}"})
        body["metadata"]["creationTimestamp"] = moment
        cluster.put({**body, "status": {"phase": "PENDING"}})


async def test_a_new_modelsync_s_first_status_says_its_dataset_started() -> None:
    """A new ModelSync's first status waits for its Dataset to start: one write, PROCESSING,
    with no PENDING before it (the API server shows that one, the CRD's default)."""
    cluster = shared_model_cluster(versions=3, references=0)
    created_just_now(cluster, 3)

    async def start_later(key: Key) -> None:
        await asyncio.sleep(0.5)
        cluster.dataset_status(key, phase="PROCESSING", inProcessing=True)

    started: list[asyncio.Task[None]] = []
    cluster.on_apply = lambda key: started.append(asyncio.create_task(start_later(key)))
    async with cluster.running():
        await asyncio.sleep(1.0)
        await cluster.settle()
    statuses = [w[2] for w in cluster.writes if w[:2] == ("patch-status", "modelsyncs")]
    assert Counter(statuses) == {(NS, f"sync-{i}"): 1 for i in range(3)}, cluster.writes
    for i in range(3):
        assert phase(cluster, "modelsyncs", (NS, f"sync-{i}")) == "PROCESSING"


async def test_a_new_modelsync_whose_dataset_does_not_start_says_pending_in_time(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # creationTimestamp has whole seconds: the wait ends 0.5-1.5 s after the creation
    monkeypatch.setattr(modelsync, "FIRST_STATUS_WAIT", 1.5)
    cluster = shared_model_cluster(versions=2, references=0)
    created_just_now(cluster, 2)
    async with cluster.running():
        await asyncio.sleep(0.3)
        assert [w[0] for w in cluster.writes if w[1] == "datasets"] == ["apply"] * 2
        assert not [w for w in cluster.writes if w[:2] == ("patch-status", "modelsyncs")]
        await asyncio.sleep(1.5)
        await cluster.settle()
    for i in range(2):
        found = cluster.objects["modelsyncs"][(NS, f"sync-{i}")]["status"]
        assert found["phase"] == "PENDING" and found["datasetName"] == f"mdl-v{i}", found


async def test_a_status_yields_for_yield_seconds_at_most(monkeypatch: pytest.MonkeyPatch) -> None:
    """Under a backlog that never ends, a status is still written after YIELD_SECONDS."""
    clock = itertools.count(0.0, 1.0)
    monkeypatch.setattr("modelfs.controllers.runtime.time.monotonic", lambda: float(next(clock)))
    added: list[Key] = []

    class Busy:
        def backlog(self, plural: str) -> int:
            return runtime.YIELD_BACKLOG

        def add_low(self, plural: str, key: Key) -> None:
            added.append(key)

    rt = runtime.Runtime(writer=MemCluster(), queues=Busy())
    seconds = int(runtime.YIELD_SECONDS)
    answers = [rt.yield_status("modelsyncs", (NS, "s")) for _ in range(seconds + 3)]
    # written once the time is up; the next change yields anew
    assert answers == [True] * seconds + [False] + [True] * 2
    assert added == [(NS, "s")] * (seconds + 2)


async def test_a_retain_finalizer_comes_off_in_a_namespace_being_deleted() -> None:
    """Namespace deletion waits for the finalizer: a terminating namespace is left alone, but
    for this."""
    cluster = shared_model_cluster(versions=1, references=0)
    sync = cluster.objects["modelsyncs"][(NS, "sync-0")]
    cluster.put({**sync, "spec": {**sync["spec"], "deletionPolicy": "Retain"}})
    async with cluster.running():
        await cluster.settle()
        stored = cluster.objects["modelsyncs"][(NS, "sync-0")]
        assert stored["metadata"]["finalizers"] == [modelsync.RETAIN_FINALIZER]
        cluster.terminate_namespace(NS)
        writes = len(cluster.writes)
        deleting = {**stored, "metadata": {**stored["metadata"], "deletionTimestamp": "now"}}
        cluster.put(deleting)
        await cluster.settle()
    assert cluster.objects["modelsyncs"][(NS, "sync-0")]["metadata"]["finalizers"] == []
    assert not [
        w for w in cluster.writes[writes:] if w[1] in ("events", "modelsyncs") and w[0] != "patch"
    ]


# ----------------------------------------------------------------------------- isolation


async def test_one_object_that_raises_is_shown_backed_off_and_holds_up_no_other(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """Issue 12, item 2: a reconcile that raises (here: an OverflowError out of one ModelSync's
    decide, as `retry.backoff: 100000000h` did) is logged once with its traceback, shown on
    that object's status and in one Event, and backed off for it alone; the 20 others, the
    resync and the Model all go on."""
    bad = (NS, "sync-7")
    failed_at: list[float] = []
    original = modelsync.decide
    loop = asyncio.get_running_loop()

    def decide(observed: modelsync.Observed, now: Any) -> modelsync.Plan:
        if observed.key == bad:
            failed_at.append(loop.time())
            raise OverflowError("date value out of range")
        return original(observed, now)

    monkeypatch.setattr(modelsync, "decide", decide)
    monkeypatch.setattr(operator_module, "RESYNC_SECONDS", 0.3)
    caplog.set_level(logging.WARNING, logger="modelfs.queue")
    cluster = shared_model_cluster(versions=21, references=0)
    async with cluster.running() as operator:
        await asyncio.sleep(1.0)
        cluster.ready_all_datasets()
        await asyncio.sleep(3.5)
        backoff = operator.queues["modelsyncs"].failures(bad)
    others = [(NS, f"sync-{i}") for i in range(21) if (NS, f"sync-{i}") != bad]
    assert all(phase(cluster, "modelsyncs", key) == "READY" for key in others)
    assert len(cluster.objects["datasets"]) == 20
    assert (NS, "mdl-v7") not in cluster.objects["datasets"]
    # Every resync (every 0.3 s) reached the others: nothing stopped at the failing one.
    assert min(cluster.reconciles[("modelsyncs", key)] for key in others) >= 8
    # Shown on its status and in one Event.
    status = cluster.objects["modelsyncs"][bad]["status"]
    ready = next(c for c in status["conditions"] if c["type"] == "Ready")
    assert ready["status"] == "False" and ready["reason"] == "ReconcileError", ready
    assert "OverflowError: date value out of range" in ready["message"]
    assert [e for e in cluster.events if e[0] == bad] == [(bad, "Warning", "ReconcileError")]
    # Backed off: 0.5 s, 1 s, 2 s between attempts; the resync does not cut it short.
    gaps = [b - a for a, b in itertools.pairwise(failed_at)]
    assert len(failed_at) >= 3 and backoff == len(failed_at), (failed_at, backoff)
    assert all(later > 1.5 * earlier for earlier, later in itertools.pairwise(gaps)), gaps
    # Logged once with its traceback, then one warning line per retry.
    about = [r for r in caplog.records if getattr(r, "object", None) == bad]
    assert [r.levelname for r in about] == ["ERROR"] + ["WARNING"] * (len(failed_at) - 1)
    assert about[0].exc_info is not None and all(r.exc_info is None for r in about[1:])
    # The Model lists the failing version without a phase, the others READY.
    versions = cluster.objects["models"][(NS, "mdl")]["status"]["versions"]
    assert [v.get("phase") for v in versions if v["sync"] != "sync-7"] == ["READY"] * 20


@pytest.mark.parametrize(
    "error",
    [
        ConnectionRefusedError(111, "Connect call failed ('127.0.0.1', 6443)"),
        aiohttp.ServerDisconnectedError(),
        TimeoutError(),
    ],
    ids=type,
)
async def test_an_unanswered_request_is_retried_with_a_warning_not_reported_as_a_bug(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture, error: Exception
) -> None:
    """kube-apiserver down (the fault suite's outage): a refused or cut connection is transient
    like an API error: warnings without a traceback, no ReconcileError on the status (it could
    not be written anyway), and the object reconciles once the API answers again."""
    bad = (NS, "sync-1")
    failures = 0
    original = modelsync.decide

    def decide(observed: modelsync.Observed, now: Any) -> modelsync.Plan:
        nonlocal failures
        if observed.key == bad and failures < 2:
            failures += 1
            raise error
        return original(observed, now)

    monkeypatch.setattr(modelsync, "decide", decide)
    caplog.set_level(logging.WARNING)
    cluster = shared_model_cluster(versions=2, references=0)
    async with cluster.running():
        # the backoff (0.5 s, then 1 s from the second failure) decides when its Dataset exists
        for _ in range(50):
            await asyncio.sleep(0.1)
            cluster.ready_all_datasets()
            if failures == 2 and phase(cluster, "modelsyncs", bad) == "READY":
                break
    assert failures == 2
    assert phase(cluster, "modelsyncs", bad) == "READY"
    about = [r for r in caplog.records if getattr(r, "object", None) == bad]
    assert [r.levelname for r in about] == ["WARNING", "WARNING"], about
    assert all(r.exc_info is None for r in about)
    assert not [e for e in cluster.events if e[0] == bad and e[2] == "ReconcileError"]


async def test_a_failure_that_stops_shows_the_object_ready_again(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The ReconcileError goes once the reconcile succeeds (a fixed object, a fixed bug)."""
    broken = True
    original = modelsync.decide

    def decide(observed: modelsync.Observed, now: Any) -> modelsync.Plan:
        if broken:
            raise ValueError("boom")
        return original(observed, now)

    monkeypatch.setattr(modelsync, "decide", decide)
    cluster = shared_model_cluster(versions=1, references=0)
    async with cluster.running():
        await asyncio.sleep(0.3)
        ready = modelsync_ready(cluster, (NS, "sync-0"))
        assert ready["reason"] == "ReconcileError" and "ValueError: boom" in ready["message"]
        broken = False
        sync = cluster.objects["modelsyncs"][(NS, "sync-0")]
        cluster.put({**sync, "metadata": {**sync["metadata"], "labels": {"fixed": "yes"}}})
        await cluster.settle()
        cluster.ready_all_datasets()
        await cluster.settle()
    assert modelsync_ready(cluster, (NS, "sync-0"))["reason"] == "DatasetReady"
    reasons = [e[2] for e in cluster.events if e[0] == (NS, "sync-0")]
    # one Warning, then the end of the first round (every round ends with an Event)
    assert reasons == ["ReconcileError", "Synced"], reasons


def modelsync_ready(cluster: MemCluster, key: tuple[str, str]) -> dict[str, Any]:
    status = cluster.objects["modelsyncs"][key].get("status") or {}
    return next((c for c in status.get("conditions") or [] if c["type"] == "Ready"), {})


# ----------------------------------------------------------------------------- event storms


async def test_a_lagging_index_gets_one_event_per_transition(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Defect 8: status and event decisions read the index, which may not show modelfs's own
    last write yet (a watch that lags more than the expectation's wait): every reconcile then
    saw the old Ready and announced the new one again (16 identical events on one ModelSource).
    The decision now also reads what modelfs itself last wrote."""
    monkeypatch.setattr(runtime, "EXPECTATION_SECONDS", 0.05)
    cluster = shared_model_cluster(versions=2, references=1)
    cluster.lag = 0.8
    async with cluster.running() as operator:
        for _ in range(12):  # resyncs and fan-in while the watch lags
            operator.enqueue(triggers.everything(cluster.indexes), low=True)
            await asyncio.sleep(0.1)
        await cluster.settle(quiet=2.0, within=30)
        cluster.ready_all_datasets()
        for _ in range(12):
            operator.enqueue(triggers.everything(cluster.indexes), low=True)
            await asyncio.sleep(0.1)
        await cluster.settle(quiet=2.0, within=30)
    assert phase(cluster, "modelsyncs", (NS, "sync-0")) == "READY"
    per_object = Counter((key, reason) for key, _, reason in cluster.events)
    assert per_object[((NS, "src"), "Ready")] == 1, per_object
    assert per_object[((NS, "mdl"), "Ready")] == 1, per_object
    for i in range(2):  # a first round ends with one Event, as every round does
        assert per_object[((NS, f"sync-{i}"), "Synced")] == 1, per_object
        assert per_object[((NS, f"sync-{i}"), "DatasetCreated")] == 0, per_object
    assert per_object[((CONSUMERS, "ref-0"), "DatasetCreated")] == 1, per_object
    assert max(per_object.values()) == 1, sorted(per_object.items())


# ----------------------------------------------------------------------------- revocation


async def test_a_revocation_does_not_wait_for_modelfs_own_writes_to_come_back() -> None:
    """Defect 10: a namespace unlabelled right after its reference got a Dataset. The watch
    batched modelfs's apply with the Dataset controller's write that followed, so modelfs never
    saw its own version: the reference waited for it (5 s) before it could delete. A
    revocation now acts at once, also on a Dataset the index does not show yet."""
    cluster = shared_model_cluster(versions=1, references=0)
    loop = asyncio.get_running_loop()
    async with cluster.running() as operator:
        await cluster.settle()
        cluster.ready_all_datasets()
        await cluster.settle()
        cluster.lag = 0.3
        cluster.on_apply = lambda key: cluster.dataset_status(key, phase="PENDING")
        cluster.put(
            obj(
                "ModelReference",
                CONSUMERS,
                "ref-0",
                {"modelRef": {"namespace": NS, "name": "mdl"}, "version": "v0"},
            )
        )
        for _ in range(300):
            if ("apply", "datasets", (CONSUMERS, "ref-0")) in cluster.writes:
                break
            await asyncio.sleep(0.01)
        cluster.namespace(CONSUMERS, team="c")  # unlabelled: the Model shares with team b only
        unlabelled = loop.time()
        operator.enqueue(triggers.namespace_changed(cluster.indexes, CONSUMERS))
        while (CONSUMERS, "ref-0") in cluster.objects["datasets"]:
            assert loop.time() - unlabelled < 3.0, "the REFERENCE Dataset outlived its right"
            await asyncio.sleep(0.01)
        took = loop.time() - unlabelled
        await cluster.settle(quiet=1.0)
    assert took < 1.0, took
    assert (CONSUMERS, "ref-0") not in cluster.objects["datasets"]
    status = cluster.objects["modelreferences"][(CONSUMERS, "ref-0")]["status"]
    assert status["phase"] == "FAILED"
    deleted = [
        e for e in cluster.events if e[0] == (CONSUMERS, "ref-0") and e[2] == "DatasetDeleted"
    ]
    assert len(deleted) == 1, cluster.events


# ----------------------------------------------------------------------------- kill windows


def killed_after_the_dataset_write(cluster: MemCluster, meanwhile: Any = None) -> list[Key]:
    """The next apply of a Dataset is stored, then the reconcile dies before its status write
    (a kill between the two writes of a round); `meanwhile` runs then (the user's edit while the
    operator is down). The retried reconcile starts from what the kill left, as a restart would."""
    killed: list[Key] = []

    def kill(key: Key) -> None:
        if killed:
            return
        killed.append(key)
        if meanwhile is not None:
            meanwhile()
        raise RuntimeError("killed between the Dataset write and the status write")

    cluster.on_apply = kill
    return killed


def raise_sync_round(cluster: MemCluster, key: Key, to: int) -> None:
    stored = cluster.objects["modelsyncs"][key]
    cluster.put({**stored, "spec": {**stored["spec"], "syncRound": to}})


async def test_a_kill_after_a_raised_round_was_applied_starts_no_extra_round() -> None:
    cluster = shared_model_cluster(versions=1, references=0)
    key = (NS, "sync-0")
    async with cluster.running():
        await cluster.settle()
        cluster.ready_all_datasets()
        await cluster.settle()
        assert cluster.objects["modelsyncs"][key]["status"]["observedSyncRound"] == 1
        killed = killed_after_the_dataset_write(cluster)
        raise_sync_round(cluster, key, 2)
        await cluster.settle()
        assert killed == [(NS, "mdl-v0")]
        assert cluster.objects["datasets"][(NS, "mdl-v0")]["spec"]["dataSyncRound"] == 2
        cluster.ready_all_datasets()  # round 2 ran and succeeded
        await cluster.settle()
    dataset = cluster.objects["datasets"][(NS, "mdl-v0")]
    assert dataset["spec"]["dataSyncRound"] == 2, "syncRound 2 asked for ONE round"
    status = cluster.objects["modelsyncs"][key]["status"]
    assert status["observedSyncRound"] == 2 and status["phase"] == "READY"


async def test_a_round_raised_while_down_after_an_unrecorded_creation_is_downloaded() -> None:
    cluster = shared_model_cluster(versions=1, references=0)
    key = (NS, "sync-0")
    killed = killed_after_the_dataset_write(cluster, lambda: raise_sync_round(cluster, key, 2))
    async with cluster.running():
        await cluster.settle()
        assert killed == [(NS, "mdl-v0")]
        cluster.ready_all_datasets()
        await cluster.settle()
        assert cluster.objects["datasets"][(NS, "mdl-v0")]["spec"]["dataSyncRound"] == 2
        cluster.ready_all_datasets()
        await cluster.settle()
    status = cluster.objects["modelsyncs"][key]["status"]
    assert status["observedSyncRound"] == 2 and status["phase"] == "READY"
    assert status["datasetRound"] == 2
