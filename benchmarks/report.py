"""The operator benchmark's figures next to their targets, and the printed report."""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

from benchmarks.common import (
    MIB,
    TARGET_BURST_WRITES,
    TARGET_CPU_MS,
    TARGET_FLOOR_RATIO,
    TARGET_REAL_FLOOR_RATIO,
    TARGET_RESTART_CPU_S,
    TARGET_RESTART_NEW_SYNC_MS,
    TARGET_RSS_MIB,
    TARGET_STEADY_MEDIAN_MS,
    TARGET_STEADY_P99_MS,
    TARGET_WRITES,
    mib,
)


def ratio(phase: dict[str, Any], floor: dict[str, Any]) -> float | None:
    if not floor.get("all_datasets_s") or not phase.get("datasets"):
        return None
    return round(float(phase["all_datasets_s"]) / float(floor["all_datasets_s"]), 1)


def brief(phase: dict[str, Any]) -> str:
    return (
        f"{phase['ready']}/{phase['syncs']} READY in {phase['converge_s']}s; "
        f"Dataset median {phase['dataset_latency'].get('median_ms')} ms, READY median "
        f"{phase['ready_latency'].get('median_ms')} ms; {phase['writes']['per_sync']} writes/sync, "
        f"{phase['cpu_ms_per_sync']['operator']} ms CPU/sync"
    )


# --------------------------------------------------------------------------- targets


