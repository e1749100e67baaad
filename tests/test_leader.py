"""Leader election (`controllers.leader`): the pure rule, with properties, and two electors on a
Lease kept in memory with the API server's optimistic concurrency."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import pytest
from hypothesis import given
from hypothesis import strategies as st

from modelfs.controllers.leader import (
    Decision,
    Elector,
    Fence,
    NotLeadingError,
    Record,
    Timings,
    decide,
    micro_time,
    next_record,
    released,
)
from modelfs.operator import Operator
from modelfs.pkg.kube import ConflictError
from tests.memcluster import MemCluster

ME, OTHER = "pod-a_1", "pod-b_2"
DEFAULT = Timings()


@st.composite
def timings(draw: st.DrawFn) -> Timings:
    retry = draw(st.floats(0.01, 5.0))
    renew = retry + draw(st.floats(0.01, 30.0))
    lease = renew + draw(st.floats(0.01, 30.0))
    return Timings(lease, renew, retry)


seconds = st.floats(0.0, 1e6, allow_nan=False)


def test_defaults_are_controller_runtime_s() -> None:
    assert (DEFAULT.lease_duration, DEFAULT.renew_deadline, DEFAULT.retry) == (15.0, 10.0, 2.0)


@pytest.mark.parametrize(("lease", "renew", "retry"), [(10, 10, 2), (15, 10, 10), (15, 10, 0)])
def test_timings_that_could_let_two_lead_are_refused(
    lease: float, renew: float, retry: float
) -> None:
    with pytest.raises(ValueError, match="retry period < renew deadline < lease duration"):
        Timings(lease, renew, retry)


def test_nobody_holds_it_so_take_it() -> None:
    assert decide(None, 0, 0, ME, DEFAULT) is Decision.ACQUIRE
    assert decide(Record("", 1), 0, 0, ME, DEFAULT) is Decision.ACQUIRE  # released


@given(timings(), seconds, st.floats(0, 1e4), st.integers(1, 3600))
def test_a_standby_waits_for_the_lease_to_expire(
    t: Timings, seen: float, after: float, lease_seconds: int
) -> None:
    record = Record(OTHER, lease_seconds)
    found = decide(record, seen, seen + after, ME, t)
    assert found is (Decision.WAIT if after < lease_seconds else Decision.ACQUIRE)


@given(timings(), seconds, st.floats(0, 1e4))
def test_a_leader_renews_until_its_deadline_then_has_lost(
    t: Timings, renewed: float, after: float
) -> None:
    record = Record(ME, 15)
    found = decide(record, renewed, renewed + after, ME, t, renewed_at=renewed)
    assert found is (Decision.RENEW if after < t.renew_deadline else Decision.LOST)


@given(timings(), seconds, st.floats(0, 100))
def test_a_leader_whose_lease_was_taken_or_deleted_has_lost(
    t: Timings, renewed: float, after: float
) -> None:
    now = renewed + after
    assert decide(Record(OTHER, 15), now, now, ME, t, renewed_at=renewed) is Decision.LOST
    assert decide(None, now, now, ME, t, renewed_at=renewed) is Decision.LOST


@given(timings(), seconds, st.floats(0, 1e3), st.floats(0, 1e3))
def test_never_two_leaders(t: Timings, sent: float, seen_after: float, later: float) -> None:
    """The leader sends a renew at `sent`; the standby sees it change at `sent + seen_after`
    (never before it was sent); at any later instant, at most one of them may write."""
    record = next_record(Record(ME, 0), Decision.RENEW, ME, t, micro_time())
    seen = sent + seen_after
    now = seen + later
    leader = decide(record, sent, now, ME, t, renewed_at=sent)
    standby = decide(record, seen, now, OTHER, t)
    assert not (leader is Decision.RENEW and standby is Decision.ACQUIRE)


def test_the_record_written() -> None:
    first = next_record(None, Decision.ACQUIRE, ME, DEFAULT, "t0")
    assert first == Record(ME, 15, "t0", "t0", 0)
    renewed = next_record(first, Decision.RENEW, ME, DEFAULT, "t1")
    assert renewed == Record(ME, 15, "t0", "t1", 0)  # acquire time and count kept
    taken = next_record(renewed, Decision.ACQUIRE, OTHER, DEFAULT, "t2")
    assert taken == Record(OTHER, 15, "t2", "t2", 1)
    gone = released(taken)
    assert (gone.holder, gone.lease_seconds, gone.transitions) == ("", 1, 1)
    assert Record.of({"spec": gone.spec()}) == gone
    assert next_record(gone, Decision.ACQUIRE, ME, DEFAULT, "t3").transitions == 2


def test_lease_seconds_round_up() -> None:
    """A Lease holds whole seconds: rounding down could let a standby in before the leader's
    renew deadline."""
    t = Timings(1.4, 1.3, 0.5)
    assert next_record(None, Decision.ACQUIRE, ME, t, "t").lease_seconds == 2


# ----------------------------------------------------------------------------- two electors


@dataclass
class MemoryLease:
    """The Lease as the API server keeps it: a write must carry the version it read."""

    record: Record | None = None
    version: int = 0
    changed: asyncio.Event = field(default_factory=asyncio.Event)


class MemoryClient:
    def __init__(self, lease: MemoryLease, name: str = "modelfs-operator") -> None:
        self.lease, self.name, self.namespace = lease, name, "modelfs-system"
        self.cut = False
        """A partition: every request hangs until its timeout."""

    async def _reach(self) -> None:
        await asyncio.sleep(0.001)
        if self.cut:
            await asyncio.sleep(3600)

    async def get(self, timeout: float) -> tuple[Record | None, str]:  # noqa: ASYNC109
        await self._reach()
        return self.lease.record, str(self.lease.version) if self.lease.record else ""

    async def write(self, record: Record, version: str, timeout: float) -> str:  # noqa: ASYNC109
        await self._reach()
        current = str(self.lease.version) if self.lease.record else ""
        if version != current:
            raise ConflictError(409, "409: the object has been modified")
        self.lease.record = record
        self.lease.version += 1
        self.lease.changed.set()
        self.lease.changed = asyncio.Event()
        return str(self.lease.version)

    async def changes(self, version: str, timeout: float) -> tuple[str, str]:  # noqa: ASYNC109
        await self._reach()
        if version != str(self.lease.version):
            return "MODIFIED", str(self.lease.version)
        await self.lease.changed.wait()
        return "MODIFIED", str(self.lease.version)


FAST = Timings(0.6, 0.4, 0.05)


class Replica:
    def __init__(self, name: str, lease: MemoryLease, log: list[tuple[float, str, str]]) -> None:
        self.client = MemoryClient(lease)
        self.name = name
        self.writes = 0

        async def started() -> None:
            log.append((time.monotonic(), name, "start"))

        async def stopped(reason: str) -> None:
            log.append((time.monotonic(), name, f"stop:{reason}"))

        self.elector = Elector(self.client, name, FAST, started, stopped)  # type: ignore[arg-type]
        self.task = asyncio.get_running_loop().create_task(self.elector.run())

    async def close(self, release: bool = True) -> None:
        self.task.cancel()
        await asyncio.gather(self.task, return_exceptions=True)
        if release:
            self.client.cut = False
            await self.elector.release()


async def wait_until(check: object, within: float = 3.0) -> float:
    started = time.monotonic()
    while not check():  # type: ignore[operator]
        assert time.monotonic() - started < within, "timed out"
        await asyncio.sleep(0.005)
    return time.monotonic() - started


async def test_one_leads_and_a_release_hands_over_at_once() -> None:
    lease, log = MemoryLease(), list[tuple[float, str, str]]()
    a = Replica("a", lease, log)
    await wait_until(a.elector.leading)
    b = Replica("b", lease, log)
    await asyncio.sleep(FAST.lease_duration * 2)  # renewed all along: b never takes it
    assert a.elector.leading() and not b.elector.leading()
    assert [what for _, _, what in log] == ["start"]
    await a.close()
    assert lease.record is not None and lease.record.holder == ""
    took = await wait_until(b.elector.leading)
    assert took < FAST.retry + 0.1  # the watch wakes b: no waiting for the Lease to expire
    assert lease.record.holder == "b" and lease.record.transitions == 1
    await b.close()


async def test_a_cut_off_leader_stops_before_the_other_starts() -> None:
    lease, log = MemoryLease(), list[tuple[float, str, str]]()
    a = Replica("a", lease, log)
    await wait_until(a.elector.leading)
    b = Replica("b", lease, log)
    await asyncio.sleep(0.2)
    a.client.cut = True
    await wait_until(b.elector.leading, within=FAST.lease_duration + FAST.retry + 0.5)
    (a_stop,) = [when for when, who, what in log if who == "a" and what.startswith("stop")]
    (b_start,) = [when for when, who, what in log if who == "b" and what == "start"]
    assert a_stop < b_start
    assert ("a", "stop:RenewDeadlineExceeded") in [(who, what) for _, who, what in log]
    await a.close(release=False)
    await b.close()


async def test_the_fence_refuses_writes_once_the_deadline_passed() -> None:
    class Writer:
        calls = 0

        async def patch_status(self, *args: object) -> dict[str, object]:
            Writer.calls += 1
            return {}

        async def secret_keys(self, namespace: str, name: str) -> frozenset[str]:
            return frozenset()

    now = [0.0]
    elector = Elector(
        MemoryClient(MemoryLease()),  # type: ignore[arg-type]
        ME,
        DEFAULT,
        lambda: asyncio.sleep(0),
        lambda reason: asyncio.sleep(0),
        clock=lambda: now[0],
    )
    fence = Fence(Writer(), elector.leading)
    with pytest.raises(NotLeadingError):
        await fence.patch_status("modelsyncs", "ns", "x", {})
    elector.renewed_at = 0.0
    await fence.patch_status("modelsyncs", "ns", "x", {})
    now[0] = DEFAULT.renew_deadline  # no renew since: nothing more is written
    with pytest.raises(NotLeadingError):
        await fence.patch_status("modelsyncs", "ns", "x", {})
    assert await fence.secret_keys("ns", "s") == frozenset()  # a read passes
    assert Writer.calls == 1


async def test_liveness_fails_only_a_wedged_replica_and_readiness_waits_for_the_indexes() -> None:
    """/healthz: a standby is alive; an election loop that made no attempt for two lease
    durations fails it (a replica still listing at start, before the loop runs, does not).
    /readyz: ready once the indexes are there (every kind listed), leader or not."""
    import kopf

    from modelfs.operator import Operator, liveness, readiness
    from tests.memcluster import MemCluster

    now = [0.0]
    elector = Elector(
        MemoryClient(MemoryLease()),  # type: ignore[arg-type]
        ME,
        DEFAULT,
        lambda: asyncio.sleep(0),
        lambda reason: asyncio.sleep(0),
        clock=lambda: now[0],
    )
    cluster = MemCluster()
    operator = Operator(cluster.runtime, cluster.reconciled, elected=True)
    memo = kopf.Memo(elector=elector, operator=operator)
    now[0] = 1000.0
    assert liveness(memo) == (200, {"election": True, "leader": False})  # not started yet
    assert readiness(memo) == (503, {"synced": False})
    operator.indexes.set_result(cluster.indexes)
    assert readiness(memo) == (200, {"synced": True})  # a synced standby is ready
    task = asyncio.get_running_loop().create_task(elector.run())
    await asyncio.sleep(0.05)
    assert not elector.wedged()
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)
    now[0] += 2 * DEFAULT.lease_duration + DEFAULT.retry + 1
    assert liveness(memo)[0] == 500
    assert liveness(kopf.Memo()) == (200, {"election": False})


async def test_a_candidate_that_cannot_reach_the_lease_says_so_once(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """RBAC missing or no such namespace: one warning per distinct error, not one per retry."""
    from modelfs.pkg.kube import ApiError

    class Forbidden(MemoryClient):
        async def get(self, timeout: float) -> tuple[Record | None, str]:  # noqa: ASYNC109
            raise ApiError(403, '403: leases "modelfs-operator" is forbidden')

        async def changes(self, version: str, timeout: float) -> tuple[str, str]:  # noqa: ASYNC109
            await asyncio.sleep(3600)
            return "", version

    elector = Elector(
        Forbidden(MemoryLease()),  # type: ignore[arg-type]
        ME,
        FAST,
        lambda: asyncio.sleep(0),
        lambda reason: asyncio.sleep(0),
    )
    task = asyncio.get_running_loop().create_task(elector.run())
    await asyncio.sleep(FAST.retry * 6)
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)
    said = [r for r in caplog.records if r.getMessage() == "Lease not acquired"]
    assert len(said) == 1 and "forbidden" in str(said[0].__dict__["error"])
    assert not elector.leading()


# ----------------------------------------------------------------------------- the operator


@contextlib.asynccontextmanager
async def elected(cluster: MemCluster) -> AsyncIterator[Operator]:
    """An operator with election on over the in-memory cluster, running (as a standby until
    `lead`), stopped on exit."""
    operator = Operator(cluster.runtime, cluster.reconciled, elected=True)
    operator.indexes.set_result(cluster.indexes)
    cluster.operator = operator
    main = asyncio.get_running_loop().create_task(operator.start())
    try:
        yield operator
    finally:
        main.cancel()
        await asyncio.gather(main, return_exceptions=True)
        await operator.stop()


async def test_a_standby_writes_nothing_a_winner_serves_every_key_a_loser_abandons_writes() -> None:
    """On the in-memory cluster: an elected operator that does not lead writes nothing, watch
    events included; on winning it reconciles every key of its indexes (no listing); on losing,
    a write in flight is abandoned: it never reaches the API."""
    from tests.memcluster import obj
    from tests.test_reconcile_core import NS, phase, shared_model_cluster

    cluster = shared_model_cluster(versions=3, references=1)
    async with elected(cluster) as operator:
        await asyncio.sleep(0.2)
        cluster.put(obj("ModelSync", NS, "late", {"modelRef": "mdl", "version": "v0"}))
        await asyncio.sleep(0.3)
        assert cluster.writes == [] and cluster.events == []
        assert not any(queue.busy() for queue in operator.queues.values())

        await operator.lead()
        await cluster.settle()
        assert all(phase(cluster, "modelsyncs", (NS, f"sync-{i}")) for i in range(3))
        assert phase(cluster, "modelsyncs", (NS, "late"))

        release = asyncio.Event()
        sent = asyncio.Event()
        originals = {name: getattr(cluster, name) for name in ("patch_status", "apply_dataset")}

        def stuck(name: str) -> object:
            async def write(*args: object) -> object:
                sent.set()
                await release.wait()
                return await originals[name](*args)

            return write

        for name in originals:
            setattr(cluster, name, stuck(name))
        before = len(cluster.writes)
        cluster.put(obj("ModelSync", NS, "stuck", {"modelRef": "mdl", "version": "v1"}))
        await asyncio.wait_for(sent.wait(), 5)
        await operator.stop_leading("RenewDeadlineExceeded")
        release.set()
        await asyncio.sleep(0.2)
        assert len(cluster.writes) == before
        assert not operator.leading


def test_the_cli_refuses_timings_that_could_let_two_lead(
    capsys: pytest.CaptureFixture[str],
) -> None:
    from modelfs.cli import main

    argv = ["run", "-A", "--leader-elect", "--leader-elect-renew-deadline=20"]
    assert main(argv) == 2
    assert "renew deadline < lease duration" in capsys.readouterr().err


async def test_a_catalog_answer_wakes_the_queue_of_the_replica_that_won() -> None:
    """`lead` makes fresh queues: a catalog answer reaches the ModelSync on the one that runs
    (not the one made at start-up), so a winner's downloads start when the answer comes, not
    at the reconcile's backstop requeue (13 s later)."""
    from modelfs.controllers.catalog import Catalog
    from modelfs.pkg.catalog.types import CatalogEntry
    from tests.memcluster import obj
    from tests.test_catalog_step import Recorded, no_secret
    from tests.test_reconcile_core import NS, shared_model_cluster

    cluster = shared_model_cluster(versions=3, references=0)
    del cluster.objects["modelsyncs"][(NS, "sync-2")]
    lookup = Recorded(CatalogEntry(revision=None, files=1, bytes=10, fingerprint="f"))
    cluster.runtime.catalog = Catalog(lookup=lookup, read_secret=no_secret)
    async with elected(cluster) as operator:
        await asyncio.sleep(0.1)
        await operator.lead()
        cluster.put(obj("ModelSync", NS, "late", {"modelRef": "mdl", "version": "v2"}))
        started = time.monotonic()
        while len(cluster.objects["datasets"]) < 3 and time.monotonic() - started < 5:  # noqa: ASYNC110
            await asyncio.sleep(0.02)
        assert lookup.calls, "the catalog was never asked"
        assert len(cluster.objects["datasets"]) == 3, "the answer woke no queue that runs"
