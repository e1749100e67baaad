"""restart: the operator is stopped (SIGTERM) and started again with the scale phase's READY
ModelSyncs: its writes, its CPU until it is idle, and the time a ModelSync created as soon as
it answers /healthz waits for its Dataset. Idle also means the new ModelSync has its first
status: no Dataset controller watches its namespace, so the operator writes it at the 5 s mark
(FIRST_STATUS_WAIT), and the idle phase that follows must not see that write."""

from __future__ import annotations

import asyncio
import signal
import time
from collections import Counter
from datetime import UTC, datetime
from typing import Any

from benchmarks.common import (
    OPERATOR_USER,
    READ_VERBS,
    RESTART_NS,
    WRITE_VERBS,
    ProfiledOperator,
    Tracker,
    cpu_seconds,
    log,
    pid_of,
    watch,
)
from benchmarks.harness import Bench
from modelfs.api.v1 import GROUP, VERSION, ModelSync
from modelfs.pkg.dataset import DATASET_GROUP, DATASET_PLURAL, DATASET_VERSION
from modelfs.testing.operator import OperatorProcess


async def run(bench: Bench, results: dict[str, Any]) -> None:
    log(f"restart: the operator stopped and started again with {bench.syncs_alive} READY")
    results["restart"] = await restart(bench)
    r = results["restart"]
    log(
        f"  {r['writes_to_existing']} writes, {r['cpu_until_idle_s']}s CPU until "
        f"idle after {r['idle_after_s']}s; the new ModelSync's Dataset after "
        f"{r['new_sync_dataset_ms']} ms"
    )
    results["rss_after_restart"] = bench.rss()
    if bench.profile is not None:
        results["profile"] = bench.profile


async def restart(bench: Bench) -> dict[str, Any]:
    """Stop the operator, start a new one, and measure it until it is idle; a ModelSync
    is created (in its own namespace) as soon as the new one is healthy."""
    triples = await bench.prepare(RESTART_NS, 1)
    await bench.audit.quiet(OPERATOR_USER, seconds=2.0, within=30.0)
    tracker = Tracker(expected=1)
    started = [asyncio.Event(), asyncio.Event()]
    first_status = asyncio.Event()

    def on_sync(kind: str, body: dict[str, Any], now: float) -> None:
        if (body.get("status") or {}).get("conditions"):  # written by modelfs, not the default
            first_status.set()

    watchers = [
        asyncio.create_task(
            watch(
                bench.watch_api,
                DATASET_GROUP,
                DATASET_VERSION,
                RESTART_NS,
                DATASET_PLURAL,
                tracker.on_dataset,
                started[0],
            )
        ),
        asyncio.create_task(
            watch(
                bench.watch_api, GROUP, VERSION, RESTART_NS, ModelSync.plural, on_sync, started[1]
            )
        ),
    ]
    try:
        await asyncio.wait_for(asyncio.gather(*(s.wait() for s in started)), 60)
        await asyncio.sleep(0.5)
        procs = bench.procs
        ready_before = bench.syncs_alive
        procs.retired_cpu["operator"] += cpu_seconds(pid_of(procs.operator))
        await asyncio.to_thread(procs.operator.stop)
        machine = bench.machine.snapshot()
        window_start = datetime.now(UTC)
        t0 = time.monotonic()
        profile = bench.args.profile if bench.args.profile_phase == "restart" else None
        log_path = bench.logs / "operator-restarted.log"
        if profile is not None:
            profile.unlink(missing_ok=True)
            procs.operator = ProfiledOperator(
                bench.operator_kubeconfig, log_path=log_path, profile_out=profile
            )
        else:
            procs.operator = OperatorProcess(bench.operator_kubeconfig, log_path=log_path)
        await asyncio.to_thread(procs.operator.start)
        if profile is not None:  # from healthy on: start-up and imports are not profiled
            bench.profile_signal(signal.SIGUSR1)
        healthy = time.monotonic() - t0
        cpu_healthy = cpu_seconds(pid_of(procs.operator))
        name, model, version = triples[0]
        tracker.created[name] = time.monotonic()
        await bench.create(
            RESTART_NS, ModelSync.plural, name, {"modelRef": model, "version": version}
        )
        bench.syncs_alive += 1
        created_at = tracker.created[name] - t0
        settled = await bench.settle(
            procs.operator,
            started=t0,
            within=bench.args.converge_timeout,
            also=lambda: tracker.all_datasets.is_set() and first_status.is_set(),
        )
        window_end = datetime.now(UTC)
        others = bench.machine.others_cores(machine)
        if profile is not None:
            bench.profile = await bench.profiled(profile)
    finally:
        for watcher in watchers:
            watcher.cancel()
        await asyncio.gather(*watchers, return_exceptions=True)
    entries = bench.audit.by(OPERATOR_USER, window_start, window_end)
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
        "writes_to_existing_by_resource_verb": dict(Counter(f"{e.resource} {e.verb}" for e in old)),
        "write_requests": [f"{e.verb} {e.uri} {e.code}" for e in old[:20]],
        "writes_for_new_sync": len(writes) - len(old),
        "reads": dict(Counter(f"{e.resource} {e.verb}" for e in entries if e.verb in READ_VERBS)),
        "others_cpu_cores": others,
    }
