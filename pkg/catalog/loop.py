"""The catalog's own event loop, on a thread of its own.

Catalog lookups talk to hosts outside the cluster: DNS that fails or hangs, servers that never
answer. On the operator's loop they would share its default thread pool (DNS resolution, the
Hub and S3 clients) and leave tasks behind when cancelled (aiohttp resolves a host in a task of
its own, shared by every request to that host), which kopf, at shutdown, counts as the
operator's and re-raises. On a loop of their own they can do neither: the operator's loop only
awaits a future per lookup.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

log = logging.getLogger(__name__)

T = TypeVar("T")

CLOSE_SECONDS = 2.0
"""How long `close` waits for the lookups it cancelled to finish."""


class OwnLoop:
    """An asyncio loop on a daemon thread, started on first use."""

    def __init__(self, name: str = "modelfs-catalog") -> None:
        self.name = name
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()

    def _start(self) -> asyncio.AbstractEventLoop:
        with self._lock:
            if self._loop is None:
                loop = asyncio.new_event_loop()
                loop.set_exception_handler(_quiet)
                thread = threading.Thread(target=_serve, args=(loop,), name=self.name, daemon=True)
                thread.start()
                self._loop, self._thread = loop, thread
            return self._loop

    async def run(self, coroutine: Coroutine[Any, Any, T]) -> T:
        """Run `coroutine` on this loop and await its result from the calling loop. Cancelling
        the caller cancels the coroutine."""
        future = asyncio.run_coroutine_threadsafe(coroutine, self._start())
        return await asyncio.wrap_future(future)

    def close(self, cleanup: Callable[[], Coroutine[Any, Any, None]] | None = None) -> None:
        """Cancel what still runs, then run `cleanup` on the loop (closing what lives on it),
        waiting up to CLOSE_SECONDS for both; stop the loop."""
        with self._lock:
            loop, thread = self._loop, self._thread
            self._loop = self._thread = None
        if loop is None or thread is None:
            return
        with contextlib.suppress(Exception):
            asyncio.run_coroutine_threadsafe(_cancel_all(cleanup), loop).result(CLOSE_SECONDS)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(CLOSE_SECONDS)


def _serve(loop: asyncio.AbstractEventLoop) -> None:
    asyncio.set_event_loop(loop)
    try:
        loop.run_forever()
    finally:
        with contextlib.suppress(Exception):
            loop.close()


async def _cancel_all(cleanup: Callable[[], Coroutine[Any, Any, None]] | None) -> None:
    tasks = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    if cleanup is not None:
        await cleanup()


def _quiet(loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
    """What a lookup left behind failed after its caller had gone (a shared DNS resolution
    whose requests were cancelled, say): the caller has its answer already, so this is no
    error of the operator's."""
    error = context.get("exception")
    log.debug(
        "Dropped a failure a catalog lookup left behind",
        extra={"what": context.get("message"), "error": type(error).__name__ if error else None},
    )
