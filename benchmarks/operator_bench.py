"""The operator's figures on a local control plane: CPU and API writes per ModelSync, latency,
throughput against the API server's own floor, memory, restart and idle cost, each printed next
to its target (issue 11, item 5).

    python -m benchmarks.operator_bench [--syncs 100] [--rate 10] [--scale-syncs 1000]
        [--rss-max 5000] [--idle 60] [--no-restart] [--profile FILE] [--json out.json] [--keep]

It starts its own ControlPlane (etcd, kube-apiserver with a Metadata audit log,
kube-controller-manager), installs the CRDs, starts the fake Dataset controller with instant
timings (the fake, not the real controller: a thousand loader Jobs and their Pods would measure
the Job controller and the pod simulator, not the operator; e2e/test_conformance.py shows the
fake behaves as the real one does), and runs `modelfs run` as its own ServiceAccount (the
generated ClusterRole of config/rbac/role.yaml when it exists, else cluster-admin). The fake
watches only the namespaces it is told to (see below). Then, each phase in its own namespace:

1. steady: `--syncs` ModelSyncs created at `--rate` per second; for each, the time from the
   client sending its create to the client seeing (by watch) its Dataset ADDED and its
   status.phase READY. API writes and CPU of the operator over the phase, per ModelSync.
2. burst: the same, all created at once (at most `--concurrency` creates in flight).
3. floor: `--scale-syncs` Datasets created directly by the client, at the same concurrency, in a
   namespace that neither the operator (no owner) nor the fake acts on: the API server's time.
4. scale: `--scale-syncs` ModelSyncs created at once. The fake does not watch their namespace
   until every Dataset exists, so the time to the last Dataset is the operator's and the API
   server's alone (the ratio to the floor); then the fake takes them to READY. The operator's
   RSS with them READY.
5. restart: the operator is stopped and started again with those READY ModelSyncs: its writes,
   its CPU until it is idle, and the time a ModelSync created as soon as it is healthy waits for
   its Dataset.
6. idle: the operator's writes and reads over `--idle` seconds (one ModelSource has a Secret, so
   the periodic Secret re-check is seen and told apart).
7. rss: ModelSyncs added `--rss-step` at a time up to `--rss-max` (in namespaces the fake does
   not watch: their Datasets get no status), the operator's RSS after each step: the slope.

`--profile FILE` runs the operator under cProfile (benchmarks/profiled.py), on only for the
scale phase, and prints the top functions. Everything it started (operator, fake, control
plane) is stopped on exit, Ctrl-C or error.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import functools
import json
import math
import os
import pstats
import shutil
import signal
import statistics
import sys
import tempfile
import time
from collections import Counter, deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, NamedTuple

import yaml

from modelfs.testing.controlplane import ControlPlane, ControlPlaneError, find_binaries
from modelfs.testing.fake_dataset.logic import Timings
from modelfs.testing.fake_dataset.process import FakeDatasetController
from modelfs.testing.operator import OperatorProcess
from modelfs.testing.pytest_plugin import DATASET_CRD, install_crds, new_api_client

REPO = Path(__file__).resolve().parents[1]
SYSTEM_NAMESPACE = "modelfs-system"
SERVICE_ACCOUNT = "modelfs-operator"
OPERATOR_USER = f"system:serviceaccount:{SYSTEM_NAMESPACE}:{SERVICE_ACCOUNT}"
BINDING = "modelfs-operator-bench"
GROUP, VERSION = "model.samzong.dev", "v1"
DATASET_GROUP, DATASET_VERSION, DATASETS = "dataset.baizeai.io", "v1alpha1", "datasets"
WRITE_VERBS = frozenset({"create", "update", "patch", "delete", "deletecollection"})
READ_VERBS = frozenset({"get", "list"})
MAX_VERSIONS = 64  # Model.spec.versionConfigs maxProperties
MIB = 2**20

STEADY_NS, BURST_NS, FLOOR_NS, SCALE_NS = (
    "bench-steady",
    "bench-burst",
    "bench-floor",
    "bench-scale",
)
RESTART_NS = "bench-restart"
SECRET_SOURCE, SECRET_NAME = "src-with-secret", "src-credentials"

FAKE_TIMINGS = {
    "instant": Timings(round_duration=0.0),
    "test": Timings(),  # the fake's defaults: rounds of 0.3 s
}

#: Issue 11's targets.
TARGET_CPU_MS = 10.0
TARGET_WRITES = 5.0
TARGET_STEADY_MEDIAN_MS = 50.0
TARGET_STEADY_P99_MS = 250.0
TARGET_FLOOR_RATIO = 4.0
TARGET_RSS_MIB = 150.0
TARGET_RESTART_CPU_S = 5.0
TARGET_RESTART_NEW_SYNC_MS = 2000.0


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", flush=True)


# --------------------------------------------------------------------------- audit log


class AuditEntry(NamedTuple):
    received: datetime
    stage: str
    user: str
    verb: str
    resource: str
    namespace: str
    name: str
    code: int
    uri: str


class AuditLog:
    """Reads the apiserver's audit log incrementally (it grows to hundreds of MB)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.offset = 0
        self.entries: list[AuditEntry] = []
        self.last_operator_write: datetime | None = None

    def poll(self) -> list[AuditEntry]:
        with contextlib.suppress(FileNotFoundError), self.path.open("rb") as stream:
            stream.seek(self.offset)
            data = stream.read()
            end = data.rfind(b"\n") + 1  # a line being written stays for the next poll
            self.offset += end
            for line in data[:end].splitlines():
                if line.strip():
                    entry = self._entry(json.loads(line))
                    self.entries.append(entry)
                    if entry.user == OPERATOR_USER and entry.verb in WRITE_VERBS:
                        self.last_operator_write = entry.received
        return self.entries

    @staticmethod
    def _entry(event: dict[str, Any]) -> AuditEntry:
        ref = event.get("objectRef") or {}
        resource = ref.get("resource", "")
        if ref.get("subresource"):
            resource += "/" + ref["subresource"]
        return AuditEntry(
            received=datetime.fromisoformat(event["requestReceivedTimestamp"]),
            stage=event.get("stage", ""),
            user=(event.get("user") or {}).get("username", ""),
            verb=event.get("verb", ""),
            resource=resource or event.get("requestURI", ""),
            namespace=ref.get("namespace", ""),
            name=ref.get("name", ""),
            code=int((event.get("responseStatus") or {}).get("code") or 0),
            uri=event.get("requestURI", ""),
        )

    def by(self, user: str, start: datetime, end: datetime) -> list[AuditEntry]:
        """Finished requests of `user` received in [start, end]."""
        return [
            e
            for e in self.poll()
            if e.user == user and e.stage == "ResponseComplete" and start <= e.received <= end
        ]

    def last_write(self, user: str) -> datetime | None:
        if user == OPERATOR_USER:
            self.poll()
            return self.last_operator_write
        for entry in reversed(self.poll()):
            if entry.user == user and entry.verb in WRITE_VERBS:
                return entry.received
        return None

    async def quiet(self, user: str, *, seconds: float = 2.0, within: float = 20.0) -> bool:
        """Wait until `user` has written nothing for `seconds`; False after `within`."""
        deadline = time.monotonic() + within
        while time.monotonic() < deadline:
            last = self.last_write(user)
            if last is None or datetime.now(UTC) - last >= timedelta(seconds=seconds):
                return True
            await asyncio.sleep(0.2)
        return False


def write_figures(entries: Iterable[AuditEntry], count: int) -> dict[str, Any]:
    writes = [e for e in entries if e.verb in WRITE_VERBS]
    by_kind = Counter(f"{e.resource} {e.verb}" for e in writes)
    failed = Counter(f"{e.resource} {e.verb} {e.code}" for e in writes if e.code >= 400)
    return {
        "total": len(writes),
        "per_sync": round(len(writes) / count, 2) if count else None,
        "by_resource_verb_per_sync": {
            key: round(n / count, 2) for key, n in sorted(by_kind.items(), key=lambda kv: -kv[1])
        },
        "failed": dict(failed),
    }


# --------------------------------------------------------------------------- watching


@dataclass
class Tracker:
    """What the client saw of one phase's ModelSyncs and Datasets, in time.monotonic()."""

    expected: int
    created: dict[str, float] = field(default_factory=dict)
    dataset_added: dict[str, float] = field(default_factory=dict)
    ready: dict[str, float] = field(default_factory=dict)
    ready_wall: dict[str, datetime] = field(default_factory=dict)
    phases: dict[str, list[str]] = field(default_factory=dict)
    all_ready: asyncio.Event = field(default_factory=asyncio.Event)
    all_datasets: asyncio.Event = field(default_factory=asyncio.Event)
    by_owner: bool = True
    """Datasets count by their owning ModelSync; False: by their own name (the floor's)."""

    def on_sync(self, kind: str, body: dict[str, Any], now: float) -> None:
        name = body["metadata"]["name"]
        phase = (body.get("status") or {}).get("phase")
        seen = self.phases.setdefault(name, [])
        if phase and (not seen or seen[-1] != phase):
            seen.append(phase)
        if phase == "READY" and name not in self.ready:
            self.ready[name] = now
            self.ready_wall[name] = datetime.now(UTC)
            if len(self.ready) >= self.expected:
                self.all_ready.set()

    def on_dataset(self, kind: str, body: dict[str, Any], now: float) -> None:
        if kind != "ADDED":
            return
        if self.by_owner:
            owners = body["metadata"].get("ownerReferences") or []
            name = next((o["name"] for o in owners if o.get("kind") == "ModelSync"), None)
        else:
            name = body["metadata"]["name"]
        if name is not None and name not in self.dataset_added:
            self.dataset_added[name] = now
            if len(self.dataset_added) >= self.expected:
                self.all_datasets.set()

    def latencies(self, seen: dict[str, float]) -> list[float]:
        return sorted(seen[n] - t for n, t in self.created.items() if n in seen)


