"""`Bench`: the operator benchmark's client side, which the phases (benchmarks/phases/) drive:
its API clients, the ModelSyncs it creates and follows to READY, the operator's CPU, writes,
metrics and memory, and its profile."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import pstats
import signal
import statistics
import time
from collections import Counter, deque
from collections.abc import Callable, Iterable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from benchmarks.common import (
    FAKE_TIMINGS,
    OPERATOR_USER,
    REPO,
    SECRET_NAME,
    SECRET_SOURCE,
    WRITE_VERBS,
    AuditLog,
    MachineLoad,
    Processes,
    Tracker,
    cpu_seconds,
    load_average,
    log,
    percentile,
    pid_of,
    summary,
    until,
    watch,
    write_figures,
)
from modelfs.api.v1 import API_VERSION, GROUP, VERSION, Model, ModelSource, ModelSync
from modelfs.pkg.dataset import DATASET_GROUP, DATASET_PLURAL, DATASET_VERSION, dataset_name
from modelfs.testing.controlplane import ControlPlane
from modelfs.testing.fake_dataset.process import FakeDatasetController
from modelfs.testing.operator import OperatorProcess
from modelfs.testing.pytest_plugin import new_api_client

KINDS = {kind.plural: kind.__name__ for kind in (ModelSource, Model, ModelSync)}


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
        self.audit.close()
        for api in (self.api, self.watch_api):
            if api is not None:
                await api.close()

    @property
    def custom(self) -> Any:
        from kubernetes.aio import client

        return client.CustomObjectsApi(self.api)

    async def create(self, namespace: str, plural: str, name: str, spec: dict[str, Any]) -> None:
        body = {
            "apiVersion": API_VERSION,
            "kind": KINDS[plural],
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
        await self.create(namespace, ModelSource.plural, "src", {"type": "HTTP"})
        if secret_source:
            await client.CoreV1Api(self.api).create_namespaced_secret(
                namespace,
                client.V1Secret(
                    metadata=client.V1ObjectMeta(name=SECRET_NAME),
                    string_data={"username": "bench", "password": "bench", "token": "bench"},
                ),
            )
            await self.create(
                namespace,
                ModelSource.plural,
                SECRET_SOURCE,
                {"type": "HTTP", "secretRef": SECRET_NAME},
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
                namespace, Model.plural, model, {"sourceRef": "src", "versionConfigs": versions}
            )
        await self.models_settled(namespace)
        return triples

    async def models_settled(self, namespace: str) -> None:
        """Until the operator has written a status on every Model of `namespace` and been
        quiet for a second."""
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            listed = await self.custom.list_namespaced_custom_object(
                GROUP, VERSION, namespace, Model.plural
            )
            if all(item.get("status") for item in listed["items"]):
                break
            await asyncio.sleep(0.2)
        else:
            raise RuntimeError(f"the operator wrote no status on the Models of {namespace}")
        await self.audit.quiet(OPERATOR_USER, seconds=1.0)

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
                    ModelSync.plural,
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
                    DATASET_PLURAL,
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
                    namespace, ModelSync.plural, name, {"modelRef": model, "version": version}
                )

        depths: list[float] = []
        sampler = asyncio.create_task(self.sample_depth(depths))
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
            for task in [*watches, *creates, sampler]:
                task.cancel()
            await asyncio.gather(*watches, *creates, sampler, return_exceptions=True)
        entries = self.audit.by(OPERATOR_USER, window_start, window_end)
        applies = [e.seconds for e in entries if e.resource == DATASET_PLURAL and e.verb == "patch"]
        sync_creates = [
            e.seconds
            for e in self.audit.poll()
            if e.namespace == namespace
            and e.resource == ModelSync.plural
            and e.verb == "create"
            and e.stage == "ResponseComplete"
        ]
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
            "max_queue_depth": max(depths, default=None),
            "server_time": {
                "operator's Dataset applies": summary(applies),
                "the client's ModelSync creates": summary(sync_creates),
            },
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
            if e.resource == ModelSync.plural and e.verb == "create":
                created.setdefault(e.name, e.received)
            elif e.user == OPERATOR_USER and e.resource == DATASET_PLURAL and e.verb in WRITE_VERBS:
                applied.setdefault(e.name, e.received)
            elif e.user == OPERATOR_USER and e.resource == f"{ModelSync.plural}/status":
                sync_status.setdefault(e.name, []).append(e.received)
            elif e.user != OPERATOR_USER and e.resource == f"{DATASET_PLURAL}/status":
                dataset_status.setdefault(e.name, []).append(e.received)
        spans: dict[str, list[float]] = {
            "create -> Dataset applied (operator)": [],
            "Dataset applied -> its last status write (Dataset controller)": [],
            "Dataset controller's last status -> ModelSync READY patch (operator)": [],
            "READY patch -> client sees READY (watch)": [],
        }
        for sync, model, version in triples:
            dataset = dataset_name(model, version)
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
        """CPU seconds so far of the operators, of the fake Dataset controllers and of the real
        one with its pod simulator (the ones stopped during the run included)."""
        return {
            "operator": self.procs.retired_cpu["operator"]
            + cpu_seconds(pid_of(self.procs.operator)),
            "fake": self.procs.retired_cpu["fake"] + cpu_seconds(pid_of(self.procs.fake)),
            "dataset_controller": self.procs.engine_cpu(),
        }

    async def sample_depth(self, depths: list[float]) -> None:
        """The operator's ModelSync queue depth (its metric), once a second, until cancelled."""
        while True:
            with contextlib.suppress(OSError):
                text = await asyncio.to_thread(self.procs.operator.metrics)
                for line in text.splitlines():
                    if line.startswith('modelfs_workqueue_depth{name="modelsyncs"}'):
                        depths.append(float(line.rsplit(" ", 1)[1]))
            await asyncio.sleep(1.0)

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
