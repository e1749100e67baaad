"""idle: the operator's writes and reads over `--idle` seconds (one ModelSource of the scale
namespace has a Secret, so the periodic Secret re-check is seen and told apart)."""

from __future__ import annotations

import asyncio
from collections import Counter
from datetime import UTC, datetime
from typing import Any

from benchmarks.common import OPERATOR_USER, READ_VERBS, WRITE_VERBS, log
from benchmarks.harness import Bench


async def run(bench: Bench, results: dict[str, Any]) -> None:
    log(f"idle: watching the operator's requests for {bench.args.idle:.0f}s")
    results["idle"] = await idle(bench, bench.args.idle)
    results["rss_after_idle"] = bench.rss()


async def idle(bench: Bench, seconds: float) -> dict[str, Any]:
    machine = bench.machine.snapshot()
    cpu = bench.cpu()["operator"]
    start = datetime.now(UTC)
    await asyncio.sleep(seconds)
    end = datetime.now(UTC)
    cpu = bench.cpu()["operator"] - cpu
    entries = bench.audit.by(OPERATOR_USER, start, end)
    writes = [e for e in entries if e.verb in WRITE_VERBS]
    reads = [e for e in entries if e.verb in READ_VERBS]
    secret_reads = [e for e in reads if e.resource == "secrets" and e.verb == "get"]
    other_reads = [e for e in reads if e not in secret_reads]
    watches = [
        e
        for e in bench.audit.poll()
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
        "secret_rechecks": len(secret_reads),
        "reads_beyond_secret_rechecks": len(other_reads),
        "other_read_requests": [f"{e.verb} {e.uri} {e.code}" for e in other_reads[:20]],
        "reads_by_resource_verb": dict(Counter(f"{e.resource} {e.verb}" for e in reads)),
        "watches_opened": len(watches),
        "operator_cpu_ms_per_s": round(cpu * 1000 / seconds, 1),
        "others_cpu_cores": bench.machine.others_cores(machine),
    }