def targets(results: dict[str, Any]) -> list[dict[str, Any]]:
    """Issue 11's figures, each with its target and whether it is met (None: no target, or
    not measured in this run)."""
    rows: list[dict[str, Any]] = []

    def add(figure: str, target: str, measured: str, ok: bool | None) -> None:
        rows.append({"figure": figure, "target": target, "measured": measured, "ok": ok})

    # The real phase is left out: its window runs at the real Dataset controller's pace (minutes
    # to READY, with the resync passes in it); it is listed apart below.
    phases = [(k, results[k]) for k in ("steady", "burst", "catalog", "scale") if k in results]
    if phases:
        cpu = [(k, p["cpu_ms_per_sync"]["operator"]) for k, p in phases]
        add(
            "operator CPU per ModelSync, creation -> READY",
            f"<= {TARGET_CPU_MS:g} ms",
            ", ".join(f"{k} {v} ms" for k, v in cpu),
            all(v <= TARGET_CPU_MS for _, v in cpu),
        )
        writes = [(k, p["writes"]["per_sync"]) for k, p in phases]
        add(
            "operator API writes per ModelSync, creation -> READY, events included",
            f"<= {TARGET_WRITES:g}",
            ", ".join(f"{k} {v}" for k, v in writes),
            all(v is not None and v <= TARGET_WRITES for _, v in writes),
        )
    bursts = [(k, results[k]["writes"]["per_sync"]) for k in ("burst", "catalog") if k in results]
    if bursts:
        add(
            "operator API writes per ModelSync in a burst, round-end Event included (issue 20)",
            f"<= {TARGET_BURST_WRITES:g}",
            ", ".join(f"{k} {v}" for k, v in bursts),
            all(v is not None and v <= TARGET_BURST_WRITES for _, v in bursts),
        )
    if "catalog" in results:
        rows.extend(catalog_targets(results))
    if "steady" in results:
        latency = results["steady"]["dataset_latency"]
        rate = results["config"]["rate_per_s"]
        median, p99 = latency.get("median_ms"), latency.get("p99_ms")
        add(
            f"steady {rate:g}/s: create -> Dataset ADDED, median",
            f"<= {TARGET_STEADY_MEDIAN_MS:g} ms",
            f"{median} ms",
            median is not None and median <= TARGET_STEADY_MEDIAN_MS,
        )
        add(
            f"steady {rate:g}/s: create -> Dataset ADDED, p99",
            f"<= {TARGET_STEADY_P99_MS:g} ms",
            f"{p99} ms",
            p99 is not None and p99 <= TARGET_STEADY_P99_MS,
        )
    n = results["config"]["scale_syncs"]
    if "scale" in results and "floor" in results:
        scale, floor = results["scale"], results["floor"]
        found = ratio(scale, floor)
        add(
            f"{n} ModelSyncs at once: every Dataset, / the API floor",
            f"<= {TARGET_FLOOR_RATIO:g}x",
            f"{found}x ({scale['all_datasets_s']} s / {floor['all_datasets_s']} s)",
            found is not None
            and scale["datasets"] == scale["syncs"]
            and found <= TARGET_FLOOR_RATIO,
        )
    if "real" in results:
        real = results["real"]
        floor = real["floor"]
        found = ratio(real, floor)
        with_controller = ""
        if "real_floor" in results:
            with_controller = (
                f"; {ratio(real, results['real_floor'])}x the floor with the real controller "
                f"({results['real_floor']['all_datasets_s']} s)"
            )
        until = results["config"].get("real_until")
        add(
            f"real Dataset controller: operator CPU, writes per ModelSync, creation -> {until}",
            "(measured)",
            f"{real['cpu_ms_per_sync']['operator']} ms, {real['writes']['per_sync']} "
            f"(window {real['window_s']} s)",
            None,
        )
        add(
            f"{real['syncs']} ModelSyncs at once, real Dataset controller: every Dataset, "
            "/ the API floor",
            f"<= {TARGET_REAL_FLOOR_RATIO:g}x",
            f"{found}x ({real['all_datasets_s']} s / {floor['all_datasets_s']} s){with_controller}",
            found is not None
            and real["datasets"] == real["syncs"]
            and found <= TARGET_REAL_FLOOR_RATIO,
        )
    if "rss_scale" in results:
        rss = results["rss_scale"]["rss"] / MIB
        add(
            f"operator RSS at {n} ModelSyncs READY",
            f"<= {TARGET_RSS_MIB:g} MiB",
            f"{rss:.1f} MiB",
            rss <= TARGET_RSS_MIB,
        )
    if results.get("rss_slope", {}).get("bytes_per_sync") is not None:
        found = results["rss_slope"]
        last = found["points"][-1]
        add(
            f"operator RSS slope, {found['points'][0]['syncs']} -> {last['syncs']} ModelSyncs",
            "(measured)",
            f"{found['bytes_per_sync'] / 1024:.1f} KiB per ModelSync "
            f"({mib(last['rss'])} at {last['syncs']})",
            None,
        )
    if "restart" in results:
        r = results["restart"]
        add(
            f"restart with {r['syncs_before']} READY: writes to them",
            "0",
            str(r["writes_to_existing"]),
            r["writes_to_existing"] == 0,
        )
        add(
            "restart: operator CPU until idle (start-up included)",
            f"<= {TARGET_RESTART_CPU_S:g} s",
            f"{r['cpu_until_idle_s']} s" + ("" if r["idle"] else " (never idle)"),
            r["idle"] and r["cpu_until_idle_s"] <= TARGET_RESTART_CPU_S,
        )
        new = r["new_sync_dataset_ms"]
        add(
            "restart: a ModelSync created once it is healthy -> its Dataset",
            f"<= {TARGET_RESTART_NEW_SYNC_MS / 1000:g} s",
            "never" if new is None else f"{new / 1000:.2f} s",
            new is not None and new <= TARGET_RESTART_NEW_SYNC_MS,
        )
    if "idle" in results:
        idle = results["idle"]
        add(f"idle {idle['seconds']:g} s: writes", "0", str(idle["writes"]), idle["writes"] == 0)
        add(
            f"idle {idle['seconds']:g} s: reads beyond the Secret re-checks",
            "0",
            f"{idle['reads_beyond_secret_rechecks']} (Secret re-checks: {idle['secret_rechecks']})",
            idle["reads_beyond_secret_rechecks"] == 0,
        )
        add(
            f"idle {idle['seconds']:g} s: operator CPU",
            "measured",
            f"{idle['operator_cpu_ms_per_s']} ms/s",
            None,
        )
    return rows


