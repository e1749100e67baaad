"""The generic runner (`controllers.runner`) and the reconcile results (`controllers.result`):
how a reconcile's failure is shown and retried, whatever its kind."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import pytest

from modelfs.api.v1 import reasons
from modelfs.controllers.result import TERMINAL_STATUSES, Result, TerminalError, terminal
from modelfs.pkg.kube import ApiError, ConflictError, InvalidError, NotFoundError
from tests.test_reconcile_core import NS, phase, shared_model_cluster


def test_results() -> None:
    assert Result.done().requeue_after is None
    assert Result.after(None) == Result.done()
    assert Result.after(2.5).requeue_after == 2.5


@pytest.mark.parametrize(
    ("error", "reason"),
    [
        (ApiError(400, "400: bad"), reasons.API_BAD_REQUEST),
        (ApiError(403, "403: forbidden"), reasons.API_FORBIDDEN),
        (NotFoundError(404, "404: gone"), reasons.API_NOT_FOUND),
        (InvalidError(422, "422: invalid"), reasons.API_INVALID),
    ],
)
def test_api_errors_that_retrying_cannot_fix_are_terminal(error: ApiError, reason: str) -> None:
    found = terminal(error)
    assert found is not None and found.reason == reason and str(error) in found.message


@pytest.mark.parametrize(
    "error",
    [ConflictError(409, "409"), ApiError(429, "429"), ApiError(500, "500"), ApiError(0, "none")],
)
def test_api_errors_that_retrying_may_fix_are_not_terminal(error: ApiError) -> None:
    assert terminal(error) is None and error.status not in TERMINAL_STATUSES


def test_a_terminal_error_is_its_own_verdict() -> None:
    error = TerminalError("SomeReason", "what the user reads")
    assert terminal(error) is error


async def test_a_forbidden_request_is_shown_on_the_object_and_retried_less_and_less_often(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A 403 (a missing RBAC rule) is no outage: the ModelSync says Forbidden on Ready with the
    server's message and phase FAILED, one Warning event says it, the log has a warning (no
    traceback), and the key is retried after 5 s, then less and less often up to the longest
    backoff, instead of every second.
    Once the request is allowed and the object changes, it goes on at once."""
    cluster = shared_model_cluster(versions=1, references=0)
    allowed = asyncio.Event()
    apply = cluster.apply_dataset
    calls = 0

    async def forbidden(manifest: dict[str, Any]) -> dict[str, Any]:
        nonlocal calls
        calls += 1
        if not allowed.is_set():
            raise ApiError(403, '403: datasets.dataset.baizeai.io is forbidden: User "x" cannot')
        return await apply(manifest)

    cluster.apply_dataset = forbidden  # type: ignore[method-assign]
    caplog.set_level(logging.WARNING)
    key = (NS, "sync-0")
    async with cluster.running() as operator:
        await cluster.settle()
        status = cluster.objects["modelsyncs"][key]["status"]
        ready = next(c for c in status["conditions"] if c["type"] == "Ready")
        assert (ready["status"], ready["reason"]) == ("False", reasons.API_FORBIDDEN), ready
        assert "cannot" in ready["message"] and "RBAC rule" in ready["message"]
        assert status["phase"] == "FAILED"
        assert [e for e in cluster.events if e[0] == key] == [
            (key, "Warning", reasons.API_FORBIDDEN)
        ]
        # Its inputs settling at start (the ModelSource's first status) may cost an attempt
        # more; after that, nothing for 5 s (or 10 s after two refusals): a transient error
        # would have been retried after 0.5, 1 and 2 s.
        queue = operator.queues["modelsyncs"]
        attempts = calls
        assert 1 <= attempts <= 2 and queue.failures(key) == attempts
        await asyncio.sleep(3.0)
        assert calls == attempts
        due = queue.next_due()
        assert due is not None and 0 < due <= queue.refused_delay * attempts
        assert not [r for r in caplog.records if r.levelno >= logging.ERROR or r.exc_info]
        # allowed again; the user touches the object: reconciled at once, READY path resumes
        allowed.set()
        body = cluster.objects["modelsyncs"][key]
        cluster.put({**body, "metadata": {**body["metadata"], "labels": {"touched": "1"}}})
        await cluster.settle()
        assert calls == attempts + 1 and (NS, "mdl-v0") in cluster.objects["datasets"]
        assert phase(cluster, "modelsyncs", key) == "PENDING"


def test_refusals_back_off_from_5_s_to_the_longest_and_a_success_starts_anew() -> None:
    """A refusal in a row waits twice as long as the one before, from 5 s to the longest
    backoff; a transient failure in between does not count as one; a success resets both."""
    from modelfs.controllers.queue import WorkQueue

    async def go() -> None:
        queue: WorkQueue[str] = WorkQueue("t")
        assert queue.retry("k") == 0.5  # transient
        delays = [queue.retry("k", refused=True) for _ in range(8)]
        assert delays == [5.0, 10.0, 20.0, 40.0, 80.0, 160.0, 300.0, 300.0]
        queue.forget("k")
        assert queue.retry("k", refused=True) == 5.0
        await queue.stop()

    asyncio.run(go())
