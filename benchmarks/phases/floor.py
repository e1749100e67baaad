"""floor: `count` Datasets created directly by the client, at the ModelSyncs' concurrency, in a
namespace that neither the operator (no owner) nor the fake acts on: the API server's own time,
which the scale and real phases are divided by."""

from __future__ import annotations

import asyncio
import time
from typing import Any

from benchmarks.common import FLOOR_NS, OPERATOR_USER, Tracker, log, until, watch
from benchmarks.harness import Bench
from modelfs.pkg.dataset import (
    DATASET_API_VERSION,
    DATASET_GROUP,
    DATASET_PLURAL,
    DATASET_VERSION,
    dataset_name,
)


async def run(bench: Bench, results: dict[str, Any]) -> None:
    n = bench.args.scale_syncs or bench.args.real_syncs
    log(f"floor: {n} Datasets created directly, {bench.args.concurrency} in flight")
    results["floor"] = await floor(bench, n)
    log(f"  every Dataset after {results['floor']['all_datasets_s']}s")


async def floor(bench: Bench, count: int, namespace: str = FLOOR_NS) -> dict[str, Any]:
    """The API server's own time to create `count` Datasets at the same concurrency as the
    ModelSyncs are created, seen the same way (first create sent -> last ADDED by watch),
    in a namespace nothing acts on (no owner: the operator ignores them; the fake does not
    watch it). The namespace is deleted afterwards."""
    await bench.create_namespace(namespace)
    tracker = Tracker(expected=count, by_owner=False)
    started = asyncio.Event()
    watcher = asyncio.create_task(
        watch(
            bench.watch_api,
            DATASET_GROUP,
            DATASET_VERSION,
            namespace,
            DATASET_PLURAL,
            tracker.on_dataset,
            started,
        )
    )
    in_flight = asyncio.Semaphore(bench.args.concurrency)
    per_model = bench.args.versions_per_model

    async def create(i: int) -> None:
        model, version = f"m{i // per_model}", f"v{i % per_model}"
        name = dataset_name(model, version)
        body = {
            "apiVersion": DATASET_API_VERSION,
            "kind": "Dataset",
            "metadata": {
                "name": name,
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
            tracker.created[name] = time.monotonic()
            await bench.custom.create_namespaced_custom_object(
                DATASET_GROUP, DATASET_VERSION, namespace, DATASET_PLURAL, body
            )

    try:
        await asyncio.wait_for(started.wait(), 60)
        await asyncio.sleep(0.5)
        machine = bench.machine.snapshot()
        first = time.monotonic()
        await asyncio.gather(*(create(i) for i in range(count)))
        created_in = time.monotonic() - first
        seen = await until(tracker.all_datasets, first + bench.args.converge_timeout)
        others = bench.machine.others_cores(machine)
    finally:
        watcher.cancel()
        await asyncio.gather(watcher, return_exceptions=True)
    last = max(tracker.dataset_added.values(), default=first)
    gone = await bench.delete_namespaces([namespace])
    await bench.audit.quiet(OPERATOR_USER, seconds=2.0, within=30.0)
    return {
        "datasets": count,
        "seen": seen,
        "created_in_s": round(created_in, 2),
        "all_datasets_s": round(last - first, 2),
        "others_cpu_cores": others,
        "deleted": gone,
    }