def catalog_targets(results: dict[str, Any]) -> list[dict[str, Any]]:
    """The catalog phase's own figures (issue 20): lookups against the cache's promise (one per
    distinct repository), and what the lookup adds to the same burst with `catalog: Disabled`."""
    on, off = results["catalog"], results.get("catalog_off")
    c = on["catalog"]
    rows = [
        {
            "figure": f"catalog: lookups for {on['syncs']} ModelSyncs on {c['repositories']} "
            "repositories",
            "target": f"<= {c['repositories']}",
            "measured": f"{c['lookups']:g} ({c['lookups_per_sync']} per ModelSync; "
            f"{c['shared']:g} joined in flight, {c['kept_answers']:g} kept answers; "
            f"{c['catalog_requests_per_sync']} requests to the catalogs per ModelSync)",
            "ok": c["lookups"] <= c["repositories"],
        },
        {
            "figure": "catalog: ModelSyncs with SIZE and REVISION",
            "target": str(on["syncs"]),
            "measured": f"{c['statuses']['with_size']} with SIZE, "
            f"{c['statuses']['with_revision']} with REVISION",
            "ok": c["statuses"]["with_size"] == on["syncs"]
            and c["statuses"]["with_revision"] == on["syncs"],
        },
    ]
    if off is not None:
        latency, base = on["dataset_latency"], off["dataset_latency"]

        def added(key: str) -> str:
            if latency.get(key) is None or base.get(key) is None:
                return "-"
            return f"{latency[key] - base[key]:+.0f} ms ({base[key]} -> {latency[key]})"

        rows.append(
            {
                "figure": "catalog: added create -> Dataset ADDED vs Disabled, median; p99",
                "target": "(measured)",
                "measured": f"{added('median_ms')}; {added('p99_ms')}",
                "ok": None,
            }
        )
        extra_writes = round(on["writes"]["per_sync"] - off["writes"]["per_sync"], 2)
        extra_cpu = round(on["cpu_ms_per_sync"]["operator"] - off["cpu_ms_per_sync"]["operator"], 1)
        rows.append(
            {
                "figure": "catalog: added writes; CPU per ModelSync vs Disabled",
                "target": "(measured)",
                "measured": f"{extra_writes:+g} writes ({off['writes']['per_sync']} -> "
                f"{on['writes']['per_sync']}); {extra_cpu:+g} ms "
                f"({off['cpu_ms_per_sync']['operator']} -> {on['cpu_ms_per_sync']['operator']})",
                "ok": None,
            }
        )
    return rows


# --------------------------------------------------------------------------- report


