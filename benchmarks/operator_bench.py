"""The operator's figures on a local control plane: latency, API writes per ModelSync, memory,
and what it does when idle.

    python -m benchmarks.operator_bench [--syncs 100] [--rate 10] [--scale-syncs 500]
        [--idle 30] [--json out.json] [--keep]

It starts its own ControlPlane (etcd, kube-apiserver with a Metadata audit log,
kube-controller-manager), installs the CRDs, starts the fake Dataset controller with instant
timings (the fake, not the real controller: a thousand loader Jobs and their Pods would measure
the Job controller and the pod simulator, not the operator; e2e/test_conformance.py shows the
fake behaves as the real one does), and runs `modelfs run` as its own ServiceAccount (the
generated ClusterRole of config/rbac/role.yaml when it exists, else cluster-admin). Then,
each phase in its own namespace:

1. steady: `--syncs` ModelSyncs created at `--rate` per second; for each, the time from the
   client sending its create to the client seeing (by watch) its Dataset ADDED and its
   status.phase READY. API writes by the operator's user over the phase, per ModelSync.
2. burst: the same, all created at once.
3. scale: `--scale-syncs` ModelSyncs (Models of `--versions-per-model` versions) after the
   first two namespaces are deleted: time to converge, the operator's RSS (and the baseline
   with no objects, measured before phase 1).
4. idle: writes and reads by the operator's user over `--idle` seconds after convergence.

Everything it started (operator, fake, control plane) is stopped on exit, Ctrl-C or error.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import functools
import json
import math
import os
import shutil
import signal
import statistics
import sys
import tempfile
import time
from collections import Counter
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

FAKE_TIMINGS = {
    "instant": Timings(round_duration=0.0),
    "test": Timings(),  # the fake's defaults: rounds of 0.3 s
}


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
    """Reads the apiserver's audit log incrementally (it grows to tens of MB)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.offset = 0
        self.entries: list[AuditEntry] = []

    def poll(self) -> list[AuditEntry]:
        with contextlib.suppress(FileNotFoundError), self.path.open("rb") as stream:
            stream.seek(self.offset)
            data = stream.read()
            end = data.rfind(b"\n") + 1  # a line being written stays for the next poll
            self.offset += end
            for line in data[:end].splitlines():
                if line.strip():
                    self.entries.append(self._entry(json.loads(line)))
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
        owners = body["metadata"].get("ownerReferences") or []
        owner = next((o["name"] for o in owners if o.get("kind") == "ModelSync"), None)
        if owner is not None and owner not in self.dataset_added:
            self.dataset_added[owner] = now

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


# --------------------------------------------------------------------------- the cluster


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