async def watch(
    api: Any,
    group: str,
    version: str,
    namespace: str,
    plural: str,
    handle: Callable[[str, dict[str, Any], float], None],
    started: asyncio.Event,
) -> None:
    """Watch from the current resourceVersion (nothing is missed) until cancelled."""
    from kubernetes.aio import client, watch

    custom = client.CustomObjectsApi(api)
    listed: Any = await custom.list_namespaced_custom_object(group, version, namespace, plural)
    stream = watch.Watch()  # type: ignore[no-untyped-call]
    events = stream.stream(  # type: ignore[no-untyped-call]
        custom.list_namespaced_custom_object,
        group,
        version,
        namespace,
        plural,
        resource_version=listed["metadata"]["resourceVersion"],
        _request_timeout=3600,
    )
    try:
        started.set()
        async for event in events:
            handle(event["type"], event["raw_object"], time.monotonic())
    finally:
        await stream.close()  # type: ignore[no-untyped-call]


def percentile(values: list[float], pct: float) -> float | None:
    """Nearest rank: the smallest value with at least pct% of the values at or below it."""
    if not values:
        return None
    ordered = sorted(values)
    return ordered[max(math.ceil(pct / 100 * len(ordered)) - 1, 0)]


def summary(values: list[float]) -> dict[str, Any]:
    if not values:
        return {"n": 0}
    return {
        "n": len(values),
        "median_ms": round(statistics.median(values) * 1000, 1),
        "p99_ms": round((percentile(values, 99) or 0) * 1000, 1),
        "max_ms": round(max(values) * 1000, 1),
    }


async def until(event: asyncio.Event, deadline: float) -> bool:
    """Wait for `event` until the monotonic `deadline`; False if it did not come."""
    try:
        await asyncio.wait_for(event.wait(), max(deadline - time.monotonic(), 0.01))
    except TimeoutError:
        return False
    return True


# --------------------------------------------------------------------------- the machine


def cpu_seconds(pid: int | None) -> float:
    """User + system CPU time of a process so far (Linux), 0.0 when unknown."""
    if pid is None:
        return 0.0
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def load_average() -> float:
    return round(os.getloadavg()[0], 2)


class MachineLoad:
    """How much CPU the rest of the machine uses: all CPU time (/proc/stat) minus that of this
    process and everything it started (control plane, operator, fake), in cores."""

    def __init__(self) -> None:
        self.hz = os.sysconf("SC_CLK_TCK")

    @staticmethod
    def _busy() -> int:
        fields = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
        idle = fields[3] + (fields[4] if len(fields) > 4 else 0)
        return sum(fields[:8]) - idle

    @staticmethod
    def _ours() -> int:
        me = os.getpid()
        stats: dict[int, list[str]] = {}
        for entry in Path("/proc").iterdir():
            if entry.name.isdigit():
                with contextlib.suppress(OSError, IndexError):
                    stats[int(entry.name)] = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        children: dict[int, list[int]] = {}
        for pid, fields in stats.items():
            children.setdefault(int(fields[1]), []).append(pid)
        total, todo = 0, [me]
        while todo:
            pid = todo.pop()
            found = stats.get(pid)
            if found is not None:  # utime, stime, and the reaped children's cutime, cstime
                total += sum(int(x) for x in found[11:15])
            todo.extend(children.get(pid, []))
        return total

    def snapshot(self) -> tuple[float, int, int]:
        return (time.monotonic(), self._busy(), self._ours())

    def others_cores(self, before: tuple[float, int, int]) -> float:
        """CPU cores used on average by processes that are not ours since `before`."""
        now, busy, ours = self.snapshot()
        elapsed = now - before[0]
        if elapsed <= 0:
            return 0.0
        return round(max((busy - before[1]) - (ours - before[2]), 0) / self.hz / elapsed, 2)


# --------------------------------------------------------------------------- processes


