"""burst: `--syncs` ModelSyncs created at once (at most `--concurrency` creates in flight), the
same figures as steady."""

from __future__ import annotations

from typing import Any

from benchmarks.common import BURST_NS, log
from benchmarks.harness import Bench
from benchmarks.report import brief


async def run(bench: Bench, results: dict[str, Any]) -> None:
    log(f"burst: {bench.args.syncs} ModelSyncs at once")
    triples = await bench.prepare(BURST_NS, bench.args.syncs)
    results["burst"] = await bench.run_syncs(BURST_NS, triples, None)
    log(f"  {brief(results['burst'])}")
