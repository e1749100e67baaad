"""Two operator processes, one writer (issue 21): leader election on the real API server, with the
real BaizeAI/dataset controller (loader Pods simulated by podsim).

Each replica is `modelfs run --leader-elect` under the installed ServiceAccount (so the
leader election Role of config/rbac is what it runs with), on a Lease of its own per test.
Who wrote what is read from the API server's audit log: each replica's requests carry its holder
identity in their User-Agent. Short Lease timings keep the tests quick where the point is not
the defaults (`FAST`); the rolling upgrade runs with the defaults. Figures are printed (`-s`).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
import time
import urllib.request
from collections import Counter
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import yaml
from kubernetes.aio.client import ApiClient, CoordinationV1Api
from kubernetes.aio.client.exceptions import ApiException

from e2e.operator.conftest import modelfs_crds, operator_identity  # noqa: F401 (fixtures)
from e2e.operator.kube import Kube
from e2e.test_faults import Rollout, fault_engine  # noqa: F401 (fixture)
from modelfs.testing.controlplane import ControlPlane
from modelfs.testing.operator import OperatorProcess, problem_lines
from modelfs.testing.pytest_plugin import Cluster

pytestmark = pytest.mark.e2e

LEASE_NAMESPACE = "modelfs-system"
FAST = (3.0, 2.0, 0.5)
"""Lease duration, renew deadline, retry period (seconds) where the defaults are not the point."""
DEFAULTS = (15.0, 10.0, 2.0)
WRITES = frozenset({"create", "update", "patch", "delete", "deletecollection"})
IDENTITY = re.compile(r'"Started modelfs operator".* identity="([^"]+)"')
STAMP = re.compile(r"^[IWE](\d{4} \d\d:\d\d:\d\d\.\d{3}) ")


# --------------------------------------------------------------------------- replicas


@dataclass
class Replicas:
    """Operator processes on one Lease, and a watch on who holds it."""

    kubeconfig: Path
    lease: str
    logs: Path
    timings: tuple[float, float, float] = FAST
    started: list[OperatorProcess] = field(default_factory=list)
    holders: list[tuple[float, str]] = field(default_factory=list)
    """(monotonic time, holder) each time the Lease was seen to change hands."""

    def start(self, name: str, kubeconfig: Path | None = None) -> OperatorProcess:
        lease, renew, retry = self.timings
        process = OperatorProcess(
            kubeconfig or self.kubeconfig,
            log_path=self.logs / f"{name}.log",
            extra_args=[
                "--leader-elect",
                f"--leader-election-namespace={LEASE_NAMESPACE}",
                f"--leader-election-id={self.lease}",
                f"--leader-elect-lease-duration={lease}",
                f"--leader-elect-renew-deadline={renew}",
                f"--leader-elect-retry-period={retry}",
            ],
            die_with_parent=True,
        )
        process.start()
        self.started.append(process)
        return process

    async def start_async(self, name: str, kubeconfig: Path | None = None) -> OperatorProcess:
        return await asyncio.to_thread(self.start, name, kubeconfig)

    def stop_all(self) -> None:
        for process in self.started:
            process.stop()

    async def holder(self, api: ApiClient) -> str:
        try:
            lease = await CoordinationV1Api(api).read_namespaced_lease(self.lease, LEASE_NAMESPACE)
        except ApiException as error:
            if error.status == 404:
                return ""
            raise
        return str(lease.spec.holder_identity or "") if lease.spec else ""

    async def watch_holder(self, api: ApiClient) -> None:
        """Poll the Lease every 50 ms (until cancelled), recording each change of holder."""
        while True:
            with contextlib.suppress(ApiException, OSError, TimeoutError):
                found = await self.holder(api)
                if not self.holders or self.holders[-1][1] != found:
                    self.holders.append((time.monotonic(), found))
            await asyncio.sleep(0.05)

    async def leader(self, api: ApiClient, within: float = 30.0) -> OperatorProcess:
        """The replica that holds the Lease, once one does."""
        deadline = time.monotonic() + within
        while time.monotonic() < deadline:
            found = await self.holder(api)
            for process in self.started:
                if found and process.alive() and identity(process) == found:
                    return process
            await asyncio.sleep(0.1)
        pytest.fail(f"no replica holds Lease {self.lease} within {within}s")

    def held_by(self, holder: str, after: float) -> float | None:
        """When the Lease was first seen held by `holder` after `after`."""
        for when, found in self.holders:
            if when >= after and found == holder:
                return when
        return None

    def leaderless(self, start: float, end: float) -> float:
        """The longest time between `start` and `end` in which no LIVE replica held the Lease:
        a holder counts as gone from the moment it was signalled (`gone`)."""
        events = sorted(
            [(when, "holder", who) for when, who in self.holders]
            + [(when, "gone", who) for who, when in self.gone.items()]
        )
        holder, gone, longest, since = "", set(), 0.0, None
        for when, what, who in [*events, (end, "end", "")]:
            if when > end:
                break
            if what == "holder":
                holder = who
            elif what == "gone":
                gone.add(who)
            at = max(when, start)
            live = bool(holder) and holder not in gone
            if not live and since is None:
                since = at
            elif (live or what == "end") and since is not None:
                longest, since = max(longest, at - since), None
        return longest

    gone: dict[str, float] = field(default_factory=dict)


def identity(process: OperatorProcess) -> str:
    found = IDENTITY.search(process.log_text())
    assert found, f"no identity in {process.log_path}"
    return found.group(1)


def log_time(process: OperatorProcess, message: str) -> float:
    """Seconds of the day of the first log line with `message`."""
    for line in process.log_text().splitlines():
        stamp = STAMP.match(line)
        if stamp and f'"{message}"' in line:
            hms = stamp.group(1).split(" ", 1)[1]
            hours, minutes, seconds = hms.split(":")
            return int(hours) * 3600 + int(minutes) * 60 + float(seconds)
    raise AssertionError(f"no {message!r} in {process.log_path}")


def writes_by(control_plane: ControlPlane, who: str) -> Counter[str]:
    """The writes (not the Lease's) the audit log shows from the replica `who`, by resource."""
    found: Counter[str] = Counter()
    for event in control_plane.audit_events():
        if (
            event.get("stage") == "ResponseComplete"
            and who in str(event.get("userAgent") or "")
            and event.get("verb") in WRITES
        ):
            resource = (event.get("objectRef") or {}).get("resource", "")
            if resource != "leases":
                found[resource] += 1
    return found


def operator_writes(control_plane: ControlPlane, user: str, since: str) -> Counter[str]:
    """Every write by the operator's ServiceAccount after `since` (RFC 3339), by user agent."""
    found: Counter[str] = Counter()
    for event in control_plane.audit_events():
        if (
            event.get("stage") == "ResponseComplete"
            and event.get("user", {}).get("username") == user
            and event.get("verb") in WRITES
            and str(event.get("requestReceivedTimestamp") or "") >= since
            and (event.get("objectRef") or {}).get("resource") != "leases"
        ):
            found[str(event.get("userAgent") or "")] += 1
    return found


def health(process: OperatorProcess, path: str) -> dict[str, Any]:
    """/healthz (liveness) or /readyz (readiness) of a replica: 200, and what it says."""
    url = f"http://127.0.0.1:{process.health_port}{path}"
    with urllib.request.urlopen(url, timeout=5) as response:
        assert response.status == 200
        found: dict[str, Any] = json.loads(response.read())
        return found


def no_problems(*processes: OperatorProcess) -> None:
    for process in processes:
        assert problem_lines(process.log_text()) == [], process.log_path


# --------------------------------------------------------------------------- fixtures


@pytest.fixture
def control_plane(k8s_cluster: Cluster) -> ControlPlane:
    if k8s_cluster.control_plane is None:
        pytest.skip("the audit log (who wrote what) needs the local control plane (--k8s=local)")
    return k8s_cluster.control_plane


@pytest.fixture
async def replicas(
    operator_identity: Path,  # noqa: F811
    fault_engine: object,  # noqa: F811
    k8s_api: ApiClient,
    tmp_path: Path,
    request: pytest.FixtureRequest,
) -> AsyncIterator[Replicas]:
    lease = "leader-" + re.sub(r"[^a-z0-9]+", "-", request.node.name.lower())[:40].strip("-")
    found = Replicas(operator_identity, lease, tmp_path)
    watch = asyncio.get_running_loop().create_task(found.watch_holder(k8s_api))
    try:
        yield found
    finally:
        watch.cancel()
        await asyncio.to_thread(found.stop_all)
        for process in found.started:
            print(f"{process.log_path}:\n{process.log_tail(8)}")


# --------------------------------------------------------------------------- scenarios


async def test_only_the_leader_writes_and_a_sigkilled_leader_is_replaced(
    replicas: Replicas, control_plane: ControlPlane, k8s_api: ApiClient, k8s_namespace: str
) -> None:
    """A burst of 200 ModelSyncs on two replicas: the standby writes nothing while the leader
    lives (all 200 created, half of them READY); the leader SIGKILLed then, the standby takes
    over within lease duration + retry period, and every ModelSync reaches READY with one
    Dataset and one loader round each (no round started twice, none lost)."""
    a = await replicas.start_async("a")
    leader = await replicas.leader(k8s_api)
    b = await replicas.start_async("b")
    standby = b if leader is a else a
    kube = Kube(k8s_api, k8s_namespace)
    rollout = await Rollout.prepare(
        kube, {"hf": 50, "http": 50, "git": 20, "ms": 20, "pvc": 60}, round_duration="2s"
    )
    started = time.monotonic()
    creating = asyncio.get_running_loop().create_task(rollout.create_syncs())
    await creating
    # the middle of the burst: half of the ModelSyncs READY, the rest being served
    while sum(map(rollout.settled, (await rollout.statuses()).values())) < 100:
        assert time.monotonic() - started < 120, "the burst is not being served"
        await asyncio.sleep(0.2)
    leader_id, standby_id = identity(leader), identity(standby)
    standby_before = writes_by(control_plane, standby_id)
    leader_before = writes_by(control_plane, leader_id)
    await asyncio.to_thread(leader.kill)
    killed = time.monotonic()
    replicas.gone[leader_id] = killed
    settled = await rollout.wait_settled(within=240)
    took_over = replicas.held_by(standby_id, killed)
    counts = await rollout.check_stays()
    lease, _, retry = replicas.timings
    print(
        f"\n200 ModelSyncs: leader SIGKILLed after {killed - started:.1f}s, half READY "
        f"({sum(leader_before.values())} writes by it, {sum(standby_before.values())} by the "
        f"standby); standby took over {(took_over or 0) - killed:.2f}s after the kill; "
        f"all READY {settled:.1f}s later; counts {dict(counts)}"
    )
    assert sum(standby_before.values()) == 0, standby_before
    assert leader_before["modelsyncs"] > 0, leader_before
    assert took_over is not None and took_over - killed <= lease + retry + 0.5
    assert counts["modelsyncs"] == counts["ready"] == counts["datasets"] == 200
    assert counts["jobs"] == 140  # one round per loading ModelSync: none twice, none lost
    assert writes_by(control_plane, standby_id)["modelsyncs"] > 0  # the new leader served
    no_problems(standby)


async def test_sigterm_hands_over_within_two_seconds(
    replicas: Replicas, control_plane: ControlPlane, k8s_api: ApiClient, k8s_namespace: str
) -> None:
    """The leader stopped (SIGTERM) releases the Lease: the standby leads in at most 2 s, and
    serves a ModelSync created right after."""
    replicas.timings = DEFAULTS  # a release makes the handover fast, not short timings
    await replicas.start_async("a")
    leader = await replicas.leader(k8s_api)
    await replicas.start_async("b")
    (standby,) = [p for p in replicas.started if p is not leader]
    await asyncio.sleep(3)  # the standby synced and watching
    kube = Kube(k8s_api, k8s_namespace)
    rollout = await Rollout.prepare(kube, {"pvc": 3}, round_duration="1s")
    leader_id, standby_id = identity(leader), identity(standby)
    # a synced standby is alive and ready
    assert await asyncio.to_thread(health, standby, "/healthz") == {
        "election": True,
        "leader": False,
    }
    assert await asyncio.to_thread(health, standby, "/readyz") == {"synced": True}
    signalled = time.monotonic()
    replicas.gone[leader_id] = signalled
    stopping = asyncio.get_running_loop().create_task(asyncio.to_thread(leader.stop))
    while replicas.held_by(standby_id, signalled) is None:
        assert time.monotonic() - signalled < 20, "the standby did not take over"
        await asyncio.sleep(0.02)
    took_over = (replicas.held_by(standby_id, signalled) or 0) - signalled
    metrics = await asyncio.to_thread(standby.metrics)
    assert "\nmodelfs_leader 1.0" in metrics
    assert 'modelfs_leader_transitions_total{to="leader"} 1.0' in metrics
    await rollout.create_syncs()
    settled = await rollout.wait_settled(within=60)
    await stopping
    print(f"\nSIGTERM: the standby led {took_over:.2f}s after; 3 ModelSyncs READY {settled:.1f}s")
    assert took_over <= 2.0
    assert 'reason="Released"' in leader.log_text()
    assert writes_by(control_plane, standby_id)["modelsyncs"] >= 3
    no_problems(leader, standby)


class Proxy:
    """A TCP proxy to the API server; `cut()` closes it and every connection through it, as a
    network partition of the replica behind it would."""

    def __init__(self, host: str, port: int) -> None:
        self.target = (host, port)
        self.server: asyncio.Server | None = None
        self.writers: set[asyncio.StreamWriter] = set()

    async def start(self) -> int:
        self.server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        return int(self.server.sockets[0].getsockname()[1])

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            up_reader, up_writer = await asyncio.open_connection(*self.target)
        except OSError:
            writer.close()
            return
        self.writers |= {writer, up_writer}

        async def pipe(src: asyncio.StreamReader, dst: asyncio.StreamWriter) -> None:
            with contextlib.suppress(OSError, asyncio.CancelledError):
                while data := await src.read(65536):
                    dst.write(data)
                    await dst.drain()
            dst.close()

        await asyncio.gather(pipe(reader, up_writer), pipe(up_reader, writer))
        self.writers -= {writer, up_writer}

    def cut(self) -> None:
        assert self.server is not None
        self.server.close()
        for writer in self.writers:
            writer.transport.abort()
        self.writers.clear()


def through(kubeconfig: Path, port: int, out: Path) -> Path:
    """A copy of `kubeconfig` whose server is the proxy on 127.0.0.1:`port` (the API server's
    certificate names 127.0.0.1: the local control plane's does)."""
    config = yaml.safe_load(kubeconfig.read_text())
    cluster = config["clusters"][0]["cluster"]
    scheme = cluster["server"].split("://", 1)[0]
    cluster["server"] = f"{scheme}://127.0.0.1:{port}"
    out.write_text(yaml.safe_dump(config))
    return out


async def test_a_leader_cut_off_from_the_api_server_stops_before_the_other_starts(
    replicas: Replicas,
    operator_identity: Path,  # noqa: F811
    k8s_api: ApiClient,
    k8s_namespace: str,
    tmp_path: Path,
) -> None:
    """The leader reaches the API server through a proxy, which the test stops: the leader
    stops leading (its renew deadline) before its Lease could expire for the other replica,
    which then leads and serves new ModelSyncs."""
    config = yaml.safe_load(await asyncio.to_thread(operator_identity.read_text))
    server = config["clusters"][0]["cluster"]["server"]
    host, _, port = server.split("://", 1)[1].rstrip("/").partition(":")
    if host not in ("127.0.0.1", "localhost"):
        pytest.skip(f"the proxy needs the API server on this host, not {host} (--k8s=local)")
    proxy = Proxy(host, int(port or 443))
    proxied = through(operator_identity, await proxy.start(), tmp_path / "proxied")
    a = await replicas.start_async("a", proxied)
    await replicas.leader(k8s_api)
    assert identity(a) == await replicas.holder(k8s_api), "the proxied replica leads"
    b = await replicas.start_async("b")
    await asyncio.sleep(2)
    proxy.cut()
    cut = time.monotonic()
    b_id = identity(b)
    while replicas.held_by(b_id, cut) is None:
        assert time.monotonic() - cut < 30, "the other replica did not take over"
        await asyncio.sleep(0.05)
    took_over = (replicas.held_by(b_id, cut) or 0) - cut
    # Both logs are on this machine's clock: the cut-off leader stopped first.
    stopped, became = log_time(a, "Stopped leading"), log_time(b, "Became leader")
    renew = replicas.timings[1]
    print(
        f"\npartition: the leader stopped leading {stopped - became:+.2f}s from the other's "
        f"start; the other led {took_over:.2f}s after the cut"
    )
    assert stopped < became
    assert 'reason="RenewDeadlineExceeded"' in a.log_text()
    assert took_over >= renew  # not before the cut-off leader's deadline
    rollout = await Rollout.prepare(Kube(k8s_api, k8s_namespace), {"pvc": 3}, round_duration="1s")
    await rollout.create_syncs()
    await rollout.wait_settled(within=60)
    no_problems(b)


async def test_a_rolling_upgrade_never_leaves_the_cluster_without_a_leader(
    replicas: Replicas, control_plane: ControlPlane, k8s_api: ApiClient, k8s_namespace: str
) -> None:
    """Two replicas (the old version), ModelSyncs being created: start a new replica, SIGTERM
    the old leader, start a second new one, SIGTERM the old standby, as a Deployment's
    RollingUpdate (maxSurge 1, maxUnavailable 0) does. Never more than 5 s without a live
    leader, every ModelSync READY with one round each. Default Lease timings."""
    replicas.timings = DEFAULTS
    old_a = await replicas.start_async("old-a")
    await replicas.leader(k8s_api)
    old_b = await replicas.start_async("old-b")
    kube = Kube(k8s_api, k8s_namespace)
    rollout = await Rollout.prepare(kube, {"hf": 20, "http": 20, "pvc": 20}, round_duration="2s")
    begun = time.monotonic()
    creating = asyncio.get_running_loop().create_task(rollout.create_syncs())

    async def replace(old: OperatorProcess, name: str) -> None:
        await replicas.start_async(name)  # ready (its /healthz answers) before the old goes
        replicas.gone[identity(old)] = time.monotonic()
        await asyncio.to_thread(old.stop)

    first, second = (old_a, old_b) if await replicas.leader(k8s_api) is old_a else (old_b, old_a)
    await replace(first, "new-a")
    await replace(second, "new-b")
    await creating
    settled = await rollout.wait_settled(within=180)
    counts = await rollout.check_stays()
    gap = replicas.leaderless(begun, time.monotonic())
    print(
        f"\nrolling upgrade: longest time without a live leader {gap:.2f}s; holders "
        f"{[h[-12:] for _, h in replicas.holders]}; all READY {settled:.1f}s; {dict(counts)}"
    )
    assert gap <= 5.0
    assert counts["modelsyncs"] == counts["ready"] == counts["datasets"] == 60
    assert counts["jobs"] == 40  # no duplicate round
    no_problems(*replicas.started)
