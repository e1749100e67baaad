"""Periodic resync, in one task: drift repair, schedules and Secret re-checks.

Not kopf timers: kopf puts a finalizer on every object with a timer, so deleting a ModelSource
or a namespace would wait for the operator. Resync reads kopf's indexes (memory), so an idle
cluster sees neither reads nor writes from it, except one Secret read per ModelSource with a
secretRef per `SOURCE_SECONDS`.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

from controllers.model import reconcile_model
from controllers.modelsource import recheck_source
from controllers.modelsync import reconcile_later
from controllers.runtime import Context, Key
from pkg.kube import ApiError

SYNC_SECONDS = 30.0
SOURCE_SECONDS = 60.0
MODEL_SECONDS = 120.0
TICK_SECONDS = SYNC_SECONDS

logger = logging.getLogger("modelfs.resync")


async def resync_once(ctx: Context, tick: int) -> None:
    """One pass. Every object is visited on its own: one that fails is logged and the pass goes
    on to the next, so a bad object never stops drift repair, schedules or Secret re-checks of
    the others."""
    every_sources = max(int(SOURCE_SECONDS // TICK_SECONDS), 1)
    every_models = max(int(MODEL_SECONDS // TICK_SECONDS), 1)
    visits: list[tuple[str, Key, Callable[[Context, Key], Awaitable[object]]]] = [
        ("ModelSync", key, reconcile_later) for key in list(ctx.indexes.syncs)
    ]
    if tick % every_sources == 0:
        visits += [("ModelSource", key, recheck_source) for key in list(ctx.indexes.sources)]
    if tick % every_models == 0:
        visits += [("Model", key, reconcile_model) for key in list(ctx.indexes.models)]
    for kind, key, visit in visits:
        try:
            await visit(ctx, key)
        except ApiError as error:
            logger.warning(
                "Resync failed", extra={"kind": kind, "object": key, "error": str(error)}
            )
        except Exception:  # a bug: say so loudly, and still visit the others
            logger.exception("Resync failed", extra={"kind": kind, "object": key})


async def resync_forever(ctx_source: asyncio.Future[Context]) -> None:
    """Every TICK_SECONDS, once the first handler has handed over the indexes."""
    ctx = await ctx_source
    tick = 0
    while True:
        await asyncio.sleep(TICK_SECONDS)
        tick += 1
        try:
            await resync_once(ctx, tick)
        except Exception:  # one bad object must not stop the resync of all others
            logger.exception("Resync failed")


__all__ = ["Key", "resync_forever", "resync_once"]
