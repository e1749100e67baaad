"""scale: `--scale-syncs` ModelSyncs created at once. The fake does not watch their namespace
until every Dataset exists, so the time to the last Dataset is the operator's and the API
server's alone (its ratio to the floor); then the fake takes them to READY. The operator's RSS
with them READY."""

from __future__ import annotations

import asyncio
import signal
from typing import Any

from benchmarks.common import SCALE_NS, log, mib
from benchmarks.harness import Bench
from benchmarks.report import brief, ratio


async def run(bench: Bench, results: dict[str, Any]) -> None:
    args = bench.args
    n = args.scale_syncs
    triples = await bench.prepare(SCALE_NS, n, secret_source=True)
    log(f"scale: {n} ModelSyncs at once (the fake joins once every Dataset exists)")
    profiling = args.profile is not None and args.profile_phase == "scale"
    if profiling:
        args.profile.unlink(missing_ok=True)
        bench.profile_signal(signal.SIGUSR1)
    results["scale"] = await bench.run_syncs(SCALE_NS, triples, None, fake_after_datasets=True)
    if profiling:
        results["profile"] = await bench.profiled(args.profile)
    scale = results["scale"]
    log(
        f"  every Dataset after {scale['all_datasets_s']}s "
        f"({ratio(scale, results['floor'])}x the floor); {brief(scale)}"
    )
    await asyncio.sleep(2)
    results["rss_scale"] = bench.rss()
    log(f"operator RSS with {n} READY: {mib(results['rss_scale']['rss'])}")
