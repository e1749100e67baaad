"""The operator's figures on a local control plane: CPU and API writes per ModelSync, latency,
throughput against the API server's own floor, memory, restart and idle cost, each printed next
to its target (issues 11 and 19). This module is the driver: the arguments, the processes, and
the phases in order; each phase is a module of benchmarks/phases/, the shared client side is
benchmarks/harness.py, the report and the targets benchmarks/report.py.

    python -m benchmarks.operator_bench [--syncs 100] [--rate 10] [--catalog-syncs 200]
        [--scale-syncs 1000] [--real-syncs 1000] [--rss-max 5000] [--idle 60] [--no-restart]
        [--no-failover] [--profile FILE]
        [--json out.json] [--keep]

It starts its own ControlPlane (etcd, kube-apiserver with a Metadata audit log,
kube-controller-manager), installs the CRDs, starts the fake Dataset controller with instant
timings, and runs `modelfs run` as its own ServiceAccount (the generated ClusterRole of
config/rbac/role.yaml when it exists, else cluster-admin). The fake watches only the namespaces
it is told to. Then, each phase in its own namespace:

1. steady (phases/steady.py): `--syncs` ModelSyncs created at `--rate` per second.
2. burst (phases/burst.py): the same, all created at once.
   catalog (phases/catalog.py): `--catalog-syncs` ModelSyncs at once on sources with
   `catalog: Disabled`, then as many looked up in a local Hub and file server first: the
   catalog's lookups, cache and added latency, writes and CPU per ModelSync.
3. floor (phases/floor.py): as many Datasets as the scale phase's ModelSyncs, created directly
   in a namespace nothing acts on: the API server's own time.
4. real (phases/real.py): `--real-syncs` ModelSyncs at once with the REAL Dataset controller
   and the pod simulator at work from the start; first, with `--real-floor`, the floor again
   with the real controller at work on the Datasets.
5. scale (phases/scale.py): `--scale-syncs` ModelSyncs at once; the fake joins once every
   Dataset exists, so the time to the last Dataset is the operator's and the API server's.
6. restart (phases/restart.py): the operator stopped and started again with those READY.
7. idle (phases/idle.py): the operator's requests over `--idle` seconds.
8. rss (phases/rss.py): ModelSyncs added `--rss-step` at a time up to `--rss-max`: the slope.
9. failover (phases/failover.py): two replicas with leader election on those objects: the
   standby's CPU and RSS, and create -> Dataset right after a SIGKILL and a SIGTERM of the
   leader (`--no-failover` skips it).

`--profile FILE` runs the operator under cProfile (benchmarks/profiled.py), on for one phase
(`--profile-phase`), and prints the top functions. Everything it started (operator, fake, real
Dataset controller, control plane) is stopped on exit, Ctrl-C or error.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import shutil
import signal
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from benchmarks.cluster import bind_operator, install
from benchmarks.common import (
    BURST_NS,
    CATALOG_NS,
    CATALOG_OFF_NS,
    FAKE_TIMINGS,
    MAX_VERSIONS,
    OPERATOR_USER,
    SERVICE_ACCOUNT,
    STEADY_NS,
    SYSTEM_NAMESPACE,
    Processes,
    ProfiledOperator,
    load_average,
    log,
    mib,
)
from benchmarks.harness import Bench
from benchmarks.phases import (
    burst,
    catalog,
    failover,
    floor,
    idle,
    real,
    restart,
    rss,
    scale,
    steady,
)
from benchmarks.report import report, targets
from modelfs.testing.controlplane import ControlPlane, ControlPlaneError, find_binaries
from modelfs.testing.fake_dataset.process import FakeDatasetController
from modelfs.testing.operator import OperatorProcess


async def run_phases(bench: Bench) -> dict[str, Any]:
    """Every phase the arguments ask for, in order; the figures with their targets."""
    args = bench.args
    results: dict[str, Any] = {
        "config": {
            "syncs": args.syncs,
            "catalog_syncs": args.catalog_syncs,
            "rate_per_s": args.rate,
            "scale_syncs": args.scale_syncs,
            "real_syncs": args.real_syncs,
            "real_floor": args.real_floor,
            "real_until": args.real_until,
            "real_round": args.real_round,
            "rss_max": args.rss_max,
            "rss_step": args.rss_step,
            "versions_per_model": args.versions_per_model,
            "concurrency": args.concurrency,
            "fake_timings": args.fake_timings,
            "rbac": args.rbac_used,
            "idle_s": args.idle,
            "profile": str(args.profile) if args.profile else None,
            "profile_phase": args.profile_phase if args.profile else None,
            "operator_code": args.operator_code,
            "cpus": os.cpu_count(),
            "load_average_1m_at_start": load_average(),
        }
    }
    started = time.monotonic()
    machine = bench.machine.snapshot()
    await asyncio.sleep(2)
    results["rss_baseline"] = bench.rss()
    log(f"operator RSS with no objects: {mib(results['rss_baseline']['rss'])}")

    if args.syncs:
        await steady.run(bench, results)
        if not args.no_burst:
            await burst.run(bench, results)
        log("deleting the steady and burst namespaces")
        gone = await bench.delete_namespaces([STEADY_NS, BURST_NS])
        if not gone:
            log("  namespaces still there after 120s; the next phases hold more objects")
        bench.syncs_alive = 0
        await bench.audit.quiet(OPERATOR_USER, seconds=2.0, within=30.0)
    if args.catalog_syncs:
        await catalog.run(bench, results)

    if args.scale_syncs or args.real_syncs:
        await floor.run(bench, results)
    if args.real_syncs:
        await real.run(bench, results)
    if args.scale_syncs:
        await scale.run(bench, results)
        if not args.no_restart:
            await restart.run(bench, results)
    if args.idle:
        await idle.run(bench, results)
    if args.scale_syncs and args.rss_max > bench.syncs_alive:
        await rss.run(bench, results)
    if args.scale_syncs and not args.no_failover:
        await failover.run(bench, results)
    results["operator_alive"] = bench.procs.operator.alive()
    results["duration_s"] = round(time.monotonic() - started, 1)
    results["others_cpu_cores"] = bench.machine.others_cores(machine)
    results["targets"] = targets(results)
    return results


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.operator_bench",
        description="CPU and API writes per ModelSync, latency, throughput against the API "
        "server's floor, memory, restart and idle cost of `modelfs run` on a local control plane "
        "with the fake Dataset controller, each next to its target.",
    )
    parser.add_argument("--syncs", type=int, default=100, help="ModelSyncs per latency phase")
    parser.add_argument("--rate", type=float, default=10.0, help="creates per second (steady)")
    parser.add_argument("--no-burst", action="store_true", help="skip the all-at-once phase")
    parser.add_argument(
        "--catalog-syncs",
        type=int,
        default=200,
        help="ModelSyncs at once looked up in local catalogs (a Hub, a file server), and as many "
        "on sources with catalog: Disabled for comparison (0: skip)",
    )
    parser.add_argument(
        "--scale-syncs",
        type=int,
        default=1000,
        help="ModelSyncs created at once for the floor ratio, RSS and restart (0: skip those)",
    )
    parser.add_argument(
        "--real-syncs",
        type=int,
        default=1000,
        help="ModelSyncs created at once with the real Dataset controller and the pod simulator "
        "at work from the start (0: skip); its ratio to the floor has its own target",
    )
    parser.add_argument(
        "--real-floor",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="also time as many Datasets created directly while the real controller works on "
        "them (the API server and the Dataset controller without the operator)",
    )
    parser.add_argument(
        "--real-until",
        choices=["datasets", "ready"],
        default="datasets",
        help="the real phase ends once every Dataset exists, or once every ModelSync is READY "
        "(minutes: the real controller's pace)",
    )
    parser.add_argument(
        "--real-round",
        type=float,
        default=1.0,
        help="seconds a simulated loader Pod runs (the pod simulator's round) in the real phase",
    )
    parser.add_argument(
        "--rss-max",
        type=int,
        default=5000,
        help="add ModelSyncs up to this many for the RSS slope (at most --scale-syncs: skip)",
    )
    parser.add_argument(
        "--rss-step", type=int, default=1000, help="ModelSyncs added per step of the RSS slope"
    )
    parser.add_argument(
        "--no-restart", action="store_true", help="skip the restart with the scale phase's READY"
    )
    parser.add_argument(
        "--no-failover",
        action="store_true",
        help="skip the failover of two elected replicas (SIGKILL, SIGTERM, the standby's cost)",
    )
    parser.add_argument(
        "--versions-per-model",
        type=int,
        default=50,
        help=f"versions per Model (at most {MAX_VERSIONS})",
    )
    parser.add_argument(
        "--concurrency",
        type=int,
        default=20,
        help="creates in flight at most (bursts, and the floor's Datasets)",
    )
    parser.add_argument(
        "--idle", type=float, default=60.0, help="seconds of the idle check (0: skip)"
    )
    parser.add_argument(
        "--converge-timeout", type=float, default=600.0, help="seconds to wait for READY"
    )
    parser.add_argument(
        "--fake-timings",
        choices=sorted(FAKE_TIMINGS),
        default="instant",
        help="instant: 0 s rounds; test: the fake's defaults (0.3 s rounds); either way READY "
        "comes at the fake's next 5 s poll of a running round, as with the real controller",
    )
    parser.add_argument(
        "--rbac",
        choices=["auto", "config", "cluster-admin"],
        default="auto",
        help="the operator's role: config/rbac/role.yaml when it exists (auto), or cluster-admin",
    )
    parser.add_argument(
        "--profile",
        type=Path,
        metavar="FILE",
        help="run the operator under cProfile (benchmarks/profiled.py), on during one phase "
        "only (--profile-phase), write the stats to FILE (pstats) and print the top functions; "
        "its CPU and times are then inflated. E.g. --profile burst.prof --syncs 0 "
        "--scale-syncs 300 --rss-max 0 --no-restart --idle 0",
    )
    parser.add_argument(
        "--profile-phase",
        choices=["scale", "real", "restart"],
        default="scale",
        help="what --profile profiles: the scale phase or the real phase (creation -> READY), "
        "or the restarted operator from healthy to idle",
    )
    parser.add_argument(
        "--profile-top", type=int, default=5, help="functions listed per profile table"
    )
    parser.add_argument("--json", type=Path, help="write the figures as JSON to this path")
    parser.add_argument(
        "--keep", action="store_true", help="keep the control plane's folder and the logs"
    )
    args = parser.parse_args(argv)
    if not 1 <= args.versions_per_model <= MAX_VERSIONS:
        parser.error(f"--versions-per-model must be 1..{MAX_VERSIONS}")
    if args.rate <= 0:
        parser.error("--rate must be > 0")
    if args.rss_step <= 0:
        parser.error("--rss-step must be > 0")
    if args.catalog_syncs < 0:
        parser.error("--catalog-syncs must be >= 0")
    if args.profile and args.profile_phase == "real" and not args.real_syncs:
        parser.error("--profile-phase real needs the real phase: --real-syncs > 0")
    if args.profile and args.profile_phase != "real" and not args.scale_syncs:
        parser.error("--profile profiles the scale phase or the restart: --scale-syncs > 0")
    if args.profile and args.profile_phase == "restart" and args.no_restart:
        parser.error("--profile-phase restart needs the restart (no --no-restart)")
    if args.profile:
        args.profile = args.profile.resolve()
    return args


OPERATOR_CODE = ("api", "controllers", "pkg", "modelfs")


def operator_code() -> str:
    """Where the `modelfs` that `python -m modelfs` runs (as the operator does) comes from, and
    its commit: the figures must say which code they measure."""
    import subprocess

    found = subprocess.run(
        [
            sys.executable,
            "-c",
            "import modelfs, os; print(os.path.dirname(modelfs.__file__))",
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    folder = Path(found.stdout.strip() or ".").parent

    def git(*args: str) -> str:
        done = subprocess.run(
            ["git", "-C", str(folder), *args], capture_output=True, text=True, check=False
        )
        return done.stdout.strip()

    head = git("log", "-1", "--format=%h")
    changed = git("log", "-1", "--format=%h %s", "--", *OPERATOR_CODE)
    dirty = git("status", "--porcelain", "--", *OPERATOR_CODE)
    return f"{folder} at {head}, api/controllers/pkg/modelfs last changed by {changed[:70]}" + (
        " (with local changes)" if dirty else ""
    )


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        binaries = find_binaries()
    except ControlPlaneError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    args.operator_code = operator_code()
    logs = Path(tempfile.mkdtemp(prefix="modelfs-bench-"))
    failed = True

    def remove_logs() -> None:
        if failed or args.keep:
            kept = f"{logs}" + (f" and {cp.workdir}" if args.keep and cp.workdir else "")
            print(f"logs kept in {kept}", file=sys.stderr)
        else:
            shutil.rmtree(logs, ignore_errors=True)

    cp = ControlPlane(binaries, keep_workdir=args.keep)
    procs: Processes | None = None
    with contextlib.ExitStack() as stack:
        stack.callback(remove_logs)  # runs last, once everything has stopped
        try:
            log(f"operator code: {args.operator_code}")
            log(f"starting the control plane (logs in {logs})")
            stack.callback(cp.stop)
            cp.start()
            crds = asyncio.run(install(cp))
            log(f"installed {len(crds)} CRDs")
            args.rbac_used = bind_operator(cp, args.rbac)
            kubeconfig = cp.service_account_kubeconfig(
                SYSTEM_NAMESPACE,
                SERVICE_ACCOUNT,
                logs / "operator.kubeconfig",
                create=False,
                expiration_seconds=6 * 3600,
            )
            # The fake watches only the namespaces it is told to: the scale phase's joins once
            # its Datasets exist, the RSS steps' never do.
            fake_namespaces = [STEADY_NS, BURST_NS]
            if args.catalog_syncs:
                fake_namespaces += [CATALOG_OFF_NS, CATALOG_NS]
            fake = FakeDatasetController(
                cp.kubeconfig,
                namespaces=fake_namespaces,
                timings=FAKE_TIMINGS[args.fake_timings],
                log_path=logs / "fake-dataset.log",
            )
            stack.callback(lambda: procs.fake.stop() if procs else fake.stop())
            fake.start()
            if args.profile and args.profile_phase in ("scale", "real"):
                operator: OperatorProcess = ProfiledOperator(
                    kubeconfig, log_path=logs / "operator.log", profile_out=args.profile
                )
            else:
                operator = OperatorProcess(kubeconfig, log_path=logs / "operator.log")
            stack.callback(lambda: procs.operator.stop() if procs else operator.stop())
            operator.start()
            procs = Processes(operator, fake, fake_namespaces)
            stack.callback(procs.stop_engine)
            log(f"operator running as {OPERATOR_USER} ({args.rbac_used})")
            results = asyncio.run(run_bench(args, cp, procs, kubeconfig, logs))
            if args.json:  # before the report: a report that fails loses no figure
                args.json.write_text(json.dumps(results, indent=2, default=str) + "\n")
            print(report(results), flush=True)
            if args.json:
                print(f"\n  figures written to {args.json}")
            failed = False
            return 0
        except KeyboardInterrupt:
            print(
                "\ninterrupted: stopping the operator, the fake and the control plane", flush=True
            )
            return 130
        except (ControlPlaneError, RuntimeError) as error:
            print(f"error: {error}", file=sys.stderr)
            return 1
        finally:
            # A second Ctrl-C must not cut the stop short and leave processes behind.
            with contextlib.suppress(ValueError):
                signal.signal(signal.SIGINT, signal.SIG_IGN)


async def run_bench(
    args: argparse.Namespace,
    cp: ControlPlane,
    procs: Processes,
    kubeconfig: Path,
    logs: Path,
) -> dict[str, Any]:
    async with Bench(args, cp, procs, kubeconfig, logs) as bench:
        return await run_phases(bench)


if __name__ == "__main__":
    sys.exit(main())
