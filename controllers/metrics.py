"""Prometheus metrics of the controllers (served by `modelfs run --metrics-port`)."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

RECONCILES = Counter("modelfs_reconciles_total", "Reconciles run, by kind.", ["kind"])
RECONCILE_ERRORS = Counter(
    "modelfs_reconcile_errors_total", "Reconciles that failed on an API error, by kind.", ["kind"]
)
MODELSYNCS = Gauge("modelfs_modelsyncs", "ModelSyncs by phase.", ["phase"])
SYNC_DURATION = Histogram(
    "modelfs_sync_duration_seconds",
    "From the start of a download round to READY.",
    buckets=(1, 5, 15, 60, 300, 900, 1800, 3600, 7200, 14400, 43200, 86400),
)
RETRIES = Counter("modelfs_retries_total", "Failed rounds retried by raising the Dataset round.")
DATASET_APPLIES = Counter(
    "modelfs_dataset_applies_total", "Server-side applies of Datasets, by cause.", ["cause"]
)
STATUS_WRITES = Counter("modelfs_status_writes_total", "Status patches, by kind.", ["kind"])
SCHEDULE_SKIPS = Counter(
    "modelfs_schedule_skips_total",
    "Schedule ticks that started no download round: the source's catalog showed the upstream "
    "as the last round fetched it.",
)
CATALOG_LOOKUPS = Counter(
    "modelfs_catalog_lookups_total",
    "Catalog lookups made (one per distinct request and Secret), by what they answered.",
    ["answer"],
)
CATALOG_SHARED = Counter(
    "modelfs_catalog_shared_total",
    "ModelSync reconciles that joined a catalog lookup another one had started (no request of "
    "their own). A ModelSync that finds a kept answer counts in neither this nor the lookups.",
)
STATUS_YIELDS = Counter(
    "modelfs_status_yields_total",
    "Status writes put off behind a backlog of new work (`Runtime.yield_status`), by kind.",
    ["kind"],
)


_PHASES: dict[tuple[str, str], str] = {}
_COUNTS: dict[str, int] = {}
"""How many ModelSyncs are in each phase: kept as they change, not recounted (a recount per
change was quadratic in a burst)."""


def set_phase(key: tuple[str, str], phase: str) -> None:
    """Record the phase of one ModelSync and set the per-phase gauge."""
    old = _PHASES.get(key)
    if old != phase:
        _PHASES[key] = phase
        _move(old, phase)


def forget_phase(key: tuple[str, str]) -> None:
    old = _PHASES.pop(key, None)
    if old is not None:
        _move(old, None)


def _move(old: str | None, new: str | None) -> None:
    for phase, step in ((old, -1), (new, 1)):
        if phase is not None:
            _COUNTS[phase] = _COUNTS.get(phase, 0) + step
            if phase in ("PENDING", "PROCESSING", "READY", "FAILED"):
                MODELSYNCS.labels(phase=phase).set(_COUNTS[phase])