class ProfiledOperator(OperatorProcess):
    """`modelfs run` under benchmarks/profiled.py: cProfile, on between SIGUSR1 and SIGUSR2."""

    def __init__(self, *args: Any, profile_out: Path, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.profile_out = profile_out

    def argv(self) -> list[str]:
        argv = super().argv()
        assert argv[1:3] == ["-m", "modelfs"], argv
        wrapper = Path(__file__).with_name("profiled.py")
        return [argv[0], str(wrapper), str(self.profile_out), *argv[3:]]


@dataclass
class Processes:
    """The operator and the fake that run now (both are replaced during a run)."""

    operator: OperatorProcess
    fake: FakeDatasetController
    fake_namespaces: list[str]
    retired_cpu: dict[str, float] = field(default_factory=lambda: {"operator": 0.0, "fake": 0.0})
    """CPU seconds of the operators and fakes that were stopped."""

    def stop(self) -> None:
        self.operator.stop()
        self.fake.stop()


def pid_of(process: OperatorProcess | FakeDatasetController) -> int | None:
    return process.process.pid if process.process is not None else None


# --------------------------------------------------------------------------- the bench


class Bench:
    def __init__(
        self,
        args: argparse.Namespace,
        cp: ControlPlane,
        procs: Processes,
        operator_kubeconfig: Path,
        logs: Path,
    ):
        self.args = args
        self.cp = cp
        self.procs = procs
        self.operator_kubeconfig = operator_kubeconfig
        self.logs = logs
        self.audit = AuditLog(cp.audit_log)
        self.machine = MachineLoad()
        self.api: Any = None
        self.watch_api: Any = None
        self.syncs_alive = 0
        """ModelSyncs in the cluster now (for the RSS slope)."""
        self.profile: dict[str, Any] | None = None

    async def __aenter__(self) -> Bench:
        self.api = await new_api_client(self.cp.kubeconfig)
        self.watch_api = await new_api_client(self.cp.kubeconfig)
        return self

    async def __aexit__(self, *exc: object) -> None:
        for api in (self.api, self.watch_api):
            if api is not None:
                await api.close()

    @property
    def custom(self) -> Any:
        from kubernetes.aio import client

        return client.CustomObjectsApi(self.api)

    async def create(self, namespace: str, plural: str, name: str, spec: dict[str, Any]) -> None:
        kind = {"modelsources": "ModelSource", "models": "Model", "modelsyncs": "ModelSync"}
        body = {
            "apiVersion": f"{GROUP}/{VERSION}",
            "kind": kind[plural],
            "metadata": {"name": name},
            "spec": spec,
        }
        await self.custom.create_namespaced_custom_object(GROUP, VERSION, namespace, plural, body)

    async def create_namespace(self, namespace: str) -> None:
        from kubernetes.aio import client

        await client.CoreV1Api(self.api).create_namespace(
            client.V1Namespace(metadata=client.V1ObjectMeta(name=namespace))
        )

    async def prepare(
        self, namespace: str, syncs: int, *, secret_source: bool = False
    ) -> list[tuple[str, str, str]]:
        """A namespace, one HTTP ModelSource, and Models with enough versions for `syncs`
        ModelSyncs; waits until the operator has written their statuses. With
        `secret_source`, also a second ModelSource with a Secret (which the operator re-checks
        now and then). Returns the (sync name, model, version) triples."""
        from kubernetes.aio import client

        per_model = self.args.versions_per_model
        await self.create_namespace(namespace)
        await self.create(namespace, "modelsources", "src", {"type": "HTTP"})
        if secret_source:
            await client.CoreV1Api(self.api).create_namespaced_secret(
                namespace,
                client.V1Secret(
                    metadata=client.V1ObjectMeta(name=SECRET_NAME),
                    string_data={"username": "bench", "password": "bench", "token": "bench"},
                ),
            )
            await self.create(
                namespace, "modelsources", SECRET_SOURCE, {"type": "HTTP", "secretRef": SECRET_NAME}
            )
        triples = [(f"sync-{i}", f"m{i // per_model}", f"v{i % per_model}") for i in range(syncs)]
        models = sorted({m for _, m, _ in triples}, key=lambda m: int(m[1:]))
        for model in models:
            versions = {
                v: {"repo": f"https://files.example.com/{model}/{v}/"}
                for _, m, v in triples
                if m == model
            }
            await self.create(
                namespace, "models", model, {"sourceRef": "src", "versionConfigs": versions}
            )
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            listed = await self.custom.list_namespaced_custom_object(
                GROUP, VERSION, namespace, "models"
            )
            if all(item.get("status") for item in listed["items"]):
                break
            await asyncio.sleep(0.2)
        else:
            raise RuntimeError(f"the operator wrote no status on the Models of {namespace}")
        await self.audit.quiet(OPERATOR_USER, seconds=1.0)
        return triples

    async def run_syncs(
        self,
        namespace: str,
        triples: list[tuple[str, str, str]],
        rate: float | None,
        *,
        fake_after_datasets: bool = False,
        until_ready: bool = True,
    ) -> dict[str, Any]:
        """Create the ModelSyncs (at `rate` per second, or all at once with a cap on requests
        in flight) and wait until every one is READY (or, without `until_ready`, has its
        Dataset); figures of the phase. `fake_after_datasets`: the fake starts watching the
        namespace only once every Dataset exists."""
        tracker = Tracker(expected=len(triples))
        started = [asyncio.Event(), asyncio.Event()]
        watches = [
            asyncio.create_task(
                watch(
                    self.watch_api,
                    GROUP,
                    VERSION,
                    namespace,
                    "modelsyncs",
                    tracker.on_sync,
                    started[0],
                )
            ),
            asyncio.create_task(
                watch(
                    self.watch_api,
                    DATASET_GROUP,
                    DATASET_VERSION,
                    namespace,
                    DATASETS,
                    tracker.on_dataset,
                    started[1],
                )
            ),
        ]
        in_flight = asyncio.Semaphore(self.args.concurrency)
        creates: list[asyncio.Task[None]] = []

        async def create(name: str, model: str, version: str) -> None:
            async with in_flight:
                tracker.created[name] = time.monotonic()
                await self.create(
                    namespace, "modelsyncs", name, {"modelRef": model, "version": version}
                )

        try:
            await asyncio.wait_for(asyncio.gather(*(s.wait() for s in started)), 60)
            await asyncio.sleep(0.5)  # let the watch requests reach the server
            cpu = self.cpu()
            yields = self.status_yields()
            load_before = load_average()
            machine = self.machine.snapshot()
            window_start = datetime.now(UTC)
            first = time.monotonic()
            for i, (name, model, version) in enumerate(triples):
                if rate:
                    await asyncio.sleep(max(first + i / rate - time.monotonic(), 0))
                creates.append(asyncio.create_task(create(name, model, version)))
            await asyncio.gather(*creates)
            self.syncs_alive += len(triples)
            created_in = time.monotonic() - first
            deadline = first + self.args.converge_timeout
            datasets_ok = await until(tracker.all_datasets, deadline)
            if not datasets_ok:
                log(f"  not every Dataset after {self.args.converge_timeout:.0f}s")
            all_datasets = max(tracker.dataset_added.values(), default=first) - first
            if fake_after_datasets:
                await self.fake_watch(namespace)
            converged = datasets_ok
            if until_ready:
                converged = await until(tracker.all_ready, deadline)
                if not converged:
                    log(
                        f"  not all READY after {self.args.converge_timeout:.0f}s: "
                        f"{len(tracker.ready)}/{len(triples)}"
                    )
                last = max(tracker.ready.values(), default=first)
            else:
                last = first + all_datasets
            last_wall = datetime.now(UTC) - timedelta(seconds=time.monotonic() - last)
            quiet = await self.audit.quiet(OPERATOR_USER, seconds=2.0, within=30.0)
            window_end = datetime.now(UTC)
            cpu = {k: v - cpu[k] for k, v in self.cpu().items()}
            yields = self.status_yields() - yields
            others = self.machine.others_cores(machine)
        finally:
            for task in [*watches, *creates]:
                task.cancel()
            await asyncio.gather(*watches, *creates, return_exceptions=True)
        entries = self.audit.by(OPERATOR_USER, window_start, window_end)
        n = len(triples)
        breakdown = self.breakdown(namespace, triples, tracker) if until_ready else {}
        events = await self.event_reasons(namespace)
        trailing = [e for e in entries if e.verb in WRITE_VERBS and e.received > last_wall]
        sequences = Counter(">".join(p) for p in tracker.phases.values())
        return {
            "syncs": n,
            "created_in_s": round(created_in, 2),
            "converged": converged,
            "datasets": len(tracker.dataset_added),
            "all_datasets_s": round(all_datasets, 2),
            "ready": len(tracker.ready),
            "converge_s": round(last - first, 2),
            "dataset_latency": summary(tracker.latencies(tracker.dataset_added)),
            "ready_latency": summary(tracker.latencies(tracker.ready)),
            "phase_sequences": dict(sequences.most_common(5)),
            "server_side_breakdown": breakdown,
            "cpu_ms_per_sync": {k: round(v * 1000 / n, 1) for k, v in cpu.items()},
            "cpu_s": {k: round(v, 2) for k, v in cpu.items()},
            "load_average_1m": [load_before, load_average()],
            "others_cpu_cores": others,
            "events_per_sync": {k: round(v / n, 2) for k, v in events.most_common()},
            "writes": write_figures(entries, n),
            "writes_after_last_ready": len(trailing),
            "status_yields_per_sync": round(yields / n, 2),
            "quiet_after": quiet,
            "window_s": round((window_end - window_start).total_seconds(), 1),
        }

    def breakdown(
        self, namespace: str, triples: list[tuple[str, str, str]], tracker: Tracker
    ) -> dict[str, Any]:
        """Where the time to READY goes, from the audit log (server receive times): the
        operator applying the Dataset, the fake Dataset controller reaching READY (its last
        status write before the operator's READY patch), the operator mirroring it, and the
        watch bringing it to the client."""
        entries = [e for e in self.audit.poll() if e.namespace == namespace]
        entries = [e for e in entries if e.stage == "ResponseComplete" and e.code < 400]
        created: dict[str, datetime] = {}
        applied: dict[str, datetime] = {}
        sync_status: dict[str, list[datetime]] = {}
        dataset_status: dict[str, list[datetime]] = {}
        for e in entries:
            if e.resource == "modelsyncs" and e.verb == "create":
                created.setdefault(e.name, e.received)
            elif e.user == OPERATOR_USER and e.resource == DATASETS and e.verb in WRITE_VERBS:
                applied.setdefault(e.name, e.received)
            elif e.user == OPERATOR_USER and e.resource == "modelsyncs/status":
                sync_status.setdefault(e.name, []).append(e.received)
            elif e.user != OPERATOR_USER and e.resource == f"{DATASETS}/status":
                dataset_status.setdefault(e.name, []).append(e.received)
        spans: dict[str, list[float]] = {
            "create -> Dataset applied (operator)": [],
            "Dataset applied -> its last status write (fake)": [],
            "fake's last status -> ModelSync READY patch (operator)": [],
            "READY patch -> client sees READY (watch)": [],
        }
        for sync, model, version in triples:
            dataset = f"{model}-{version}".replace(".", "-")
            seen = tracker.ready_wall.get(sync)
            if sync not in created or dataset not in applied or seen is None:
                continue
            patches = [t for t in sync_status.get(sync, []) if t <= seen]
            if not patches:
                continue
            ready_patch = max(patches)
            writes = [t for t in dataset_status.get(dataset, []) if t <= ready_patch]
            if not writes:
                continue
            fake_done = max(writes)
            for key, (a, b) in zip(
                spans,
                [
                    (created[sync], applied[dataset]),
                    (applied[dataset], fake_done),
                    (fake_done, ready_patch),
                    (ready_patch, seen),
                ],
                strict=True,
            ):
                spans[key].append((b - a).total_seconds())
        return {
            key: {
                "median_ms": round(statistics.median(v) * 1000, 1),
                "p99_ms": round((percentile(v, 99) or 0) * 1000, 1),
            }
            for key, v in spans.items()
            if v
        }

    async def event_reasons(self, namespace: str) -> Counter[str]:
        """Events in the namespace by reporting component and reason."""
        from kubernetes.aio import client

        listed = await client.CoreV1Api(self.api).list_namespaced_event(namespace)
        reasons: Counter[str] = Counter()
        for event in listed.items:
            component = event.reporting_component or (
                event.source.component if event.source else ""
            )
            kind = getattr(event.involved_object, "kind", None) or ""
            reasons[f"{component or '?'} {kind} {event.reason}"] += event.count or 1
        return reasons

    async def delete_namespaces(self, names: list[str], within: float = 120.0) -> bool:
        from kubernetes.aio import client
        from kubernetes.aio.client.exceptions import ApiException

        core = client.CoreV1Api(self.api)
        for name in names:
            with contextlib.suppress(ApiException):
                await core.delete_namespace(name)
        deadline = time.monotonic() + within
        while time.monotonic() < deadline:
            left = [n for n in names if n in await self._namespaces()]
            if not left:
                return True
            await asyncio.sleep(0.5)
        return False

    async def _namespaces(self) -> set[str]:
        from kubernetes.aio import client

        listed = await client.CoreV1Api(self.api).list_namespace()
        return {str(item.metadata.name) for item in listed.items if item.metadata}

    # -- processes

    def cpu(self) -> dict[str, float]:
        """CPU seconds so far of the operators and of the fake Dataset controllers (the ones
        stopped during the run included)."""
        return {
            "operator": self.procs.retired_cpu["operator"]
            + cpu_seconds(pid_of(self.procs.operator)),
            "fake": self.procs.retired_cpu["fake"] + cpu_seconds(pid_of(self.procs.fake)),
        }

    def status_yields(self) -> float:
        """Status writes the operator put off behind a backlog so far (its metric)."""
        total = 0.0
        for line in self.procs.operator.metrics().splitlines():
            if line.startswith("modelfs_status_yields_total{"):
                total += float(line.rsplit(" ", 1)[1])
        return total

    def rss(self) -> dict[str, int]:
        """VmRSS and VmHWM (peak) of the operator process, in bytes."""
        operator = self.procs.operator
        out = {"rss": operator.rss_bytes(), "peak": 0}
        if operator.process is not None:
            with contextlib.suppress(OSError):
                status = Path(f"/proc/{operator.process.pid}/status").read_text()
                for line in status.splitlines():
                    if line.startswith("VmHWM:"):
                        out["peak"] = int(line.split()[1]) * 1024
        return out

    async def fake_watch(self, namespace: str) -> None:
        """Restart the fake Dataset controller so that it also watches `namespace`."""
        procs = self.procs
        procs.fake_namespaces.append(namespace)
        procs.retired_cpu["fake"] += cpu_seconds(pid_of(procs.fake))
        await asyncio.to_thread(procs.fake.stop)
        procs.fake = FakeDatasetController(
            self.cp.kubeconfig,
            namespaces=procs.fake_namespaces,
            timings=FAKE_TIMINGS[self.args.fake_timings],
            log_path=self.logs / f"fake-dataset-{len(procs.fake_namespaces)}.log",
        )
        await asyncio.to_thread(procs.fake.start)

    async def settle(
        self,
        operator: OperatorProcess,
        *,
        started: float,
        quiet: float = 3.0,
        within: float = 120.0,
        also: Callable[[], bool] = lambda: True,
    ) -> dict[str, Any]:
        """Wait until `operator` is idle: under 1% of a core over `quiet` seconds, no write for
        as long, and `also()`. Returns its CPU time at the start of that quiet stretch and when
        that was (seconds since the monotonic `started`)."""
        pid = pid_of(operator)
        samples: deque[tuple[float, float]] = deque()
        threshold = max(0.01 * quiet, 2 / os.sysconf("SC_CLK_TCK"))
        while True:
            now, cpu = time.monotonic(), cpu_seconds(pid)
            samples.append((now, cpu))
            while len(samples) > 1 and samples[1][0] <= now - quiet:
                samples.popleft()
            then, cpu_then = samples[0]
            last_write = self.audit.last_write(OPERATOR_USER)
            writes_quiet = last_write is None or datetime.now(UTC) - last_write >= timedelta(
                seconds=quiet
            )
            if now - then >= quiet and cpu - cpu_then <= threshold and writes_quiet and also():
                return {"idle": True, "after_s": round(then - started, 2), "cpu_s": cpu_then}
            if now - started > within:
                return {"idle": False, "after_s": round(now - started, 2), "cpu_s": cpu}
            await asyncio.sleep(0.25)

    # -- the phases beyond steady and burst

    async def floor(self, count: int) -> dict[str, Any]:
        """The API server's own time to create `count` Datasets at the same concurrency as the
        ModelSyncs are created, seen the same way (first create sent -> last ADDED by watch),
        in a namespace nothing acts on (no owner: the operator ignores them; the fake does not
        watch it). The namespace is deleted afterwards."""
        await self.create_namespace(FLOOR_NS)
        tracker = Tracker(expected=count, by_owner=False)
        started = asyncio.Event()
        watcher = asyncio.create_task(
            watch(
                self.watch_api,
                DATASET_GROUP,
                DATASET_VERSION,
                FLOOR_NS,
                DATASETS,
                tracker.on_dataset,
                started,
            )
        )
        in_flight = asyncio.Semaphore(self.args.concurrency)
        per_model = self.args.versions_per_model

        async def create(i: int) -> None:
            model, version = f"m{i // per_model}", f"v{i % per_model}"
            body = {
                "apiVersion": f"{DATASET_GROUP}/{DATASET_VERSION}",
                "kind": "Dataset",
                "metadata": {
                    "name": f"{model}-{version}",
                    "labels": {"app.kubernetes.io/part-of": "modelfs-bench"},
                },
                "spec": {
                    "source": {
                        "type": "HTTP",
                        "uri": f"https://files.example.com/{model}/{version}/",
                    }
                },
            }
            async with in_flight:
                tracker.created[body["metadata"]["name"]] = time.monotonic()  # type: ignore[index]
                await self.custom.create_namespaced_custom_object(
                    DATASET_GROUP, DATASET_VERSION, FLOOR_NS, DATASETS, body
                )

        try:
            await asyncio.wait_for(started.wait(), 60)
            await asyncio.sleep(0.5)
            machine = self.machine.snapshot()
            first = time.monotonic()
            await asyncio.gather(*(create(i) for i in range(count)))
            created_in = time.monotonic() - first
            seen = await until(tracker.all_datasets, first + self.args.converge_timeout)
            others = self.machine.others_cores(machine)
        finally:
            watcher.cancel()
            await asyncio.gather(watcher, return_exceptions=True)
        last = max(tracker.dataset_added.values(), default=first)
        gone = await self.delete_namespaces([FLOOR_NS])
        await self.audit.quiet(OPERATOR_USER, seconds=2.0, within=30.0)
        return {
            "datasets": count,
            "seen": seen,
            "created_in_s": round(created_in, 2),
            "all_datasets_s": round(last - first, 2),
            "others_cpu_cores": others,
            "deleted": gone,
        }

    async def restart(self) -> dict[str, Any]:
        """Stop the operator, start a new one, and measure it until it is idle; a ModelSync
        is created (in its own namespace) as soon as the new one is healthy."""
        triples = await self.prepare(RESTART_NS, 1)
        await self.audit.quiet(OPERATOR_USER, seconds=2.0, within=30.0)
        tracker = Tracker(expected=1)
        started = asyncio.Event()
        watcher = asyncio.create_task(
            watch(
                self.watch_api,
                DATASET_GROUP,
                DATASET_VERSION,
                RESTART_NS,
                DATASETS,
                tracker.on_dataset,
                started,
            )
        )
        try:
            await asyncio.wait_for(started.wait(), 60)
            await asyncio.sleep(0.5)
            procs = self.procs
            ready_before = self.syncs_alive
            procs.retired_cpu["operator"] += cpu_seconds(pid_of(procs.operator))
            await asyncio.to_thread(procs.operator.stop)
            machine = self.machine.snapshot()
            window_start = datetime.now(UTC)
            t0 = time.monotonic()
            profile = self.args.profile if self.args.profile_phase == "restart" else None
            log_path = self.logs / "operator-restarted.log"
            if profile is not None:
                profile.unlink(missing_ok=True)
                procs.operator = ProfiledOperator(
                    self.operator_kubeconfig, log_path=log_path, profile_out=profile
                )
            else:
                procs.operator = OperatorProcess(self.operator_kubeconfig, log_path=log_path)
            await asyncio.to_thread(procs.operator.start)
            if profile is not None:  # from healthy on: start-up and imports are not profiled
                self.profile_signal(signal.SIGUSR1)
            healthy = time.monotonic() - t0
            cpu_healthy = cpu_seconds(pid_of(procs.operator))
            name, model, version = triples[0]
            tracker.created[name] = time.monotonic()
            await self.create(
                RESTART_NS, "modelsyncs", name, {"modelRef": model, "version": version}
            )
            self.syncs_alive += 1
            created_at = tracker.created[name] - t0
            settled = await self.settle(
                procs.operator,
                started=t0,
                within=self.args.converge_timeout,
                also=tracker.all_datasets.is_set,
            )
            window_end = datetime.now(UTC)
            others = self.machine.others_cores(machine)
            if profile is not None:
                self.profile = await self.profiled(profile)
        finally:
            watcher.cancel()
            await asyncio.gather(watcher, return_exceptions=True)
        entries = self.audit.by(OPERATOR_USER, window_start, window_end)
        writes = [e for e in entries if e.verb in WRITE_VERBS]
        old = [e for e in writes if e.namespace != RESTART_NS]
        latency = tracker.latencies(tracker.dataset_added)
        return {
            "syncs_before": ready_before,
            "healthy_after_s": round(healthy, 2),
            "cpu_at_healthy_s": round(cpu_healthy, 2),
            "new_sync_created_after_s": round(created_at, 2),
            "new_sync_dataset_ms": round(latency[0] * 1000, 1) if latency else None,
            "idle": settled["idle"],
            "idle_after_s": settled["after_s"],
            "cpu_until_idle_s": round(settled["cpu_s"], 2),
            "writes_to_existing": len(old),
            "writes_to_existing_by_resource_verb": dict(
                Counter(f"{e.resource} {e.verb}" for e in old)
            ),
            "write_requests": [f"{e.verb} {e.uri} {e.code}" for e in old[:20]],
            "writes_for_new_sync": len(writes) - len(old),
            "reads": dict(
                Counter(f"{e.resource} {e.verb}" for e in entries if e.verb in READ_VERBS)
            ),
            "others_cpu_cores": others,
        }

    async def idle(self, seconds: float) -> dict[str, Any]:
        machine = self.machine.snapshot()
        start = datetime.now(UTC)
        await asyncio.sleep(seconds)
        end = datetime.now(UTC)
        entries = self.audit.by(OPERATOR_USER, start, end)
        writes = [e for e in entries if e.verb in WRITE_VERBS]
        reads = [e for e in entries if e.verb in READ_VERBS]
        secret_reads = [e for e in reads if e.resource == "secrets" and e.verb == "get"]
        other_reads = [e for e in reads if e not in secret_reads]
        watches = [
            e
            for e in self.audit.poll()
            if e.user == OPERATOR_USER
            and e.verb == "watch"
            and e.stage == "ResponseStarted"
            and start <= e.received <= end
        ]
        return {
            "seconds": seconds,
            "writes": len(writes),
            "write_requests": [f"{e.verb} {e.uri} {e.code}" for e in writes[:20]],
            "reads": len(reads),
            "reads_per_s": round(len(reads) / seconds, 2),
            "secret_rechecks": len(secret_reads),
            "reads_beyond_secret_rechecks": len(other_reads),
            "other_read_requests": [f"{e.verb} {e.uri} {e.code}" for e in other_reads[:20]],
            "reads_by_resource_verb": dict(Counter(f"{e.resource} {e.verb}" for e in reads)),
            "watches_opened": len(watches),
            "others_cpu_cores": self.machine.others_cores(machine),
        }

    async def rss_slope(self) -> dict[str, Any]:
        """ModelSyncs added `--rss-step` at a time up to `--rss-max`, in namespaces the fake
        does not watch; the operator's RSS once it is idle after each step."""
        args = self.args
        points = [{"syncs": self.syncs_alive, **self.rss()}]
        steps = []
        step = 0
        while self.syncs_alive < args.rss_max:
            count = min(args.rss_step, args.rss_max - self.syncs_alive)
            namespace = f"bench-rss-{step}"
            log(f"rss: {count} more ModelSyncs at once ({self.syncs_alive} so far)")
            triples = await self.prepare(namespace, count)
            phase = await self.run_syncs(namespace, triples, None, until_ready=False)
            t0 = time.monotonic()
            settled = await self.settle(self.procs.operator, started=t0, within=60.0)
            points.append({"syncs": self.syncs_alive, **self.rss()})
            grew = (points[-1]["rss"] - points[-2]["rss"]) / max(count, 1)
            log(
                f"  every Dataset after {phase['all_datasets_s']}s; operator "
                f"{phase['cpu_ms_per_sync']['operator']} ms CPU and "
                f"{phase['writes']['per_sync']} writes per ModelSync; "
                f"RSS {mib(points[-1]['rss'])}"
            )
            steps.append(
                {
                    "namespace": namespace,
                    "syncs": count,
                    "all_datasets_s": phase["all_datasets_s"],
                    "cpu_ms_per_sync": phase["cpu_ms_per_sync"]["operator"],
                    "writes_per_sync": phase["writes"]["per_sync"],
                    "rss_bytes_per_sync": round(grew),
                    "idle": settled["idle"],
                    "others_cpu_cores": phase["others_cpu_cores"],
                }
            )
            step += 1
        return {"points": points, "steps": steps, **slope(points)}

    # -- profiling

    def profile_signal(self, signum: int) -> None:
        pid = pid_of(self.procs.operator)
        if pid is not None:
            os.kill(pid, signum)

    async def profiled(self, out: Path) -> dict[str, Any] | None:
        """Stop the profiler, wait for its file, and read the top functions."""
        self.profile_signal(signal.SIGUSR2)
        for _ in range(240):
            if await asyncio.to_thread(out.exists):
                return await asyncio.to_thread(top_functions, out, self.args.profile_top)
            await asyncio.sleep(0.5)
        log(f"  the profiler wrote no {out}")
        return None

    # -- the run

    async def run(self) -> dict[str, Any]:
        args = self.args
        results: dict[str, Any] = {
            "config": {
                "syncs": args.syncs,
                "rate_per_s": args.rate,
                "scale_syncs": args.scale_syncs,
                "rss_max": args.rss_max,
                "rss_step": args.rss_step,
                "versions_per_model": args.versions_per_model,
                "concurrency": args.concurrency,
                "fake_timings": args.fake_timings,
                "rbac": args.rbac_used,
                "idle_s": args.idle,
                "profile": str(args.profile) if args.profile else None,
                "profile_phase": args.profile_phase if args.profile else None,
                "operator_code": args.operator_code,
                "cpus": os.cpu_count(),
                "load_average_1m_at_start": load_average(),
            }
        }
        started = time.monotonic()
        machine = self.machine.snapshot()
        await asyncio.sleep(2)
        results["rss_baseline"] = self.rss()
        log(f"operator RSS with no objects: {mib(results['rss_baseline']['rss'])}")

        if args.syncs:
            log(f"steady: {args.syncs} ModelSyncs at {args.rate}/s")
            triples = await self.prepare(STEADY_NS, args.syncs)
            results["steady"] = await self.run_syncs(STEADY_NS, triples, args.rate)
            log(f"  {brief(results['steady'])}")
            if not args.no_burst:
                log(f"burst: {args.syncs} ModelSyncs at once")
                triples = await self.prepare(BURST_NS, args.syncs)
                results["burst"] = await self.run_syncs(BURST_NS, triples, None)
                log(f"  {brief(results['burst'])}")
            log("deleting the steady and burst namespaces")
            gone = await self.delete_namespaces([STEADY_NS, BURST_NS])
            if not gone:
                log("  namespaces still there after 120s; the next phases hold more objects")
            self.syncs_alive = 0
            await self.audit.quiet(OPERATOR_USER, seconds=2.0, within=30.0)

        if args.scale_syncs:
            n = args.scale_syncs
            triples = await self.prepare(SCALE_NS, n, secret_source=True)
            log(f"floor: {n} Datasets created directly, {args.concurrency} in flight")
            results["floor"] = await self.floor(n)
            log(f"  every Dataset after {results['floor']['all_datasets_s']}s")
            log(f"scale: {n} ModelSyncs at once (the fake joins once every Dataset exists)")
            profiling = args.profile is not None and args.profile_phase == "scale"
            if profiling:
                args.profile.unlink(missing_ok=True)
                self.profile_signal(signal.SIGUSR1)
            results["scale"] = await self.run_syncs(
                SCALE_NS, triples, None, fake_after_datasets=True
            )
            if profiling:
                results["profile"] = await self.profiled(args.profile)
            scale = results["scale"]
            log(
                f"  every Dataset after {scale['all_datasets_s']}s "
                f"({ratio(scale, results['floor'])}x the floor); {brief(scale)}"
            )
            await asyncio.sleep(2)
            results["rss_scale"] = self.rss()
            log(f"operator RSS with {n} READY: {mib(results['rss_scale']['rss'])}")
            if not args.no_restart:
                log(f"restart: the operator stopped and started again with {n} READY")
                results["restart"] = await self.restart()
                r = results["restart"]
                log(
                    f"  {r['writes_to_existing']} writes, {r['cpu_until_idle_s']}s CPU until "
                    f"idle after {r['idle_after_s']}s; the new ModelSync's Dataset after "
                    f"{r['new_sync_dataset_ms']} ms"
                )
                results["rss_after_restart"] = self.rss()
                if self.profile is not None:
                    results["profile"] = self.profile

        if args.idle:
            log(f"idle: watching the operator's requests for {args.idle:.0f}s")
            results["idle"] = await self.idle(args.idle)
            results["rss_after_idle"] = self.rss()

        if args.scale_syncs and args.rss_max > self.syncs_alive:
            results["rss_slope"] = await self.rss_slope()
        results["operator_alive"] = self.procs.operator.alive()
        results["duration_s"] = round(time.monotonic() - started, 1)
        results["others_cpu_cores"] = self.machine.others_cores(machine)
        results["targets"] = targets(results)
        return results


def slope(points: list[dict[str, int]]) -> dict[str, Any]:
    """Least-squares RSS bytes per ModelSync over the points."""
    if len(points) < 2:
        return {"bytes_per_sync": None}
    xs = [p["syncs"] for p in points]
    ys = [p["rss"] for p in points]
    mean_x, mean_y = statistics.fmean(xs), statistics.fmean(ys)
    var = sum((x - mean_x) ** 2 for x in xs)
    if var == 0:
        return {"bytes_per_sync": None}
    fit = sum((x - mean_x) * (y - mean_y) for x, y in zip(xs, ys, strict=True)) / var
    return {"bytes_per_sync": round(fit)}


def ratio(phase: dict[str, Any], floor: dict[str, Any]) -> float | None:
    if not floor.get("all_datasets_s") or not phase.get("datasets"):
        return None
    return round(float(phase["all_datasets_s"]) / float(floor["all_datasets_s"]), 1)


def brief(phase: dict[str, Any]) -> str:
    return (
        f"{phase['ready']}/{phase['syncs']} READY in {phase['converge_s']}s; "
        f"Dataset median {phase['dataset_latency'].get('median_ms')} ms, READY median "
        f"{phase['ready_latency'].get('median_ms')} ms; {phase['writes']['per_sync']} writes/sync, "
        f"{phase['cpu_ms_per_sync']['operator']} ms CPU/sync"
    )


def mib(value: int) -> str:
    return f"{value / MIB:.1f} MiB"


# --------------------------------------------------------------------------- profile


def _function_name(func: tuple[str, int, str]) -> str:
    file, line, name = func
    if file == "~":  # a built-in
        return name
    path = file
    for root in ("site-packages/", "lib/python3.", str(REPO) + "/"):
        if root in path:
            path = path.split(root, 1)[1]
            if root == "lib/python3.":
                path = path.split("/", 1)[-1]
            break
    return f"{path}:{line}({name})"


def _own_code(file: str) -> bool:
    if not file.startswith(str(REPO) + "/"):
        return False
    relative = file[len(str(REPO)) + 1 :]
    return relative.split("/", 1)[0] in {"api", "controllers", "pkg", "modelfs"} and not (
        relative.startswith("modelfs/testing/")
    )


#: The plumbing every call goes through (the event loop, the thread pool, the profiler's own
#: wrapper): left out of the cumulative list of all code, where it would only say "100%".
PLUMBING = (
    "/asyncio/",
    "/concurrent/futures/",
    "/threading.py",
    "/selectors.py",
    "/runpy.py",
    "benchmarks/profiled.py",
    "<method 'run' of '_contextvars.Context' objects>",
)


def top_functions(path: Path, count: int) -> dict[str, Any]:
    """The top functions of a pstats file: by self time (all code), by cumulative time (all
    code but the event loop and thread pool plumbing), and by cumulative time of modelfs's own
    code (api, controllers, pkg, modelfs), with their share of the total."""
    if path.stat().st_size == 0:
        return {"total_cpu_s": 0.0, "self": [], "cumulative_own": []}
    stats = pstats.Stats(str(path))
    raw: dict[tuple[str, int, str], tuple[int, int, float, float, Any]] = stats.stats  # type: ignore[attr-defined]
    total = sum(v[2] for v in raw.values()) or 1e-9

    def rows(items: list[Any], index: int) -> list[dict[str, Any]]:
        return [
            {
                "function": _function_name(func),
                "seconds": round(v[index], 3),
                "percent": round(100 * v[index] / total, 1),
                "calls": v[1],
            }
            for func, v in items
        ]

    def cumulative(items: Iterable[Any]) -> list[Any]:
        return sorted(items, key=lambda kv: kv[1][3], reverse=True)[:count]

    by_self = sorted(raw.items(), key=lambda kv: kv[1][2], reverse=True)[:count]
    return {
        "file": str(path),
        "total_cpu_s": round(total, 2),
        "self": rows(by_self, 2),
        "cumulative": rows(
            cumulative(
                kv
                for kv in raw.items()
                if not any(p in kv[0][0] or p in kv[0][2] for p in PLUMBING)
            ),
            3,
        ),
        "cumulative_own": rows(cumulative(kv for kv in raw.items() if _own_code(kv[0][0])), 3),
    }


# --------------------------------------------------------------------------- targets


def targets(results: dict[str, Any]) -> list[dict[str, Any]]:
    """Issue 11's figures, each with its target and whether it is met (None: no target, or
    not measured in this run)."""
    rows: list[dict[str, Any]] = []

    def add(figure: str, target: str, measured: str, ok: bool | None) -> None:
        rows.append({"figure": figure, "target": target, "measured": measured, "ok": ok})

    phases = [(k, results[k]) for k in ("steady", "burst", "scale") if k in results]
    if phases:
        cpu = [(k, p["cpu_ms_per_sync"]["operator"]) for k, p in phases]
        add(
            "operator CPU per ModelSync, creation -> READY",
            f"<= {TARGET_CPU_MS:g} ms",
            ", ".join(f"{k} {v} ms" for k, v in cpu),
            all(v <= TARGET_CPU_MS for _, v in cpu),
        )
        writes = [(k, p["writes"]["per_sync"]) for k, p in phases]
        add(
            "operator API writes per ModelSync, creation -> READY, events included",
            f"<= {TARGET_WRITES:g}",
            ", ".join(f"{k} {v}" for k, v in writes),
            all(v is not None and v <= TARGET_WRITES for _, v in writes),
        )
    if "steady" in results:
        latency = results["steady"]["dataset_latency"]
        rate = results["config"]["rate_per_s"]
        median, p99 = latency.get("median_ms"), latency.get("p99_ms")
        add(
            f"steady {rate:g}/s: create -> Dataset ADDED, median",
            f"<= {TARGET_STEADY_MEDIAN_MS:g} ms",
            f"{median} ms",
            median is not None and median <= TARGET_STEADY_MEDIAN_MS,
        )
        add(
            f"steady {rate:g}/s: create -> Dataset ADDED, p99",
            f"<= {TARGET_STEADY_P99_MS:g} ms",
            f"{p99} ms",
            p99 is not None and p99 <= TARGET_STEADY_P99_MS,
        )
    n = results["config"]["scale_syncs"]
    if "scale" in results and "floor" in results:
        scale, floor = results["scale"], results["floor"]
        found = ratio(scale, floor)
        add(
            f"{n} ModelSyncs at once: every Dataset, / the API floor",
            f"<= {TARGET_FLOOR_RATIO:g}x",
            f"{found}x ({scale['all_datasets_s']} s / {floor['all_datasets_s']} s)",
            found is not None
            and scale["datasets"] == scale["syncs"]
            and found <= TARGET_FLOOR_RATIO,
        )
    if "rss_scale" in results:
        rss = results["rss_scale"]["rss"] / MIB
        add(
            f"operator RSS at {n} ModelSyncs READY",
            f"<= {TARGET_RSS_MIB:g} MiB",
            f"{rss:.1f} MiB",
            rss <= TARGET_RSS_MIB,
        )
    if results.get("rss_slope", {}).get("bytes_per_sync") is not None:
        found = results["rss_slope"]
        last = found["points"][-1]
        add(
            f"operator RSS slope, {found['points'][0]['syncs']} -> {last['syncs']} ModelSyncs",
            "(measured)",
            f"{found['bytes_per_sync'] / 1024:.1f} KiB per ModelSync "
            f"({mib(last['rss'])} at {last['syncs']})",
            None,
        )
    if "restart" in results:
        r = results["restart"]
        add(
            f"restart with {r['syncs_before']} READY: writes to them",
            "0",
            str(r["writes_to_existing"]),
            r["writes_to_existing"] == 0,
        )
        add(
            "restart: operator CPU until idle (start-up included)",
            f"<= {TARGET_RESTART_CPU_S:g} s",
            f"{r['cpu_until_idle_s']} s" + ("" if r["idle"] else " (never idle)"),
            r["idle"] and r["cpu_until_idle_s"] <= TARGET_RESTART_CPU_S,
        )
        new = r["new_sync_dataset_ms"]
        add(
            "restart: a ModelSync created once it is healthy -> its Dataset",
            f"<= {TARGET_RESTART_NEW_SYNC_MS / 1000:g} s",
            "never" if new is None else f"{new / 1000:.2f} s",
            new is not None and new <= TARGET_RESTART_NEW_SYNC_MS,
        )
    if "idle" in results:
        idle = results["idle"]
        add(f"idle {idle['seconds']:g} s: writes", "0", str(idle["writes"]), idle["writes"] == 0)
        add(
            f"idle {idle['seconds']:g} s: reads beyond the Secret re-checks",
            "0",
            f"{idle['reads_beyond_secret_rechecks']} (Secret re-checks: {idle['secret_rechecks']})",
            idle["reads_beyond_secret_rechecks"] == 0,
        )
    return rows


# --------------------------------------------------------------------------- report


def report(results: dict[str, Any]) -> str:
    c = results["config"]
    lines = [
        "",
        "modelfs operator benchmark",
        f"  operator code: {c['operator_code']}",
        f"  fake Dataset timings: {c['fake_timings']}; operator RBAC: {c['rbac']}",
        f"  {c['cpus']} CPUs, 1-min load average at start {c['load_average_1m_at_start']}; "
        f"other processes used {results.get('others_cpu_cores')} cores on average during the "
        f"run ({results.get('duration_s')} s)",
        "",
    ]
    phases = [(k, results[k]) for k in ("steady", "burst", "scale") if k in results]
    if phases:
        header = f"  {'':58}" + "".join(f"{name:>16}" for name, _ in phases)
        lines.append(header)

        def row(label: str, value: Callable[[dict[str, Any]], Any]) -> None:
            cells = "".join(f"{_cell(value(p)):>16}" for _, p in phases)
            lines.append(f"  {label:58}{cells}")

        row("ModelSyncs", lambda p: p["syncs"])
        row("created in (s)", lambda p: p["created_in_s"])
        row("every Dataset after first create (s)", lambda p: p["all_datasets_s"])
        row("READY", lambda p: f"{p['ready']}/{p['syncs']}")
        row("all READY after first create (s)", lambda p: p["converge_s"])
        row("create -> Dataset ADDED median (ms)", lambda p: p["dataset_latency"].get("median_ms"))
        row("create -> Dataset ADDED p99 (ms)", lambda p: p["dataset_latency"].get("p99_ms"))
        row("create -> Dataset ADDED max (ms)", lambda p: p["dataset_latency"].get("max_ms"))
        row("create -> READY median (ms)", lambda p: p["ready_latency"].get("median_ms"))
        row("create -> READY p99 (ms)", lambda p: p["ready_latency"].get("p99_ms"))
        row("create -> READY max (ms)", lambda p: p["ready_latency"].get("max_ms"))
        row("operator writes per ModelSync", lambda p: p["writes"]["per_sync"])
        keys: list[str] = []
        for _, p in phases:
            for key in p["writes"]["by_resource_verb_per_sync"]:
                if key not in keys:
                    keys.append(key)
        for key in keys:
            row(f"  {key}", functools.partial(per_sync_writes, key))
        row("operator CPU per ModelSync (ms)", lambda p: p["cpu_ms_per_sync"]["operator"])
        row(
            "fake Dataset controller CPU per ModelSync (ms)", lambda p: p["cpu_ms_per_sync"]["fake"]
        )
        row("1-min load average, start / end", lambda p: "{} / {}".format(*p["load_average_1m"]))
        row("CPU cores used by other processes", lambda p: p["others_cpu_cores"])
        row("failed writes (>= 400)", lambda p: sum(p["writes"]["failed"].values()))
        row("writes after the last READY", lambda p: p["writes_after_last_ready"])
        row(
            "status writes put off behind a backlog, per ModelSync",
            lambda p: p.get("status_yields_per_sync"),
        )
        keys = []
        for _, p in phases:
            for key in p["server_side_breakdown"]:
                if key not in keys:
                    keys.append(key)
        if keys:
            lines.append("  where the time to READY goes, median ms (audit log receive times):")
            for key in keys:
                row(f"  {key}", functools.partial(breakdown_median, key))
        lines.append("")
        for name, p in phases:
            sequences = ", ".join(f"{s or '(none)'} x{n}" for s, n in p["phase_sequences"].items())
            lines.append(f"  {name} phase sequences seen: {sequences}")
            events = ", ".join(f"{k} {v}" for k, v in p["events_per_sync"].items())
            lines.append(f"  {name} Events per ModelSync: {events}")
            if p["writes"]["failed"]:
                lines.append(f"  {name} failed writes: {p['writes']['failed']}")
        lines.append("")
    if "floor" in results:
        f = results["floor"]
        lines.append(
            f"  API floor: {f['datasets']} Datasets created directly in {f['created_in_s']} s, "
            f"every one seen by watch after {f['all_datasets_s']} s "
            f"(other processes: {f['others_cpu_cores']} cores)"
        )
    lines.append(f"  {'operator RSS, no objects:':40}{mib(results['rss_baseline']['rss'])}")
    if "rss_scale" in results:
        label = f"operator RSS, {c['scale_syncs']} ModelSyncs READY:"
        lines.append(f"  {label:40}{mib(results['rss_scale']['rss'])}")
        lines.append(f"  {'operator peak RSS (VmHWM):':40}{mib(results['rss_scale']['peak'])}")
    if "restart" in results:
        r = results["restart"]
        lines.append(f"  restart with {r['syncs_before']} ModelSyncs READY:")
        lines.append(
            f"    healthy after {r['healthy_after_s']} s ({r['cpu_at_healthy_s']} s CPU), "
            f"idle after {r['idle_after_s']} s ({r['cpu_until_idle_s']} s CPU)"
            + ("" if r["idle"] else " -- NOT idle by then")
        )
        lines.append(
            f"    new ModelSync created {r['new_sync_created_after_s']} s after the start: "
            f"its Dataset after {r['new_sync_dataset_ms']} ms "
            f"({r['writes_for_new_sync']} writes for it)"
        )
        lines.append(
            f"    writes to the existing objects: {r['writes_to_existing']} "
            f"{r['writes_to_existing_by_resource_verb'] or ''}"
        )
        for request in r["write_requests"]:
            lines.append(f"      {request}")
        lines.append(f"    reads: {r['reads']}")
        if "rss_after_restart" in results:
            lines.append(f"    RSS after the restart: {mib(results['rss_after_restart']['rss'])}")
    if "idle" in results:
        idle = results["idle"]
        lines.append(f"  idle {idle['seconds']:.0f}s after convergence:")
        lines.append(f"    {'operator writes:':38}{idle['writes']}")
        lines.append(f"    {'operator reads (get/list) per s:':38}{idle['reads_per_s']}")
        lines.append(f"    {'  Secret re-checks (get):':38}{idle['secret_rechecks']}")
        lines.append(f"    {'  other reads:':38}{idle['reads_beyond_secret_rechecks']}")
        lines.append(f"    {'operator watches opened:':38}{idle['watches_opened']}")
        for request in idle["write_requests"] + idle["other_read_requests"]:
            lines.append(f"      {request}")
        if "rss_after_idle" in results:
            after = mib(results["rss_after_idle"]["rss"])
            lines.append(f"    {'operator RSS after idle:':38}{after}")
    if "rss_slope" in results:
        s = results["rss_slope"]
        points = ", ".join(f"{p['syncs']}: {mib(p['rss'])}" for p in s["points"])
        lines.append(f"  operator RSS by ModelSyncs (no status beyond the first): {points}")
        for step in s["steps"]:
            lines.append(
                f"    {step['namespace']}: {step['syncs']} at once, every Dataset after "
                f"{step['all_datasets_s']} s, {step['cpu_ms_per_sync']} ms CPU and "
                f"{step['writes_per_sync']} writes per ModelSync; RSS "
                f"{step['rss_bytes_per_sync'] / 1024:+.1f} KiB per ModelSync"
            )
    if results.get("profile"):
        lines.extend(profile_lines(results["profile"], c))
    if not results.get("operator_alive", True):
        lines.append("  WARNING: the operator was not running at the end")
    if results.get("targets"):
        lines.append("")
        lines.append("  issue 11 targets")
        width = max(len(t["figure"]) for t in results["targets"]) + 2
        for t in results["targets"]:
            verdict = {True: "ok", False: "MISS", None: ""}[t["ok"]]
            lines.append(f"  {t['figure']:{width}}{t['target']:>12}   {verdict:5} {t['measured']}")
        if c.get("profile"):
            lines.append("  (the operator ran under cProfile: its CPU and times are inflated)")
    return "\n".join(lines)


def profile_lines(profile: dict[str, Any], config: dict[str, Any]) -> list[str]:
    n = config["scale_syncs"]
    phase = (
        f"the restart with {n} READY (healthy -> idle)"
        if config.get("profile_phase") == "restart"
        else f"the scale phase ({n} at once, creation -> READY)"
    )
    lines = [
        "",
        f"  profile of {phase}: "
        f"{profile['total_cpu_s']} s CPU in profiled code ({profile['file']})",
        "    by self time (all code):",
    ]
    lines.extend(_profile_rows(profile["self"]))
    for title, key in (
        ("by cumulative time (all code but the event loop and thread pool):", "cumulative"),
        ("by cumulative time (modelfs's own code):", "cumulative_own"),
    ):
        lines.append(f"    {title}")
        lines.extend(_profile_rows(profile.get(key, [])))
    return lines


def _profile_rows(entries: list[dict[str, Any]]) -> list[str]:
    lines = []
    for entry in entries:
        lines.append(
            f"      {entry['percent']:5.1f}%  {entry['seconds']:8.3f} s  {entry['calls']:>9}  "
            f"{entry['function']}"
        )
    return lines


def breakdown_median(key: str, phase: dict[str, Any]) -> Any:
    return phase["server_side_breakdown"].get(key, {}).get("median_ms")


def per_sync_writes(key: str, phase: dict[str, Any]) -> Any:
    return phase["writes"]["by_resource_verb_per_sync"].get(key, 0)


def _cell(value: Any) -> str:
    return "-" if value is None else str(value)


# --------------------------------------------------------------------------- setup


def bind_operator(cp: ControlPlane, rbac: str) -> str:
    """Create the operator's ServiceAccount and bind it: the generated ClusterRole of
    config/rbac/role.yaml when there is one (and `rbac` is auto or config), else
    cluster-admin. Returns what was bound."""
    role_file = REPO / "config" / "rbac" / "role.yaml"
    role_name = "cluster-admin"
    if rbac != "cluster-admin" and role_file.is_file():
        roles = [
            d
            for d in yaml.safe_load_all(role_file.read_text())
            if d and d.get("kind") == "ClusterRole"
        ]
        if roles:
            role = roles[0]
            role_name = role["metadata"]["name"]
            path = f"/apis/rbac.authorization.k8s.io/v1/clusterroles/{role_name}"
            status, data = cp.request(
                "PATCH",
                f"{path}?fieldManager=modelfs-bench&force=true",
                yaml.safe_dump(role).encode(),
                content_type="application/apply-patch+yaml",
            )
            if status not in (200, 201):
                raise ControlPlaneError(f"apply {role_file}: {status} {data[:300]!r}")
    elif rbac == "config":
        raise SystemExit(f"--rbac config: no ClusterRole in {role_file}")
    for api_path, body in (
        ("/api/v1/namespaces", {"metadata": {"name": SYSTEM_NAMESPACE}}),
        (
            f"/api/v1/namespaces/{SYSTEM_NAMESPACE}/serviceaccounts",
            {"metadata": {"name": SERVICE_ACCOUNT}},
        ),
        (
            "/apis/rbac.authorization.k8s.io/v1/clusterrolebindings",
            {
                "metadata": {"name": BINDING},
                "roleRef": {
                    "apiGroup": "rbac.authorization.k8s.io",
                    "kind": "ClusterRole",
                    "name": role_name,
                },
                "subjects": [
                    {
                        "kind": "ServiceAccount",
                        "name": SERVICE_ACCOUNT,
                        "namespace": SYSTEM_NAMESPACE,
                    }
                ],
            },
        ),
    ):
        status, data = cp.request("POST", api_path, body)
        if status not in (201, 409):
            raise ControlPlaneError(f"POST {api_path}: {status} {data[:300]!r}")
    return role_name if role_name == "cluster-admin" else f"{role_name} ({role_file.name})"


async def install(cp: ControlPlane) -> list[str]:
    api = await new_api_client(cp.kubeconfig)
    try:
        crds = sorted((REPO / "config" / "crd" / "bases").glob("*.yaml"))
        return await install_crds(api, *crds, DATASET_CRD)
    finally:
        await api.close()  # type: ignore[no-untyped-call]


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.operator_bench",
        description="CPU and API writes per ModelSync, latency, throughput against the API "
        "server's floor, memory, restart and idle cost of `modelfs run` on a local control plane "
        "with the fake Dataset controller, each next to its target.",
    )
    parser.add_argument("--syncs", type=int, default=100, help="ModelSyncs per latency phase")
    parser.add_argument("--rate", type=float, default=10.0, help="creates per second (steady)")
    parser.add_argument("--no-burst", action="store_true", help="skip the all-at-once phase")
    parser.add_argument(
        "--scale-syncs",
        type=int,
        default=1000,
        help="ModelSyncs created at once for the floor ratio, RSS and restart (0: skip those)",
    )
    parser.add_argument(
        "--rss-max",
        type=int,
        default=5000,
        help="add ModelSyncs up to this many for the RSS slope (at most --scale-syncs: skip)",
    )
    parser.add_argument(
        "--rss-step", type=int, default=1000, help="ModelSyncs added per step of the RSS slope"
    )
    parser.add_argument(
        "--no-restart", action="store_true", help="skip the restart with the scale phase's READY"
    )
    parser.add_argument(
        "--versions-per-model",
        type=int,
        default=50,
        help=f"versions per Model (at most {MAX_VERSIONS})",
    )
    parser.add_argument(
        "--concurrency",
        type=int,
        default=20,
        help="creates in flight at most (bursts, and the floor's Datasets)",
    )
    parser.add_argument(
        "--idle", type=float, default=60.0, help="seconds of the idle check (0: skip)"
    )
    parser.add_argument(
        "--converge-timeout", type=float, default=600.0, help="seconds to wait for READY"
    )
    parser.add_argument(
        "--fake-timings",
        choices=sorted(FAKE_TIMINGS),
        default="instant",
        help="instant: 0 s rounds; test: the fake's defaults (0.3 s rounds); either way READY "
        "comes at the fake's next 5 s poll of a running round, as with the real controller",
    )
    parser.add_argument(
        "--rbac",
        choices=["auto", "config", "cluster-admin"],
        default="auto",
        help="the operator's role: config/rbac/role.yaml when it exists (auto), or cluster-admin",
    )
    parser.add_argument(
        "--profile",
        type=Path,
        metavar="FILE",
        help="run the operator under cProfile (benchmarks/profiled.py), on during one phase "
        "only (--profile-phase), write the stats to FILE (pstats) and print the top functions; "
        "its CPU and times are then inflated. E.g. --profile burst.prof --syncs 0 "
        "--scale-syncs 300 --rss-max 0 --no-restart --idle 0",
    )
    parser.add_argument(
        "--profile-phase",
        choices=["scale", "restart"],
        default="scale",
        help="what --profile profiles: the scale phase (creation -> READY), or the restarted "
        "operator from healthy to idle",
    )
    parser.add_argument(
        "--profile-top", type=int, default=5, help="functions listed per profile table"
    )
    parser.add_argument("--json", type=Path, help="write the figures as JSON to this path")
    parser.add_argument(
        "--keep", action="store_true", help="keep the control plane's folder and the logs"
    )
    args = parser.parse_args(argv)
    if not 1 <= args.versions_per_model <= MAX_VERSIONS:
        parser.error(f"--versions-per-model must be 1..{MAX_VERSIONS}")
    if args.rate <= 0:
        parser.error("--rate must be > 0")
    if args.rss_step <= 0:
        parser.error("--rss-step must be > 0")
    if args.profile and not args.scale_syncs:
        parser.error("--profile profiles the scale phase or the restart: --scale-syncs > 0")
    if args.profile and args.profile_phase == "restart" and args.no_restart:
        parser.error("--profile-phase restart needs the restart (no --no-restart)")
    if args.profile:
        args.profile = args.profile.resolve()
    return args


