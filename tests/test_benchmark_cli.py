"""The benchmark is not run by `make test` (it takes minutes), but it must not rot: it imports
and parses its arguments."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path


def test_the_benchmark_imports_and_answers_help() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "benchmarks.operator_bench", "--help"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert "--syncs" in done.stdout and "--fake-timings" in done.stdout


def test_the_audit_log_is_read_across_the_api_servers_rotation(tmp_path: Path) -> None:
    """kube-apiserver renames its audit log at 100 MB and starts a new one: the reader finishes
    the renamed file and goes on with the new one, losing no line and parsing none twice."""
    from benchmarks.common import OPERATOR_USER, AuditLog

    def line(i: int) -> str:
        event = {
            "stage": "ResponseComplete",
            "requestReceivedTimestamp": f"2026-12-07T03:00:{i:02d}.000000Z",
            "stageTimestamp": f"2026-12-07T03:00:{i:02d}.250000Z",
            "user": {"username": OPERATOR_USER},
            "verb": "patch",
            "objectRef": {"resource": "modelsyncs", "subresource": "status", "name": f"s{i}"},
            "responseStatus": {"code": 200},
        }
        return json.dumps(event) + "\n"

    path = tmp_path / "audit.log"
    path.write_text(line(0) + line(1)[:20])  # the second line still being written
    audit = AuditLog(path)
    assert [e.name for e in audit.poll()] == ["s0"]
    with path.open("a") as stream:
        stream.write(line(1)[20:] + line(2))
    path.rename(tmp_path / "audit-2026-12-07T03-00-03.log")
    path.write_text(line(3))
    entries = audit.poll()
    audit.close()
    assert [e.name for e in entries] == ["s0", "s1", "s2", "s3"]
    assert entries[3].resource == "modelsyncs/status" and entries[3].seconds == 0.25


def test_the_catalog_phase_reads_the_operators_counters_and_reports_its_targets() -> None:
    from benchmarks.phases.catalog import catalog_metrics, repositories
    from benchmarks.report import catalog_targets

    text = (
        "# HELP modelfs_catalog_lookups_total ...\n"
        'modelfs_catalog_lookups_total{answer="CatalogEntry"} 40.0\n'
        'modelfs_catalog_lookups_total{answer="Unavailable"} 2.0\n'
        "modelfs_catalog_shared_total 17.0\n"
        "modelfs_catalog_shared_created 1.7e9\n"
    )
    assert catalog_metrics(text) == {
        "lookups CatalogEntry": 40.0,
        "lookups Unavailable": 2.0,
        "shared": 17.0,
    }
    assert repositories(200) == 20 and repositories(3) == 1

    def phase(median: float, writes: float, cpu: float) -> dict[str, object]:
        return {
            "syncs": 200,
            "dataset_latency": {"median_ms": median, "p99_ms": median * 3},
            "writes": {"per_sync": writes},
            "cpu_ms_per_sync": {"operator": cpu},
        }

    on = phase(120.0, 3.4, 6.0) | {
        "catalog": {
            "repositories": 40,
            "lookups": 40.0,
            "lookups_per_sync": 0.2,
            "shared": 60.0,
            "kept_answers": 100.0,
            "catalog_requests_per_sync": 0.2,
            "statuses": {"with_size": 200, "with_revision": 200},
        }
    }
    rows = catalog_targets({"catalog": on, "catalog_off": phase(100.0, 3.4, 5.0)})
    assert [r["ok"] for r in rows] == [True, True, None, None]
    assert rows[2]["measured"] == "+20 ms (100.0 -> 120.0); +60 ms (300.0 -> 360.0)"
    assert rows[3]["measured"].startswith("+0 writes (3.4 -> 3.4); +1 ms")