def report(results: dict[str, Any]) -> str:
    c = results["config"]
    lines = [
        "",
        "modelfs operator benchmark",
        f"  operator code: {c['operator_code']}",
        f"  fake Dataset timings: {c['fake_timings']}; operator RBAC: {c['rbac']}",
        f"  real phase: {c.get('real_syncs')} ModelSyncs, the real Dataset controller and the pod "
        f"simulator (rounds of {c.get('real_round')} s), until {c.get('real_until')}",
        f"  {c['cpus']} CPUs, 1-min load average at start {c['load_average_1m_at_start']}; "
        f"other processes used {results.get('others_cpu_cores')} cores on average during the "
        f"run ({results.get('duration_s')} s)",
        "",
    ]
    phases = [
        (k, results[k])
        for k in ("steady", "burst", "catalog_off", "catalog", "scale", "real")
        if k in results
    ]
    if phases:
        header = f"  {'':58}" + "".join(f"{name:>16}" for name, _ in phases)
        lines.append(header)

        def row(label: str, value: Callable[[dict[str, Any]], Any]) -> None:
            cells = "".join(f"{_cell(value(p)):>16}" for _, p in phases)
            lines.append(f"  {label:58}{cells}")

        row("ModelSyncs", lambda p: p["syncs"])
        row("created in (s)", lambda p: p["created_in_s"])
        row("every Dataset after first create (s)", lambda p: p["all_datasets_s"])
        row("READY", lambda p: f"{p['ready']}/{p['syncs']}")
        row("all READY after first create (s)", lambda p: p["converge_s"])
        row("create -> Dataset ADDED median (ms)", lambda p: p["dataset_latency"].get("median_ms"))
        row("create -> Dataset ADDED p99 (ms)", lambda p: p["dataset_latency"].get("p99_ms"))
        row("create -> Dataset ADDED max (ms)", lambda p: p["dataset_latency"].get("max_ms"))
        row("create -> READY median (ms)", lambda p: p["ready_latency"].get("median_ms"))
        row("create -> READY p99 (ms)", lambda p: p["ready_latency"].get("p99_ms"))
        row("create -> READY max (ms)", lambda p: p["ready_latency"].get("max_ms"))
        row("operator writes per ModelSync", lambda p: p["writes"]["per_sync"])
        keys: list[str] = []
        for _, p in phases:
            for key in p["writes"]["by_resource_verb_per_sync"]:
                if key not in keys:
                    keys.append(key)
        for key in keys:
            row(f"  {key}", functools.partial(per_sync_writes, key))
        row("operator CPU per ModelSync (ms)", lambda p: p["cpu_ms_per_sync"]["operator"])
        row(
            "fake Dataset controller CPU per ModelSync (ms)", lambda p: p["cpu_ms_per_sync"]["fake"]
        )
        row(
            "real Dataset controller + pod simulator CPU per ModelSync (ms)",
            lambda p: p["cpu_ms_per_sync"].get("dataset_controller"),
        )
        row("1-min load average, start / end", lambda p: "{} / {}".format(*p["load_average_1m"]))
        row("CPU cores used by other processes", lambda p: p["others_cpu_cores"])
        row("failed writes (>= 400)", lambda p: sum(p["writes"]["failed"].values()))
        row("writes after the last READY", lambda p: p["writes_after_last_ready"])
        row(
            "status writes put off behind a backlog, per ModelSync",
            lambda p: p.get("status_yields_per_sync"),
        )
        row(
            "operator's ModelSync queue depth, max (sampled 1/s)",
            lambda p: p.get("max_queue_depth"),
        )
        for key in ("operator's Dataset applies", "the client's ModelSync creates"):
            row(
                f"API server time of {key}, median / p99 (ms)",
                functools.partial(server_time, key),
            )
        keys = []
        for _, p in phases:
            for key in p["server_side_breakdown"]:
                if key not in keys:
                    keys.append(key)
        if keys:
            lines.append("  where the time to READY goes, median ms (audit log receive times):")
            for key in keys:
                row(f"  {key}", functools.partial(breakdown_median, key))
        lines.append("")
        for name, p in phases:
            sequences = ", ".join(f"{s or '(none)'} x{n}" for s, n in p["phase_sequences"].items())
            lines.append(f"  {name} phase sequences seen: {sequences}")
            events = ", ".join(f"{k} {v}" for k, v in p["events_per_sync"].items())
            lines.append(f"  {name} Events per ModelSync: {events}")
            if p["writes"]["failed"]:
                lines.append(f"  {name} failed writes: {p['writes']['failed']}")
        lines.append("")
    if "catalog" in results:
        looked = results["catalog"]["catalog"]
        lines.append(
            f"  catalog phase: {looked['repositories']} repositories (Hub and HTTP) for "
            f"{results['catalog']['syncs']} ModelSyncs; operator metrics {looked['metrics']}; "
            f"requests the catalog servers saw {looked['catalog_requests']} (during the "
            f"catalog: Disabled burst: {looked['catalog_requests_during_off']})"
        )
    if "floor" in results:
        f = results["floor"]
        lines.append(
            f"  API floor: {f['datasets']} Datasets created directly in {f['created_in_s']} s, "
            f"every one seen by watch after {f['all_datasets_s']} s "
            f"(other processes: {f['others_cpu_cores']} cores)"
        )
    if "real_floor" in results:
        f = results["real_floor"]
        lines.append(
            f"  API floor with the real Dataset controller at work: {f['datasets']} Datasets "
            f"created directly in {f['created_in_s']} s, every one seen by watch after "
            f"{f['all_datasets_s']} s (other processes: {f['others_cpu_cores']} cores)"
        )
    lines.append(f"  {'operator RSS, no objects:':40}{mib(results['rss_baseline']['rss'])}")
    if "rss_scale" in results:
        label = f"operator RSS, {c['scale_syncs']} ModelSyncs READY:"
        lines.append(f"  {label:40}{mib(results['rss_scale']['rss'])}")
        lines.append(f"  {'operator peak RSS (VmHWM):':40}{mib(results['rss_scale']['peak'])}")
    if "restart" in results:
        r = results["restart"]
        lines.append(f"  restart with {r['syncs_before']} ModelSyncs READY:")
        lines.append(
            f"    healthy after {r['healthy_after_s']} s ({r['cpu_at_healthy_s']} s CPU), "
            f"idle after {r['idle_after_s']} s ({r['cpu_until_idle_s']} s CPU)"
            + ("" if r["idle"] else " -- NOT idle by then")
        )
        lines.append(
            f"    new ModelSync created {r['new_sync_created_after_s']} s after the start: "
            f"its Dataset after {r['new_sync_dataset_ms']} ms "
            f"({r['writes_for_new_sync']} writes for it)"
        )
        lines.append(
            f"    writes to the existing objects: {r['writes_to_existing']} "
            f"{r['writes_to_existing_by_resource_verb'] or ''}"
        )
        for request in r["write_requests"]:
            lines.append(f"      {request}")
        lines.append(f"    reads: {r['reads']}")
        if "rss_after_restart" in results:
            lines.append(f"    RSS after the restart: {mib(results['rss_after_restart']['rss'])}")
    if "idle" in results:
        idle = results["idle"]
        lines.append(f"  idle {idle['seconds']:.0f}s after convergence:")
        lines.append(f"    {'operator writes:':38}{idle['writes']}")
        lines.append(f"    {'operator reads (get/list) per s:':38}{idle['reads_per_s']}")
        lines.append(f"    {'  Secret re-checks (get):':38}{idle['secret_rechecks']}")
        lines.append(f"    {'  other reads:':38}{idle['reads_beyond_secret_rechecks']}")
        lines.append(f"    {'operator watches opened:':38}{idle['watches_opened']}")
        for request in idle["write_requests"] + idle["other_read_requests"]:
            lines.append(f"      {request}")
        if "rss_after_idle" in results:
            after = mib(results["rss_after_idle"]["rss"])
            lines.append(f"    {'operator RSS after idle:':38}{after}")
    if "rss_slope" in results:
        s = results["rss_slope"]
        points = ", ".join(f"{p['syncs']}: {mib(p['rss'])}" for p in s["points"])
        lines.append(f"  operator RSS by ModelSyncs (no status beyond the first): {points}")
        for step in s["steps"]:
            lines.append(
                f"    {step['namespace']}: {step['syncs']} at once, every Dataset after "
                f"{step['all_datasets_s']} s, {step['cpu_ms_per_sync']} ms CPU and "
                f"{step['writes_per_sync']} writes per ModelSync; RSS "
                f"{step['rss_bytes_per_sync'] / 1024:+.1f} KiB per ModelSync"
            )
    if results.get("profile"):
        lines.extend(profile_lines(results["profile"], c))
    if not results.get("operator_alive", True):
        lines.append("  WARNING: the operator was not running at the end")
    if results.get("targets"):
        lines.append("")
        lines.append("  issue 11, 19 and 20 targets")
        width = max(len(t["figure"]) for t in results["targets"]) + 2
        for t in results["targets"]:
            verdict = {True: "ok", False: "MISS", None: ""}[t["ok"]]
            lines.append(f"  {t['figure']:{width}}{t['target']:>12}   {verdict:5} {t['measured']}")
        if c.get("profile"):
            lines.append("  (the operator ran under cProfile: its CPU and times are inflated)")
    return "\n".join(lines)