class Bench:
    def __init__(
        self,
        args: argparse.Namespace,
        cp: ControlPlane,
        operator: OperatorProcess,
        fake: FakeDatasetController,
    ):
        self.args = args
        self.cp = cp
        self.operator = operator
        self.fake = fake
        self.audit = AuditLog(cp.audit_log)
        self.api: Any = None
        self.watch_api: Any = None

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

    async def prepare(self, namespace: str, syncs: int) -> list[tuple[str, str, str]]:
        """A namespace, one HTTP ModelSource, and Models with enough versions for `syncs`
        ModelSyncs; waits until the operator has written their statuses. Returns the
        (sync name, model, version) triples."""
        from kubernetes.aio import client

        per_model = self.args.versions_per_model
        await client.CoreV1Api(self.api).create_namespace(
            client.V1Namespace(metadata=client.V1ObjectMeta(name=namespace))
        )
        await self.create(namespace, "modelsources", "src", {"type": "HTTP"})
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
        deadline = time.monotonic() + 60
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
        self, namespace: str, triples: list[tuple[str, str, str]], rate: float | None
    ) -> dict[str, Any]:
        """Create the ModelSyncs (at `rate` per second, or all at once with a cap on requests
        in flight) and wait until every one is READY; figures of the phase."""
        tracker = Tracker(expected=len(triples))
        started = [asyncio.Event(), asyncio.Event()]
        watches = [
            asyncio.create_task(
                watch(self.watch_api, GROUP, VERSION, namespace, "modelsyncs", tracker.on_sync, s)
            )
            if i == 0
            else asyncio.create_task(
                watch(
                    self.watch_api,
                    DATASET_GROUP,
                    DATASET_VERSION,
                    namespace,
                    DATASETS,
                    tracker.on_dataset,
                    s,
                )
            )
            for i, s in enumerate(started)
        ]
        in_flight = asyncio.Semaphore(self.args.concurrency)
        cpu = self.cpu()
        load_before = load_average()
        creates: list[asyncio.Task[None]] = []

        async def create(name: str, model: str, version: str) -> None:
            async with in_flight:
                tracker.created[name] = time.monotonic()
                await self.create(
                    namespace, "modelsyncs", name, {"modelRef": model, "version": version}
                )

        try:
            await asyncio.gather(*(s.wait() for s in started))
            await asyncio.sleep(0.5)  # let the watch requests reach the server
            window_start = datetime.now(UTC)
            first = time.monotonic()
            for i, (name, model, version) in enumerate(triples):
                if rate:
                    await asyncio.sleep(max(first + i / rate - time.monotonic(), 0))
                creates.append(asyncio.create_task(create(name, model, version)))
            await asyncio.gather(*creates)
            created_in = time.monotonic() - first
            timeout = self.args.converge_timeout
            converged = True
            try:
                await asyncio.wait_for(tracker.all_ready.wait(), timeout)
            except TimeoutError:
                converged = False
                log(f"  not all READY after {timeout:.0f}s: {len(tracker.ready)}/{len(triples)}")
            last_ready = max(tracker.ready.values(), default=first)
            last_ready_wall = datetime.now(UTC) - timedelta(seconds=time.monotonic() - last_ready)
            quiet = await self.audit.quiet(OPERATOR_USER, seconds=2.0, within=30.0)
            window_end = datetime.now(UTC)
            cpu = {k: v - cpu[k] for k, v in self.cpu().items()}
        finally:
            for task in [*watches, *creates]:
                task.cancel()
            await asyncio.gather(*watches, *creates, return_exceptions=True)
        entries = self.audit.by(OPERATOR_USER, window_start, window_end)
        n = len(triples)
        breakdown = self.breakdown(namespace, triples, tracker)
        events = await self.event_reasons(namespace)
        trailing = [e for e in entries if e.verb in WRITE_VERBS and e.received > last_ready_wall]
        sequences = Counter(">".join(p) for p in tracker.phases.values())
        return {
            "syncs": n,
            "created_in_s": round(created_in, 2),
            "converged": converged,
            "ready": len(tracker.ready),
            "converge_s": round(last_ready - first, 2),
            "dataset_latency": summary(tracker.latencies(tracker.dataset_added)),
            "ready_latency": summary(tracker.latencies(tracker.ready)),
            "phase_sequences": dict(sequences.most_common(5)),
            "server_side_breakdown": breakdown,
            "cpu_ms_per_sync": {k: round(v * 1000 / n, 1) for k, v in cpu.items()},
            "load_average_1m": [load_before, load_average()],
            "events_per_sync": {k: round(v / n, 2) for k, v in events.most_common()},
            "writes": write_figures(entries, n),
            "writes_after_last_ready": len(trailing),
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
            kind = event.involved_object.kind if event.involved_object else ""
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

    def cpu(self) -> dict[str, float]:
        """CPU seconds so far of the operator and of the fake Dataset controller."""
        return {
            "operator": cpu_seconds(self.operator.process.pid if self.operator.process else None),
            "fake": cpu_seconds(self.fake.process.pid if self.fake.process else None),
        }

    def rss(self) -> dict[str, int]:
        """VmRSS and VmHWM (peak) of the operator process, in bytes."""
        out = {"rss": self.operator.rss_bytes(), "peak": 0}
        if self.operator.process is not None:
            with contextlib.suppress(OSError):
                status = Path(f"/proc/{self.operator.process.pid}/status").read_text()
                for line in status.splitlines():
                    if line.startswith("VmHWM:"):
                        out["peak"] = int(line.split()[1]) * 1024
        return out

    async def idle(self, seconds: float) -> dict[str, Any]:
        start = datetime.now(UTC)
        await asyncio.sleep(seconds)
        end = datetime.now(UTC)
        entries = self.audit.by(OPERATOR_USER, start, end)
        writes = [e for e in entries if e.verb in WRITE_VERBS]
        reads = [e for e in entries if e.verb in READ_VERBS]
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
            "reads_by_resource_verb": dict(Counter(f"{e.resource} {e.verb}" for e in reads)),
            "watches_opened": len(watches),
        }

    async def run(self) -> dict[str, Any]:
        args = self.args
        results: dict[str, Any] = {
            "config": {
                "syncs": args.syncs,
                "rate_per_s": args.rate,
                "scale_syncs": args.scale_syncs,
                "versions_per_model": args.versions_per_model,
                "fake_timings": args.fake_timings,
                "rbac": args.rbac_used,
                "idle_s": args.idle,
                "cpus": os.cpu_count(),
                "load_average_1m_at_start": load_average(),
            }
        }
        await asyncio.sleep(2)
        results["rss_baseline"] = self.rss()
        log(f"operator RSS with no objects: {mib(results['rss_baseline']['rss'])}")

        if args.syncs:
            log(f"steady: {args.syncs} ModelSyncs at {args.rate}/s")
            triples = await self.prepare("bench-steady", args.syncs)
            results["steady"] = await self.run_syncs("bench-steady", triples, args.rate)
            log(f"  {brief(results['steady'])}")
            if not args.no_burst:
                log(f"burst: {args.syncs} ModelSyncs at once")
                triples = await self.prepare("bench-burst", args.syncs)
                results["burst"] = await self.run_syncs("bench-burst", triples, None)
                log(f"  {brief(results['burst'])}")
            log("deleting the steady and burst namespaces")
            gone = await self.delete_namespaces(["bench-steady", "bench-burst"])
            if not gone:
                log("  namespaces still there after 120s; the scale phase holds more objects")
            await self.audit.quiet(OPERATOR_USER, seconds=2.0, within=30.0)

        if args.scale_syncs:
            log(f"scale: {args.scale_syncs} ModelSyncs at once")
            triples = await self.prepare("bench-scale", args.scale_syncs)
            results["scale"] = await self.run_syncs("bench-scale", triples, None)
            log(f"  {brief(results['scale'])}")
            await asyncio.sleep(2)
            results["rss_scale"] = self.rss()
            log(f"operator RSS with {args.scale_syncs} READY: {mib(results['rss_scale']['rss'])}")

        if args.idle:
            log(f"idle: watching the operator's requests for {args.idle:.0f}s")
            results["idle"] = await self.idle(args.idle)
            results["rss_after_idle"] = self.rss()
        results["operator_alive"] = self.operator.alive()
        return results


