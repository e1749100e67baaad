"""rss: ModelSyncs added `--rss-step` at a time up to `--rss-max`, in namespaces the fake does
not watch (their Datasets get no status); the operator's RSS once it is idle after each step,
and the slope."""

from __future__ import annotations

import statistics
import time
from typing import Any

from benchmarks.common import log, mib
from benchmarks.harness import Bench


async def run(bench: Bench, results: dict[str, Any]) -> None:
    results["rss_slope"] = await rss_slope(bench)


async def rss_slope(bench: Bench) -> dict[str, Any]:
    """ModelSyncs added `--rss-step` at a time up to `--rss-max`, in namespaces the fake
    does not watch; the operator's RSS once it is idle after each step."""
    args = bench.args
    points = [{"syncs": bench.syncs_alive, **bench.rss()}]
    steps = []
    step = 0
    while bench.syncs_alive < args.rss_max:
        count = min(args.rss_step, args.rss_max - bench.syncs_alive)
        namespace = f"bench-rss-{step}"
        log(f"rss: {count} more ModelSyncs at once ({bench.syncs_alive} so far)")
        triples = await bench.prepare(namespace, count)
        phase = await bench.run_syncs(namespace, triples, None, until_ready=False)
        t0 = time.monotonic()
        settled = await bench.settle(bench.procs.operator, started=t0, within=60.0)
        points.append({"syncs": bench.syncs_alive, **bench.rss()})
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