def profile_lines(profile: dict[str, Any], config: dict[str, Any]) -> list[str]:
    n = config["scale_syncs"]
    phase = (
        f"the restart with {n} READY (healthy -> idle)"
        if config.get("profile_phase") == "restart"
        else f"the scale phase ({n} at once, creation -> READY)"
    )
    lines = [
        "",
        f"  profile of {phase}: "
        f"{profile['total_cpu_s']} s CPU in profiled code ({profile['file']})",
        "    by self time (all code):",
    ]
    lines.extend(_profile_rows(profile["self"]))
    for title, key in (
        ("by cumulative time (all code but the event loop and thread pool):", "cumulative"),
        ("by cumulative time (modelfs's own code):", "cumulative_own"),
    ):
        lines.append(f"    {title}")
        lines.extend(_profile_rows(profile.get(key, [])))
    return lines


def _profile_rows(entries: list[dict[str, Any]]) -> list[str]:
    lines = []
    for entry in entries:
        lines.append(
            f"      {entry['percent']:5.1f}%  {entry['seconds']:8.3f} s  {entry['calls']:>9}  "
            f"{entry['function']}"
        )
    return lines


def server_time(key: str, phase: dict[str, Any]) -> Any:
    found = phase.get("server_time", {}).get(key, {})
    if not found.get("n"):
        return None
    return f"{found['median_ms']:.0f} / {found['p99_ms']:.0f}"


def breakdown_median(key: str, phase: dict[str, Any]) -> Any:
    return phase["server_side_breakdown"].get(key, {}).get("median_ms")


def per_sync_writes(key: str, phase: dict[str, Any]) -> Any:
    return phase["writes"]["by_resource_verb_per_sync"].get(key, 0)


def _cell(value: Any) -> str:
    return "-" if value is None else str(value)