def brief(phase: dict[str, Any]) -> str:
    return (
        f"{phase['ready']}/{phase['syncs']} READY in {phase['converge_s']}s; "
        f"Dataset median {phase['dataset_latency'].get('median_ms')} ms, READY median "
        f"{phase['ready_latency'].get('median_ms')} ms; {phase['writes']['per_sync']} writes/sync"
    )


def mib(value: int) -> str:
    return f"{value / 2**20:.1f} MiB"


# --------------------------------------------------------------------------- report


def report(results: dict[str, Any]) -> str:
    c = results["config"]
    lines = [
        "",
        "modelfs operator benchmark",
        f"  fake Dataset timings: {c['fake_timings']}; operator RBAC: {c['rbac']}",
        f"  {c['cpus']} CPUs, 1-min load average at start {c['load_average_1m_at_start']}",
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
        row("failed writes (>= 400)", lambda p: sum(p["writes"]["failed"].values()))
        row("writes after the last READY", lambda p: p["writes_after_last_ready"])
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
    lines.append(f"  {'operator RSS, no objects:':40}{mib(results['rss_baseline']['rss'])}")
    if "rss_scale" in results:
        label = f"operator RSS, {c['scale_syncs']} ModelSyncs READY:"
        lines.append(f"  {label:40}{mib(results['rss_scale']['rss'])}")
        lines.append(f"  {'operator peak RSS (VmHWM):':40}{mib(results['rss_scale']['peak'])}")
    if "idle" in results:
        idle = results["idle"]
        lines.append(f"  idle {idle['seconds']:.0f}s after convergence:")
        lines.append(f"    {'operator writes:':38}{idle['writes']}")
        lines.append(f"    {'operator reads (get/list) per s:':38}{idle['reads_per_s']}")
        lines.append(f"    {'operator watches opened:':38}{idle['watches_opened']}")
        for request in idle["write_requests"]:
            lines.append(f"      {request}")
        if "rss_after_idle" in results:
            after = mib(results["rss_after_idle"]["rss"])
            lines.append(f"    {'operator RSS after idle:':38}{after}")
    if not results.get("operator_alive", True):
        lines.append("  WARNING: the operator was not running at the end")
    return "\n".join(lines)


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
        description="Latency, API writes per ModelSync, memory and idle traffic of `modelfs run` "
        "on a local control plane with the fake Dataset controller.",
    )
    parser.add_argument("--syncs", type=int, default=100, help="ModelSyncs per latency phase")
    parser.add_argument("--rate", type=float, default=10.0, help="creates per second (steady)")
    parser.add_argument("--no-burst", action="store_true", help="skip the all-at-once phase")
    parser.add_argument(
        "--scale-syncs", type=int, default=500, help="ModelSyncs for the memory phase (0: skip)"
    )
    parser.add_argument(
        "--versions-per-model",
        type=int,
        default=50,
        help=f"versions per Model (at most {MAX_VERSIONS})",
    )
    parser.add_argument(
        "--concurrency", type=int, default=20, help="creates in flight at most (bursts)"
    )
    parser.add_argument(
        "--idle", type=float, default=30.0, help="seconds of the idle check (0: skip)"
    )
    parser.add_argument(
        "--converge-timeout", type=float, default=300.0, help="seconds to wait for READY"
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
    parser.add_argument("--json", type=Path, help="write the figures as JSON to this path")
    parser.add_argument(
        "--keep", action="store_true", help="keep the control plane's folder and the logs"
    )
    args = parser.parse_args(argv)
    if not 1 <= args.versions_per_model <= MAX_VERSIONS:
        parser.error(f"--versions-per-model must be 1..{MAX_VERSIONS}")
    if args.rate <= 0:
        parser.error("--rate must be > 0")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        binaries = find_binaries()
    except ControlPlaneError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    logs = Path(tempfile.mkdtemp(prefix="modelfs-bench-"))
    failed = True

    def remove_logs() -> None:
        if failed or args.keep:
            kept = f"{logs}" + (f" and {cp.workdir}" if args.keep and cp.workdir else "")
            print(f"logs kept in {kept}", file=sys.stderr)
        else:
            shutil.rmtree(logs, ignore_errors=True)

    cp = ControlPlane(binaries, keep_workdir=args.keep)
    with contextlib.ExitStack() as stack:
        stack.callback(remove_logs)  # runs last, once everything has stopped
        try:
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
            fake = FakeDatasetController(
                cp.kubeconfig,
                timings=FAKE_TIMINGS[args.fake_timings],
                log_path=logs / "fake-dataset.log",
            )
            stack.callback(fake.stop)
            fake.start()
            operator = OperatorProcess(kubeconfig, log_path=logs / "operator.log")
            stack.callback(operator.stop)
            operator.start()
            log(f"operator running as {OPERATOR_USER} ({args.rbac_used})")
            results = asyncio.run(run_bench(args, cp, operator, fake))
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
    operator: OperatorProcess,
    fake: FakeDatasetController,
) -> dict[str, Any]:
    async with Bench(args, cp, operator, fake) as bench:
        return await bench.run()


if __name__ == "__main__":
    sys.exit(main())