OPERATOR_CODE = ("api", "controllers", "pkg", "modelfs")


def operator_code() -> str:
    """Where the `modelfs` that `python -m modelfs` runs (as the operator does) comes from, and
    its commit: the figures must say which code they measure."""
    import subprocess

    found = subprocess.run(
        [
            sys.executable,
            "-c",
            "import modelfs, os; print(os.path.dirname(modelfs.__file__))",
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    folder = Path(found.stdout.strip() or ".").parent

    def git(*args: str) -> str:
        done = subprocess.run(
            ["git", "-C", str(folder), *args], capture_output=True, text=True, check=False
        )
        return done.stdout.strip()

    head = git("log", "-1", "--format=%h")
    changed = git("log", "-1", "--format=%h %s", "--", *OPERATOR_CODE)
    dirty = git("status", "--porcelain", "--", *OPERATOR_CODE)
    return f"{folder} at {head}, api/controllers/pkg/modelfs last changed by {changed[:70]}" + (
        " (with local changes)" if dirty else ""
    )


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        binaries = find_binaries()
    except ControlPlaneError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    args.operator_code = operator_code()
    logs = Path(tempfile.mkdtemp(prefix="modelfs-bench-"))
    failed = True

    def remove_logs() -> None:
        if failed or args.keep:
            kept = f"{logs}" + (f" and {cp.workdir}" if args.keep and cp.workdir else "")
            print(f"logs kept in {kept}", file=sys.stderr)
        else:
            shutil.rmtree(logs, ignore_errors=True)

    cp = ControlPlane(binaries, keep_workdir=args.keep)
    procs: Processes | None = None
    with contextlib.ExitStack() as stack:
        stack.callback(remove_logs)  # runs last, once everything has stopped
        try:
            log(f"operator code: {args.operator_code}")
            log(f"starting the control plane (logs in {logs})")
            stack.callback(cp.stop)
            cp.start()
            crds = asyncio.run(install(cp))
            log(f"installed {len(crds)} CRDs")
            args.rbac_used = bind_operator(cp, args.rbac)
            kubeconfig = cp.service_account_kubeconfig(
                SYSTEM_NAMESPACE,
                SERVICE_ACCOUNT,
                logs / "operator.kubeconfig",
                create=False,
                expiration_seconds=6 * 3600,
            )
            # The fake watches only the namespaces it is told to: the scale phase's joins once
            # its Datasets exist, the RSS steps' never do.
            fake_namespaces = [STEADY_NS, BURST_NS]
            fake = FakeDatasetController(
                cp.kubeconfig,
                namespaces=fake_namespaces,
                timings=FAKE_TIMINGS[args.fake_timings],
                log_path=logs / "fake-dataset.log",
            )
            stack.callback(lambda: procs.fake.stop() if procs else fake.stop())
            fake.start()
            if args.profile and args.profile_phase == "scale":
                operator: OperatorProcess = ProfiledOperator(
                    kubeconfig, log_path=logs / "operator.log", profile_out=args.profile
                )
            else:
                operator = OperatorProcess(kubeconfig, log_path=logs / "operator.log")
            stack.callback(lambda: procs.operator.stop() if procs else operator.stop())
            operator.start()
            procs = Processes(operator, fake, fake_namespaces)
            log(f"operator running as {OPERATOR_USER} ({args.rbac_used})")
            results = asyncio.run(run_bench(args, cp, procs, kubeconfig, logs))
            print(report(results), flush=True)
            if args.json:
                args.json.write_text(json.dumps(results, indent=2, default=str) + "\n")
                print(f"\n  figures written to {args.json}")
            failed = False
            return 0
        except KeyboardInterrupt:
            print(
                "\ninterrupted: stopping the operator, the fake and the control plane", flush=True
            )
            return 130
        except (ControlPlaneError, RuntimeError) as error:
            print(f"error: {error}", file=sys.stderr)
            return 1
        finally:
            # A second Ctrl-C must not cut the stop short and leave processes behind.
            with contextlib.suppress(ValueError):
                signal.signal(signal.SIGINT, signal.SIG_IGN)


async def run_bench(
    args: argparse.Namespace,
    cp: ControlPlane,
    procs: Processes,
    kubeconfig: Path,
    logs: Path,
) -> dict[str, Any]:
    async with Bench(args, cp, procs, kubeconfig, logs) as bench:
        return await bench.run()


if __name__ == "__main__":
    sys.exit(main())
