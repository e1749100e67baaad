"""Periodic resync, in one task: drift repair, schedules and Secret re-checks.

Not kopf timers: kopf puts a finalizer on every object with a timer, so deleting a ModelSource
or a namespace would wait for the operator. Resync reads kopf's indexes (memory), so an idle
cluster sees neither reads nor writes from it, except one Secret read per ModelSource with a
secretRef per `SOURCE_SECONDS`.
"""

from __future__ import annotations

import asyncio
import logging

from controllers.model import reconcile_model
from controllers.modelsource import recheck_source
from controllers.modelsync import reconcile_later
from controllers.runtime import Context, Key

SYNC_SECONDS = 30.0
SOURCE_SECONDS = 60.0
MODEL_SECONDS = 120.0
TICK_SECONDS = SYNC_SECONDS

logger = logging.getLogger("modelfs.resync")


async def resync_once(ctx: Context, tick: int) -> None:
    every_sources = max(int(SOURCE_SECONDS // TICK_SECONDS), 1)
    every_models = max(int(MODEL_SECONDS // TICK_SECONDS), 1)
    for key in list(ctx.indexes.syncs):
        await reconcile_later(ctx, key)
    if tick % every_sources == 0:
        for key in list(ctx.indexes.sources):
            await recheck_source(ctx, key)
    if tick % every_models == 0:
        for key in list(ctx.indexes.models):
            await reconcile_model(ctx, key)


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
