"""The ModelSync round logic, without a cluster: one round at a time, retries, schedules."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from modelfs.api.v1 import ModelSync
from modelfs.api.v1.reasons import ROUND_REQUESTED as REQUESTED
from modelfs.api.v1.reasons import ROUND_RETRY as RETRY
from modelfs.api.v1.reasons import ROUND_SCHEDULED as SCHEDULED
from modelfs.controllers.modelsync import (
    plan_round,
    round_state,
    rounds_verdict,
    view_dataset,
    with_failure_time,
)
from modelfs.controllers.status import parse_duration, status_changes
from modelfs.pkg.dataset import drift_patch, needs_apply

NOW = datetime(2026, 11, 27, 12, 0, tzinfo=UTC)


def stamp(seconds_ago: float) -> str:
    return (NOW - timedelta(seconds=seconds_ago)).strftime("%Y-%m-%dT%H:%M:%SZ")


def sync(status: dict[str, Any] | None = None, **spec: Any) -> ModelSync:
    return ModelSync.model_validate(
        {
            "metadata": {"name": "s", "namespace": "ns", "uid": "u"},
            "spec": {"modelRef": "m", "version": "v1", **spec},
            "status": status or {},
        }
    )


def dataset(round_: int = 1, **status: Any) -> dict[str, Any]:
    return {"metadata": {"name": "m-v1"}, "spec": {"dataSyncRound": round_}, "status": status}


def ended(round_: int, ok: bool, seconds_ago: float = 0) -> dict[str, Any]:
    return {
        "round": round_,
        "jobName": f"dataset-m-v1-round-{round_}",
        "startTime": stamp(seconds_ago + 10),
        "endTime": stamp(seconds_ago),
        "succeed": ok,
    }


READY = dataset(
    1, phase="READY", lastSucceedRound=1, syncRoundStatuses=[ended(1, True)], lastSyncTime=stamp(0)
)
FAILED = dataset(
    1,
    phase="FAILED",
    syncRoundStatuses=[ended(1, False, seconds_ago=30)],
    conditions=[
        {"type": "JobStatus", "status": "False", "reason": "JobStatusReady", "message": "x"}
    ],
)


def test_a_new_dataset_starts_at_round_one_and_serves_the_trigger() -> None:
    plan = plan_round(sync(syncRound=4), None, NOW)
    assert (plan.reason, plan.observed_sync_round, plan.attempts) == (None, 4, 0)


def test_the_transient_failed_before_a_job_is_waiting_not_failure() -> None:
    raised = dataset(2, phase="FAILED", lastSucceedRound=1, syncRoundStatuses=[ended(1, True)])
    assert round_state(view_dataset(raised)) == "waiting"


def test_a_raised_trigger_moves_one_round_and_records_the_trigger() -> None:
    plan = plan_round(sync({"observedSyncRound": 1}, syncRound=7), view_dataset(READY), NOW)
    assert (plan.reason, plan.observed_sync_round) == (REQUESTED, 7)


def test_a_trigger_during_a_round_waits_for_it_to_end() -> None:
    running = dataset(1, phase="PROCESSING", inProcessing=True, inProcessingRound=1)
    plan = plan_round(sync({"observedSyncRound": 1}, syncRound=2), view_dataset(running), NOW)
    assert plan.reason is None and plan.observed_sync_round == 1


def test_a_failed_round_is_retried_after_the_backoff_doubling() -> None:
    early = plan_round(
        sync({"observedSyncRound": 1, "attempts": 1}, retry={"backoff": "20s"}),
        view_dataset(FAILED),
        NOW,
    )
    assert early.reason is None and early.due_in == 10  # 20s * 2 after a failure 30s ago
    due = plan_round(
        sync({"observedSyncRound": 1, "attempts": 0}, retry={"backoff": "20s"}),
        view_dataset(FAILED),
        NOW,
    )
    assert (due.reason, due.attempts) == (RETRY, 1)


def test_retries_stop_at_the_limit() -> None:
    plan = plan_round(
        sync({"observedSyncRound": 1, "attempts": 2}, retry={"limit": 2, "backoff": "1s"}),
        view_dataset(FAILED),
        NOW,
    )
    assert plan.reason is None and plan.exhausted and plan.attempts == 2


def test_success_resets_attempts_and_the_schedule_starts_a_round_when_due() -> None:
    old = dataset(1, phase="READY", lastSucceedRound=1, lastSyncTime=stamp(3600))
    plan = plan_round(sync({"attempts": 2}, schedule={"interval": "30m"}), view_dataset(old), NOW)
    assert (plan.reason, plan.attempts) == (SCHEDULED, 0)
    fresh = plan_round(sync(schedule={"interval": "2h"}), view_dataset(old), NOW)
    assert fresh.reason is None and fresh.due_in == 3600


def test_needs_apply_only_when_owned_fields_differ() -> None:
    desired = {
        "metadata": {"labels": {"a": "b"}, "ownerReferences": [{"uid": "u"}]},
        "spec": {
            "source": {"type": "HTTP", "uri": "http://x/y", "options": {}},
            "dataSyncRound": 1,
        },
    }
    stored: dict[str, Any] = {
        "metadata": {"labels": {"a": "b", "extra": "x"}, "ownerReferences": [{"uid": "u"}]},
        "spec": {
            "source": {"type": "HTTP", "uri": "http://x/y"},
            "dataSyncRound": 1,
            "mountOptions": {"path": "/"},
        },
    }
    assert not needs_apply(stored, desired)
    assert needs_apply({**stored, "spec": {**stored["spec"], "dataSyncRound": 2}}, desired)
    assert needs_apply({**stored, "spec": {**stored["spec"], "secretRef": "s"}}, desired)
    assert needs_apply(None, desired)


def test_status_changes_are_minimal() -> None:
    assert status_changes({"a": 1, "b": 2}, {"a": 1, "b": 2}) == {}
    assert status_changes({"a": 1, "b": 2}, {"a": 1, "b": 3, "c": 4}) == {"b": 3, "c": 4}
    assert status_changes({"a": 1, "gone": 2}, {"a": 1}) == {"gone": None}


@settings(max_examples=300)
@given(
    st.lists(
        st.tuples(st.integers(0, 500), st.sampled_from(["h", "m", "s", "ms"])),
        min_size=1,
        max_size=4,
    )
)
def test_parse_duration_sums_the_parts(parts: list[tuple[int, str]]) -> None:
    scale = {"h": 3600.0, "m": 60.0, "s": 1.0, "ms": 0.001}
    text = "".join(f"{n}{unit}" for n, unit in parts)
    assert abs(parse_duration(text).total_seconds() - sum(n * scale[u] for n, u in parts)) < 1e-6


@settings(max_examples=300)
@given(
    st.integers(1, 5),
    st.integers(1, 5),
    st.sampled_from(["processing", "succeeded", "failed", "waiting"]),
    st.integers(0, 4),
)
def test_never_more_than_one_round_ahead(
    trigger: int, observed: int, state: str, attempts: int
) -> None:
    """Whatever asks for rounds, a plan moves the Dataset by at most one, and never while a round
    is running or about to run."""
    bodies = {
        "processing": dataset(3, phase="PROCESSING", inProcessing=True),
        "succeeded": dataset(3, phase="READY", lastSucceedRound=3, lastSyncTime=stamp(10**6)),
        "failed": dataset(3, phase="FAILED", syncRoundStatuses=[ended(3, False, 10**6)]),
        "waiting": dataset(3, phase="FAILED", lastSucceedRound=2),
    }
    plan = plan_round(
        sync(
            {"observedSyncRound": observed, "attempts": attempts},
            syncRound=max(trigger, 1),
            schedule={"interval": "1m"},
            retry={"limit": 3, "backoff": "1s"},
        ),
        view_dataset(bodies[state]),
        NOW,
    )
    if state in ("processing", "waiting"):
        assert plan.reason is None
    if plan.reason == RETRY:
        assert plan.attempts == attempts + 1 <= 3
    assert plan.observed_sync_round >= observed


# ----------------------------------------------------------------------------- the real engine
# What the real Dataset controller does (docs/dataset-controller.md), as the pure logic sees it.

WRITTEN_BACK_TEMPLATE: dict[str, Any] = {"metadata": {}, "spec": {"resources": {}}, "status": {}}


def desired(template: dict[str, Any] | None = None) -> dict[str, Any]:
    spec: dict[str, Any] = {
        "source": {"type": "HTTP", "uri": "https://h/d"},
        "dataSyncRound": 1,
    }
    if template is not None:
        spec["volumeClaimTemplate"] = template
    return {"metadata": {"name": "m-v1", "labels": {"a": "b"}}, "spec": spec}


def written_back(manifest: dict[str, Any]) -> dict[str, Any]:
    """The Dataset after the controller's finalizer Update (dataset-controller.md#finalizer)."""
    stored: dict[str, Any] = json.loads(json.dumps(manifest))
    spec = stored["spec"]
    spec["resources"] = {}
    template = spec.setdefault("volumeClaimTemplate", {})
    template.setdefault("metadata", {})
    template.setdefault("status", {})
    template.setdefault("spec", {}).setdefault("resources", {})
    spec["source"].setdefault("options", {})
    return stored


