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
import weakref
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

log = logging.getLogger(__name__)

T = TypeVar("T")

CLOSE_SECONDS = 2.0
"""How long `close` waits for the lookups it cancelled to finish."""

BLOCKING_AT_ONCE = 8
"""Blocking lookups (the Hub's and S3's synchronous clients) running at once, per loop."""

_slots: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, asyncio.Semaphore] = (
    weakref.WeakKeyDictionary()
)


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


async def in_thread(func: Callable[..., T], *args: Any) -> T:
    """`func(*args)` on a daemon thread of its own, awaited from the calling loop, at most
    BLOCKING_AT_ONCE at a time. Not `asyncio.to_thread`: the interpreter joins the default
    executor's threads at exit, so a lookup given up on (its timeout passed, the operator
    stopping) held the process's exit until the client's own timeout. A daemon thread does not;
    what it returns after its caller has gone is dropped."""
    loop = asyncio.get_running_loop()
    slots = _slots.get(loop)
    if slots is None:
        slots = _slots[loop] = asyncio.Semaphore(BLOCKING_AT_ONCE)
    async with slots:
        future: asyncio.Future[T] = loop.create_future()

        def settle(result: T | None, error: BaseException | None) -> None:
            if future.done():  # the caller has gone
                return
            if error is not None:
                future.set_exception(error)
            else:
                future.set_result(result)  # type: ignore[arg-type]

        def run() -> None:
            try:
                result, error = func(*args), None
            except Exception as e:  # handed to the caller, as to_thread does
                result, error = None, e
            with contextlib.suppress(RuntimeError):  # the loop is closed: nobody waits
                loop.call_soon_threadsafe(settle, result, error)

        threading.Thread(target=run, name="modelfs-catalog-lookup", daemon=True).start()
        return await future


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
