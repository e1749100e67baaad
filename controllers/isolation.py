"""One object's failure stays that object's: a reconcile that raises (a bug, a value nobody
foresaw) is shown on that object's status and retried for it alone, with backoff, by its queue.

The queue logs the traceback once per object and error (`queue.WorkQueue._log_bug`); here the
object's Ready condition says `ReconcileError` with the exception, and one Event says it too,
so the user sees which object is stuck and why without reading the operator's log. API errors
are not reported so: they are transient (an outage, a conflict) and retried with a warning.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from modelfs.controllers.runtime import Context, Key
from modelfs.controllers.status import (
    last_written,
    now_string,
    ready_changed,
    remember_written,
    with_conditions,
    write_status,
)
from modelfs.pkg.kube import ApiError

RECONCILE_ERROR = "ReconcileError"
MAX_MESSAGE = 500
"""An exception's text can be long (a repr of a body): the condition keeps its start."""

logger = logging.getLogger("modelfs.isolation")

Reconciler = Callable[[Context, Key], Awaitable[float | None]]


def failure_message(error: BaseException) -> str:
    text = f"{type(error).__name__}: {error}"
    if len(text) > MAX_MESSAGE:
        text = text[: MAX_MESSAGE - 3] + "..."
    return f"the operator failed to reconcile this object and retries it with backoff: {text}"


def body_of(ctx: Context, plural: str, key: Key) -> dict[str, Any] | None:
    getters: dict[str, Callable[[Key], dict[str, Any] | None]] = {
        "modelsources": ctx.indexes.source,
        "models": ctx.indexes.model,
        "modelsyncs": ctx.indexes.sync,
        "modelreferences": ctx.indexes.reference,
    }
    return getters[plural](key)


def failure_status(
    body: dict[str, Any], message: str, written: tuple[str, str] | None, now: str
) -> dict[str, Any] | None:
    """The object's status with Ready False/ReconcileError, or None when it says so already
    (in the stored status or in modelfs's last write)."""
    current = body.get("status") or {}
    if not ready_changed(current, RECONCILE_ERROR, message, written):
        return None
    generation = body.get("metadata", {}).get("generation")
    conditions = with_conditions(
        current.get("conditions") or [],
        [("Ready", False, RECONCILE_ERROR, message)],
        generation,
        now,
    )
    return {**current, "conditions": conditions}


async def report_failure(ctx: Context, plural: str, key: Key, error: Exception) -> None:
    """Best effort: a failure to report is logged, never raised (the queue retries the key)."""
    body = body_of(ctx, plural, key)
    if (
        body is None
        or body.get("metadata", {}).get("deletionTimestamp")
        or ctx.indexes.terminating(key[0])
    ):
        return
    message = failure_message(error)
    try:
        status = failure_status(body, message, last_written(ctx, plural, body), now_string())
        if status is None:
            return
        if await write_status(ctx, plural, key, body.get("status") or {}, status):
            remember_written(ctx, plural, body, status)
            ctx.runtime.post_event(body, "Warning", RECONCILE_ERROR, message)
    except Exception as failure:  # reporting must not hide the first error
        logger.warning(
            "Reconcile failure not written on the status",
            extra={"kind": plural, "object": key, "error": f"{type(failure).__name__}: {failure}"},
        )


def isolated(ctx: Context, plural: str, reconcile: Reconciler) -> Callable[[Key], Awaitable[Any]]:
    """`reconcile` for the queue of `plural`: an unexpected exception is reported on the
    object's status, then raised for the queue to log once and back the key off."""

    async def run(key: Key) -> float | None:
        try:
            return await reconcile(ctx, key)
        except (asyncio.CancelledError, ApiError):
            raise
        except Exception as error:
            await report_failure(ctx, plural, key, error)
            raise

    return run