def test_the_finalizer_write_back_is_no_change_to_apply_or_revert() -> None:
    """B1 and B2: no re-apply, no 'Reverted a hand edit' after the controller's Update."""
    template = {
        "spec": {
            "accessModes": ["ReadWriteOnce"],
            "resources": {"requests": {"storage": "20Gi"}},
        }
    }
    for want in (desired(), desired(template)):
        stored = written_back(want)
        assert not needs_apply(stored, want)
        assert drift_patch(stored, want) is None
    assert written_back(desired())["spec"]["volumeClaimTemplate"] == WRITTEN_BACK_TEMPLATE


def test_a_real_hand_edit_is_still_seen_and_reverted() -> None:
    want = desired()
    edited = written_back(want)
    edited["spec"]["volumeClaimTemplate"]["spec"]["resources"] = {"requests": {"storage": "1Gi"}}
    assert needs_apply(edited, want)
    assert drift_patch(edited, want) == {"spec": {"volumeClaimTemplate": None}}
    edited = written_back(want)
    edited["spec"]["source"]["options"] = {"syncMode": "copy"}
    assert needs_apply(edited, want)


def failed_without_end(round_: int = 1, started_ago: float = 200) -> dict[str, Any]:
    """A failed round as the real controller leaves it: no endTime, no succeed, no False
    condition, no message (docs/dataset-controller.md#failed-round)."""
    return dataset(
        round_,
        phase="FAILED",
        lastSucceedRound=round_ - 1 if round_ > 1 else None,
        syncRoundStatuses=[
            {"round": round_, "jobName": f"j-{round_}", "startTime": stamp(started_ago)}
        ],
        conditions=[{"type": "JobStatus", "status": "True", "reason": "JobStatusReady"}],
    )


