"""steady: `--syncs` ModelSyncs created at `--rate` per second; for each, the time from the
client sending its create to the client seeing (by watch) its Dataset ADDED and its
status.phase READY. API writes and CPU of the operator over the phase, per ModelSync."""

from __future__ import annotations

from typing import Any

from benchmarks.common import STEADY_NS, log
from benchmarks.harness import Bench
from benchmarks.report import brief


async def run(bench: Bench, results: dict[str, Any]) -> None:
    args = bench.args
    log(f"steady: {args.syncs} ModelSyncs at {args.rate}/s")
    triples = await bench.prepare(STEADY_NS, args.syncs)
    results["steady"] = await bench.run_syncs(STEADY_NS, triples, args.rate)
    log(f"  {brief(results['steady'])}")
