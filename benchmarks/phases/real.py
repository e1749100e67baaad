"""real: `--real-syncs` ModelSyncs created at once with the REAL Dataset controller (v0.1.6,
`modelfs.testing.dataset_engine`) and the pod simulator at work from the start, as in a
cluster: each Dataset goes to PROCESSING (a PVC, a loader Job and its Pod) and READY while the
others are still being created, and the operator mirrors those phases meanwhile. The time to
the last Dataset, divided by the floor, has its own target (issue 19: 5x). With `--real-floor`,
as many Datasets created directly while the controller works on them are timed the same way
first: what the API server and the Dataset controller take together, on the same cores,
without the operator.

The controller watches every namespace (v0.1.6 cannot be narrowed), so it runs during this
phase only, while no other Dataset exists, and its namespaces are deleted before it stops."""

from __future__ import annotations

import asyncio
import signal
from typing import Any

from benchmarks.common import REAL_FLOOR_NS, REAL_NS, log
from benchmarks.harness import Bench
from benchmarks.phases.floor import floor
from benchmarks.report import brief, ratio
from modelfs.testing.dataset_engine import DatasetEngine


async def run(bench: Bench, results: dict[str, Any]) -> None:
    args = bench.args
    n = args.real_syncs
    plain = results.get("floor")
    if plain is None or plain["datasets"] != n:  # the scale phase's floor is of another count
        log(f"floor: {n} Datasets created directly, {args.concurrency} in flight")
        plain = await floor(bench, n)
        log(f"  every Dataset after {plain['all_datasets_s']}s")
    triples = await bench.prepare(REAL_NS, n)
    engine = DatasetEngine(
        bench.cp.kubeconfig,
        log_dir=bench.logs / "dataset-engine",
        namespaces=[REAL_NS, REAL_FLOOR_NS],
        round_duration=args.real_round,
        install_crd=False,
    )
    log("real: starting the real Dataset controller and the pod simulator")
    bench.procs.engine = engine
    try:
        await asyncio.to_thread(engine.start)
        if args.real_floor:
            log(f"real floor: {n} Datasets created directly, the real controller at work on them")
            results["real_floor"] = await floor(bench, n, REAL_FLOOR_NS)
            log(f"  every Dataset after {results['real_floor']['all_datasets_s']}s")
        log(f"real: {n} ModelSyncs at once, the real Dataset controller at work from the start")
        profiling = args.profile is not None and args.profile_phase == "real"
        if profiling:
            args.profile.unlink(missing_ok=True)
            bench.profile_signal(signal.SIGUSR1)
        phase = await bench.run_syncs(
            REAL_NS, triples, None, until_ready=args.real_until == "ready"
        )
        results["real"] = phase
        phase["floor"] = plain
        if profiling:
            results["profile"] = await bench.profiled(args.profile)
        found = ratio(phase, plain)
        log(
            f"  every Dataset after {phase['all_datasets_s']}s ({found}x the floor"
            + (
                f", {ratio(phase, results['real_floor'])}x the floor with the real controller"
                if "real_floor" in results
                else ""
            )
            + f"); {brief(phase)}"
        )
        log("deleting the real phase's namespace")
        if not await bench.delete_namespaces([REAL_NS], within=300.0):
            log("  the namespace is still there after 300s")
        bench.syncs_alive -= n
    finally:
        procs = bench.procs
        procs.retired_cpu["dataset_controller"] = procs.engine_cpu()
        procs.engine = None
        await asyncio.to_thread(engine.stop)
