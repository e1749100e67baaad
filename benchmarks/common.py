"""What every phase of the operator benchmark shares: names, targets, the audit log, the
client's watches, the machine's load, and the processes (the operator and the Dataset
controller) that a run replaces as it goes."""

from __future__ import annotations

import asyncio
import contextlib
import json
import math
import os
import statistics
import time
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, BinaryIO, NamedTuple

from modelfs.testing.dataset_engine import DatasetEngine
from modelfs.testing.fake_dataset.logic import Timings
from modelfs.testing.fake_dataset.process import FakeDatasetController
from modelfs.testing.operator import OperatorProcess

REPO = Path(__file__).resolve().parents[1]
SYSTEM_NAMESPACE = "modelfs-system"
SERVICE_ACCOUNT = "modelfs-operator"
OPERATOR_USER = f"system:serviceaccount:{SYSTEM_NAMESPACE}:{SERVICE_ACCOUNT}"
BINDING = "modelfs-operator-bench"
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
REAL_NS, REAL_FLOOR_NS = "bench-real", "bench-real-floor"
CATALOG_NS, CATALOG_OFF_NS = "bench-catalog", "bench-catalog-off"
SECRET_SOURCE, SECRET_NAME = "src-with-secret", "src-credentials"

FAKE_TIMINGS = {
    "instant": Timings(round_duration=0.0),
    "test": Timings(),  # the fake's defaults: rounds of 0.3 s
}

#: Issue 11's targets, and issue 19's for the realistic 1,000-burst.
TARGET_CPU_MS = 10.0
TARGET_WRITES = 5.0
TARGET_BURST_WRITES = 3.5
"""Issue 20: writes per ModelSync in a burst, the round-end Event included."""
TARGET_STEADY_MEDIAN_MS = 50.0
TARGET_STEADY_P99_MS = 250.0
TARGET_FLOOR_RATIO = 4.0
TARGET_REAL_FLOOR_RATIO = 5.0
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
    seconds: float
    """The API server's own time for the request: received -> this stage."""


class AuditLog:
    """Reads the apiserver's audit log incrementally (it grows to hundreds of MB). The API
    server renames it at 100 MB and starts a new one (the real phase's Jobs and Pods get there):
    the file stays open, is read to its end once renamed, and the new one is read from its
    start."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.stream: BinaryIO | None = None
        self.partial = b""
        self.entries: list[AuditEntry] = []
        self.last_operator_write: datetime | None = None

    def poll(self) -> list[AuditEntry]:
        while True:
            if self.stream is None:
                try:
                    self.stream = self.path.open("rb")
                except FileNotFoundError:
                    return self.entries
            try:  # stat before the read: what is read after a rename is the old file's end
                renamed = os.stat(self.path).st_ino != os.fstat(self.stream.fileno()).st_ino
            except FileNotFoundError:
                renamed = False
            self._parse(self.stream.read())
            if not renamed:
                return self.entries
            self.stream.close()
            self.stream, self.partial = None, b""

    def close(self) -> None:
        if self.stream is not None:
            self.stream.close()
            self.stream = None

    def _parse(self, data: bytes) -> None:
        data = self.partial + data
        end = data.rfind(b"\n") + 1  # a line being written stays for the next poll
        self.partial = data[end:]
        for line in data[:end].splitlines():
            if line.strip():
                entry = self._entry(json.loads(line))
                self.entries.append(entry)
                if entry.user == OPERATOR_USER and entry.verb in WRITE_VERBS:
                    self.last_operator_write = entry.received

    @staticmethod
    def _entry(event: dict[str, Any]) -> AuditEntry:
        ref = event.get("objectRef") or {}
        received = datetime.fromisoformat(event["requestReceivedTimestamp"])
        stage = datetime.fromisoformat(
            event.get("stageTimestamp") or event["requestReceivedTimestamp"]
        )
        resource = ref.get("resource", "")
        if ref.get("subresource"):
            resource += "/" + ref["subresource"]
        return AuditEntry(
            received=received,
            stage=event.get("stage", ""),
            user=(event.get("user") or {}).get("username", ""),
            verb=event.get("verb", ""),
            resource=resource or event.get("requestURI", ""),
            namespace=ref.get("namespace", ""),
            name=ref.get("name", ""),
            code=int((event.get("responseStatus") or {}).get("code") or 0),
            uri=event.get("requestURI", ""),
            seconds=(stage - received).total_seconds(),
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
    """The operator and the fake that run now (both are replaced during a run), and the real
    Dataset controller while the real phase runs."""

    operator: OperatorProcess
    fake: FakeDatasetController
    fake_namespaces: list[str]
    engine: DatasetEngine | None = None
    retired_cpu: dict[str, float] = field(
        default_factory=lambda: {"operator": 0.0, "fake": 0.0, "dataset_controller": 0.0}
    )
    """CPU seconds of the operators, fakes and real Dataset controllers that were stopped."""

    def stop(self) -> None:
        self.operator.stop()
        self.fake.stop()
        self.stop_engine()

    def stop_engine(self) -> None:
        if self.engine is not None:
            self.engine.stop()

    def engine_cpu(self) -> float:
        """CPU seconds so far of the real Dataset controller and its pod simulator."""
        engine, total = self.engine, self.retired_cpu["dataset_controller"]
        if engine is not None:
            for process in (engine.controller, engine.simulator):
                if process is not None:
                    total += cpu_seconds(process.pid)
        return total


def pid_of(process: OperatorProcess | FakeDatasetController) -> int | None:
    return process.process.pid if process.process is not None else None


def mib(value: int) -> str:
    return f"{value / MIB:.1f} MiB"