def test_the_backoff_counts_from_when_the_failure_was_seen_not_the_round_start() -> None:
    """B5: a loader that took 200 s to fail is retried a backoff after the failure."""
    view = with_failure_time(view_dataset(failed_without_end()), None, NOW)
    assert round_state(view) == "failed"
    assert view.failed_at == NOW
    plan = plan_round(sync({"observedSyncRound": 1}, retry={"backoff": "1m"}), view, NOW)
    assert plan.reason is None and plan.due_in == 60
    # Seen 61 s ago and recorded in status.lastFailureTime: due now.
    view = with_failure_time(view_dataset(failed_without_end()), stamp(61), NOW)
    plan = plan_round(sync({"observedSyncRound": 1}, retry={"backoff": "1m"}), view, NOW)
    assert plan.reason == RETRY


def test_a_failure_time_of_an_older_round_does_not_count() -> None:
    view = with_failure_time(view_dataset(failed_without_end(2, started_ago=30)), stamp(100), NOW)
    assert view.failed_at == NOW


def test_types_without_a_loader_job_never_raise_the_round() -> None:
    """B6: PVC, NFS and REFERENCE run no Job; a trigger is served without a round."""
    for type_ in ("REFERENCE", "PVC", "NFS"):
        body = dataset(1, phase="READY", lastSucceedRound=1)
        body["spec"]["source"] = {"type": type_, "uri": "x://y/z"}
        view = view_dataset(body)
        assert not view.loader_job and round_state(view) == "succeeded"
        trigger = sync({"observedSyncRound": 1}, syncRound=2, schedule={"interval": "1h"})
        plan = plan_round(trigger, view, NOW)
        assert (plan.reason, plan.observed_sync_round, plan.due_in) == (None, 2, None)
        verdict = rounds_verdict(trigger, view, type_)
        assert verdict is not None and (verdict.ready, verdict.reason) == (False, "NoLoaderJob")
        assert "syncRound 2" in verdict.message and "every 1h" in verdict.message
        assert rounds_verdict(sync(), view, type_) is None
        body["status"]["phase"] = "FAILED"
        assert round_state(view_dataset(body)) == "failed"
        assert plan_round(trigger, view_dataset(body), NOW).reason is None  # no retry round


def test_types_with_a_loader_job_still_raise_it() -> None:
    body = json.loads(json.dumps(READY))
    body["spec"]["source"] = {"type": "HTTP", "uri": "https://h/d"}
    view = view_dataset(body)
    assert view.loader_job
    trigger = sync({"observedSyncRound": 1}, syncRound=2)
    assert plan_round(trigger, view, NOW).reason == REQUESTED
    assert rounds_verdict(trigger, view, "HTTP") is None
