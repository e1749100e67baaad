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


def test_the_report_prints_a_catalog_phase_beside_the_others() -> None:
    """The report with every phase's figures (a run's JSON, trimmed): the catalog phase's
    section and targets, and the config's figures still read (a name clash once lost them)."""
    from benchmarks.report import report, targets

    def phase(syncs: int) -> dict[str, object]:
        return {
            "syncs": syncs,
            "created_in_s": 0.1,
            "all_datasets_s": 1.0,
            "ready": syncs,
            "converge_s": 5.0,
            "dataset_latency": {"median_ms": 100.0, "p99_ms": 300.0, "max_ms": 400.0},
            "ready_latency": {"median_ms": 4000.0, "p99_ms": 5000.0, "max_ms": 5500.0},
            "writes": {
                "per_sync": 5.2,
                "by_resource_verb_per_sync": {"events create": 1.0},
                "failed": {},
            },
            "cpu_ms_per_sync": {"operator": 15.0, "fake": 30.0, "dataset_controller": 0.0},
            "load_average_1m": [1.0, 1.5],
            "others_cpu_cores": 0.5,
            "writes_after_last_ready": 0,
            "server_time": {},
            "server_side_breakdown": {},
            "phase_sequences": {"PENDING>PROCESSING>READY": syncs},
            "events_per_sync": {"modelfs ModelSync Synced": 1.0},
        }

    catalog = phase(200) | {
        "catalog": {
            "repositories": 40,
            "metrics": {"lookups CatalogEntry": 40.0, "shared": 152.0},
            "lookups": 40.0,
            "lookups_per_sync": 0.2,
            "shared": 152.0,
            "kept_answers": 8.0,
            "catalog_requests": {"hub": 20, "files": 20},
            "catalog_requests_per_sync": 0.2,
            "catalog_requests_during_off": 0,
            "statuses": {"with_size": 200, "with_revision": 200},
        }
    }
    results: dict[str, object] = {
        "config": {
            "operator_code": "here",
            "fake_timings": "instant",
            "rbac": "operator",
            "cpus": 2,
            "load_average_1m_at_start": 1.0,
            "rate_per_s": 10.0,
            "scale_syncs": 300,
        },
        "burst": phase(100),
        "catalog_off": phase(200),
        "catalog": catalog,
        "rss_baseline": {"rss": 70 << 20},
        "rss_scale": {"rss": 130 << 20, "peak": 140 << 20},
    }
    results["targets"] = targets(results)
    text = report(results)
    assert "catalog phase: 40 repositories" in text
    assert "operator RSS, 300 ModelSyncs READY:" in text
    assert "catalog: lookups for 200 ModelSyncs on 40 repositories" in text
