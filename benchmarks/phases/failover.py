"""failover: the operator as installed, two replicas with leader election, on the objects the
earlier phases left: the standby's CPU and RSS while the leader works, then the time from a
ModelSync created right after the leader is SIGKILLed (and, with a new standby, after the new
leader is stopped with SIGTERM) to its Dataset. The single unelected operator is back after.

Default Lease timings (15 s, 10 s, 2 s): after a SIGKILL the standby waits for the Lease to
expire; after a SIGTERM the leader releases it."""

from __future__ import annotations

import asyncio
import time
from typing import Any

from benchmarks.common import (
    SYSTEM_NAMESPACE,
    Tracker,
    cpu_seconds,
    log,
    mib,
    pid_of,
    watch,
)
from benchmarks.harness import Bench
from modelfs.api.v1 import ModelSync
from modelfs.pkg.dataset import DATASET_GROUP, DATASET_PLURAL, DATASET_VERSION
from modelfs.testing.operator import OperatorProcess

FAILOVER_NS = "bench-failover"
LEASE = "modelfs-bench"
STANDBY_SECONDS = 30.0


async def run(bench: Bench, results: dict[str, Any]) -> None:
    log(f"failover: two elected replicas with {bench.syncs_alive} ModelSyncs")
    results["failover"] = r = await failover(bench)
    log(
        f"  standby {r['standby_cpu_s']}s CPU over {STANDBY_SECONDS:.0f}s, RSS "
        f"{mib(r['standby_rss'])} (leader {mib(r['leader_rss'])}); create -> Dataset "
        f"{r['sigkill_dataset_s']}s after a SIGKILL, {r['sigterm_dataset_s']}s after a SIGTERM"
    )


def replica(bench: Bench, name: str) -> OperatorProcess:
    return OperatorProcess(
        bench.operator_kubeconfig,
        log_path=bench.logs / f"operator-{name}.log",
        extra_args=[
            "--leader-elect",
            f"--leader-election-namespace={SYSTEM_NAMESPACE}",
            f"--leader-election-id={LEASE}",
        ],
    )


def leading(process: OperatorProcess) -> bool:
    return "\nmodelfs_leader 1.0" in process.metrics()


async def leader_of(*processes: OperatorProcess, within: float = 60.0) -> OperatorProcess:
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        for process in processes:
            if process.alive() and await asyncio.to_thread(leading, process):
                return process
        await asyncio.sleep(0.2)
    raise RuntimeError(f"no replica led within {within}s")


async def failover(bench: Bench) -> dict[str, Any]:
    procs = bench.procs
    triples = await bench.prepare(FAILOVER_NS, 2)
    procs.retired_cpu["operator"] += cpu_seconds(pid_of(procs.operator))
    await asyncio.to_thread(procs.operator.stop)
    a, b = replica(bench, "a"), replica(bench, "b")
    await asyncio.to_thread(a.start)
    await asyncio.to_thread(b.start)
    replicas = [a, b]
    tracker = Tracker(expected=2)
    started = asyncio.Event()
    watcher = asyncio.create_task(
        watch(
            bench.watch_api,
            DATASET_GROUP,
            DATASET_VERSION,
            FAILOVER_NS,
            DATASET_PLURAL,
            tracker.on_dataset,
            started,
        )
    )
    try:
        await asyncio.wait_for(started.wait(), 60)
        leader = await leader_of(a, b)
        standby = b if leader is a else a
        await asyncio.sleep(5)  # the leader's pass over every object, the standby synced
        cpu = cpu_seconds(pid_of(standby))
        await asyncio.sleep(STANDBY_SECONDS)
        standby_cpu = cpu_seconds(pid_of(standby)) - cpu
        standby_rss, leader_rss = standby.rss_bytes(), leader.rss_bytes()

        async def handover(stop: str, sync: tuple[str, str, str]) -> float | None:
            nonlocal leader, standby
            old = leader
            await asyncio.to_thread(old.kill if stop == "kill" else old.stop)
            name, model, version = sync
            tracker.created[name] = time.monotonic()
            await bench.create(
                FAILOVER_NS, ModelSync.plural, name, {"modelRef": model, "version": version}
            )
            bench.syncs_alive += 1
            deadline = time.monotonic() + 120
            while name not in tracker.dataset_added and time.monotonic() < deadline:  # noqa: ASYNC110
                await asyncio.sleep(0.05)
            leader = standby
            fresh = replica(bench, f"{stop}-new")
            await asyncio.to_thread(fresh.start)  # the next standby
            replicas.append(fresh)
            standby = fresh
            if name not in tracker.dataset_added:
                return None
            return round(tracker.dataset_added[name] - tracker.created[name], 2)

        sigkill = await handover("kill", triples[0])
        await asyncio.sleep(5)
        sigterm = await handover("stop", triples[1])
    finally:
        watcher.cancel()
        await asyncio.gather(watcher, return_exceptions=True)
        for process in replicas:
            await asyncio.to_thread(process.stop)
        procs.operator = OperatorProcess(
            bench.operator_kubeconfig, log_path=bench.logs / "operator-after-failover.log"
        )
        await asyncio.to_thread(procs.operator.start)
    return {
        "objects": bench.syncs_alive,
        "standby_seconds": STANDBY_SECONDS,
        "standby_cpu_s": round(standby_cpu, 2),
        "standby_rss": standby_rss,
        "leader_rss": leader_rss,
        "sigkill_dataset_s": sigkill,
        "sigterm_dataset_s": sigterm,
    }
