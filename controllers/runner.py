"""The one generic handler every kind's reconcile runs in, as controller-runtime's
`reconcileHandler`: one object's failure stays that object's.

It reads what the reconcile returned or raised (`controllers.result`) and shows a failure that
is not transient on the object: Ready=False with the reason, one Warning Event, and phase FAILED
for kinds that have a phase. The queue then retries the key (`controllers.queue`): a bug with
backoff, a terminal error after 5 s and then less and less often up to the longest backoff,
unless a watch event adds it sooner.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from modelfs.api.v1.reasons import RECONCILE_ERROR
from modelfs.controllers.descriptor import Descriptor
from modelfs.controllers.result import Result, TerminalError, terminal
from modelfs.controllers.runtime import Context, Key
from modelfs.controllers.status import (
    last_written,
    now_string,
    ready_changed,
    refuse_unparsed,
    remember_written,
    unparsed_error,
    with_conditions,
    write_status,
)
from modelfs.pkg.kube import TRANSIENT_ERRORS

MAX_MESSAGE = 500
"""An exception's text can be long (a repr of a body): the condition keeps its start."""

logger = logging.getLogger("modelfs.runner")


def failure_message(error: BaseException) -> str:
    text = f"{type(error).__name__}: {error}"
    if len(text) > MAX_MESSAGE:
        text = text[: MAX_MESSAGE - 3] + "..."
    return f"the operator failed to reconcile this object and retries it with backoff: {text}"


def failure_status(
    body: dict[str, Any],
    reason: str,
    message: str,
    written: tuple[str, str] | None,
    now: str,
    *,
    phase: bool,
) -> dict[str, Any] | None:
    """The object's status with Ready False for `reason`, or None when it says so already (in
    the stored status or in modelfs's last write)."""
    current = body.get("status") or {}
    if not ready_changed(current, reason, message, written):
        return None
    generation = body.get("metadata", {}).get("generation")
    conditions = with_conditions(
        current.get("conditions") or [], [("Ready", False, reason, message)], generation, now
    )
    status = {**current, "conditions": conditions}
    if phase:
        status["phase"] = "FAILED"
    return status


async def report_failure(
    ctx: Context, plural: str, key: Key, reason: str, message: str, phase: bool
) -> None:
    """Best effort: a failure to report is logged, never raised (the queue retries the key)."""
    body = ctx.indexes.object(plural, key)
    if (
        body is None
        or body.get("metadata", {}).get("deletionTimestamp")
        or ctx.indexes.terminating(key[0])
    ):
        return
    try:
        written = last_written(ctx, plural, body)
        status = failure_status(body, reason, message, written, now_string(), phase=phase)
        if status is None:
            return
        if await write_status(ctx, plural, key, body.get("status") or {}, status):
            remember_written(ctx, plural, body, status)
            ctx.runtime.post_event(body, "Warning", reason, message)
    except Exception as failure:  # reporting must not hide the first error
        logger.warning(
            "Reconcile failure not written on the status",
            extra={"kind": plural, "object": key, "error": f"{type(failure).__name__}: {failure}"},
        )


def run_reconciler(ctx: Context, kind: Descriptor) -> Callable[[Key], Awaitable[float | None]]:
    """The reconcile of `kind` for its queue. Makes the checks every kind makes first (the
    object is gone, its namespace is being deleted, its spec does not parse), then calls the
    kind's reconcile. Returns when to look again; raises what the queue retries: a
    TerminalError (after showing it), a transient error as it came, a bug (after showing
    ReconcileError)."""
    plural = kind.plural
    assert kind.reconcile is not None, plural
    reconcile = kind.reconcile

    async def run(key: Key) -> float | None:
        try:
            body = ctx.indexes.object(plural, key)
            if body is None:
                ctx.runtime.forget_object(plural, key)
                if kind.on_gone is not None:
                    kind.on_gone(key)
                return None
            deleting = bool(body.get("metadata", {}).get("deletionTimestamp"))
            if ctx.indexes.terminating(key[0]) and not (deleting and kind.finalizes):
                return None  # its namespace is going: no writes, no events there
            if not deleting:
                error = unparsed_error(ctx, kind.parsed, body)
                if error is not None:
                    return await refuse_unparsed(ctx, plural, key, body, error, phase=kind.phase)
            return (await reconcile(ctx, key, body)).requeue_after
        except asyncio.CancelledError:
            raise
        except Exception as error:
            final = terminal(error)
            if final is not None:
                await report_failure(ctx, plural, key, final.reason, final.message, kind.phase)
                if final is not error:
                    raise final from None
                raise
            if isinstance(error, TRANSIENT_ERRORS):
                raise
            message = failure_message(error)
            await report_failure(ctx, plural, key, RECONCILE_ERROR, message, kind.phase)
            raise

    return run


__all__ = ["Result", "TerminalError", "run_reconciler"]
