"""A work queue per kind, as controller-runtime's: watches only add keys, workers reconcile them.

- A key added while it waits is merged: it is reconciled once.
- A key added while a worker reconciles it waits until that reconcile ends, then runs again: one
  worker per key at a time, so reconciles of one object never overlap.
- A reconcile that raises is retried for that key alone, with exponential backoff; a success
  resets the backoff. A bug (not an API error) is logged with its traceback once per key and
  error; while the same error repeats, each retry is one warning line without it.
- `add_after` serves schedules and "look again later": the earliest pending time wins, and a
  reconcile that starts meanwhile cancels it (what it returns sets the next one): a reconcile
  that waited for its own write to come back runs once when it does, not again at the deadline.
  What a reconcile asks to look at again comes back at low priority: it is not news, and in a
  burst it waits behind the new objects rather than slowing their first reconcile.
- Two priorities: what a watch event changed is served before the resync and the initial listing
  (`add(key, low=True)`), so new work is never queued behind a pass over every object. Such a
  pass skips a key that is backing off after a failure; a watch event does not. `backlog()`
  tells how many keys wait at high priority: a reconcile with only a status to write may
  yield to them (`Runtime.yield_status`).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from collections.abc import Awaitable, Callable, Hashable
from typing import Generic, TypeVar

from prometheus_client import Counter, Gauge, Histogram

from modelfs.controllers.result import TerminalError
from modelfs.pkg.kube import TRANSIENT_ERRORS

K = TypeVar("K", bound=Hashable)

logger = logging.getLogger("modelfs.queue")

DEPTH = Gauge("modelfs_workqueue_depth", "Keys waiting in the queue.", ["name"])
ADDS = Counter("modelfs_workqueue_adds_total", "Keys added (merged ones included).", ["name"])
RETRIES = Counter("modelfs_workqueue_retries_total", "Keys re-added after a failure.", ["name"])
QUEUE_SECONDS = Histogram(
    "modelfs_workqueue_queue_duration_seconds",
    "How long a key waited before a worker took it.",
    ["name"],
    buckets=(0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1, 5, 10, 60),
)
WORK_SECONDS = Histogram(
    "modelfs_workqueue_work_duration_seconds",
    "How long one reconcile took.",
    ["name"],
    buckets=(0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1, 5, 10, 60),
)

Reconcile = Callable[[K], Awaitable[float | None]]
"""Reconciles one key; returns seconds after which to look again, or None."""


class WorkQueue(Generic[K]):
    def __init__(
        self,
        name: str,
        *,
        base_delay: float = 0.5,
        max_delay: float = 300.0,
        refused_delay: float = 5.0,
    ) -> None:
        self.name = name
        self.base_delay = base_delay
        self.max_delay = max_delay
        self.refused_delay = refused_delay
        """The first retry after a refusal (TerminalError), doubled per refusal in a row up to
        `max_delay`: a kube-apiserver that has just started answers 403 until its RBAC caches
        are filled, which a second look a few seconds later gets past; a missing rule is at
        the longest backoff after six looks (5 s to 300 s)."""
        self._refusals: dict[K, int] = {}
        self._high: deque[K] = deque()
        self._low: deque[K] = deque()
        self._waiting: dict[K, tuple[float, bool]] = {}
        """Queued keys: when they were added (monotonic), and whether at low priority."""
        self._running: set[K] = set()
        self._again: dict[K, bool] = {}
        """Keys added while a worker had them: run again once it is done (at low priority only
        when every add said so)."""
        self._high_waiting = 0
        self._failures: dict[K, int] = {}
        self._errors: dict[K, str] = {}
        """The last unexpected error of each failing key: its traceback is logged once."""
        self._timers: dict[K, asyncio.TimerHandle] = {}
        self._idle: deque[asyncio.Future[None]] = deque()
        """Workers waiting for a key: an add wakes one of them, not all (an Event woke every
        worker on every add, and all but one went back to sleep)."""
        self._workers: list[asyncio.Task[None]] = []
        # The labelled metrics, looked up once: `labels()` on every add is not free.
        self._adds, self._retries = ADDS.labels(name), RETRIES.labels(name)
        self._depth, self._queue_seconds = DEPTH.labels(name), QUEUE_SECONDS.labels(name)
        self._work_seconds = WORK_SECONDS.labels(name)

    # -- adding

    def add(self, key: K, *, low: bool = False) -> None:
        self._adds.inc()
        if low and key in self._failures and key in self._timers:
            return  # backing off: its retry comes; a pass over everything does not cut it short
        waiting = self._waiting.get(key)
        if waiting is not None:
            if waiting[1] and not low:  # waiting at low priority: now it is news
                self._waiting[key] = (waiting[0], False)
                self._high.append(key)
                self._high_waiting += 1
            return
        if key in self._running:
            self._again[key] = self._again.get(key, True) and low
            return
        self._waiting[key] = (time.monotonic(), low)
        if low:
            self._low.append(key)
        else:
            self._high.append(key)
            self._high_waiting += 1
        self._depth.set(len(self._waiting))
        self._wake_one()

    def _wake_one(self) -> None:
        while self._idle:
            worker = self._idle.popleft()
            if not worker.done():
                worker.set_result(None)
                return

    def add_after(self, key: K, delay: float, *, low: bool = False) -> None:
        """Add `key` in `delay` seconds, unless an earlier add of it is already set."""
        if delay <= 0:
            self.add(key, low=low)
            return
        loop = asyncio.get_running_loop()
        when = loop.time() + delay
        current = self._timers.get(key)
        if current is not None and not current.cancelled() and current.when() <= when:
            return
        if current is not None:
            current.cancel()

        def fire() -> None:
            self._timers.pop(key, None)
            self.add(key, low=low)

        self._timers[key] = loop.call_at(when, fire)

    def retry(self, key: K, *, refused: bool = False) -> float:
        """Add `key` again after its next backoff (`refused`: the refusals' backoff, which
        starts at `refused_delay`); returns that delay."""
        failures = self._failures.get(key, 0) + 1
        self._failures[key] = failures
        delay = float(min(self.base_delay * 2.0 ** (failures - 1), self.max_delay))
        if refused:
            refusals = self._refusals.get(key, 0) + 1
            self._refusals[key] = refusals
            delay = float(min(self.refused_delay * 2.0 ** (refusals - 1), self.max_delay))
        self._retries.inc()
        self.add_after(key, delay)
        return delay

    def forget(self, key: K) -> None:
        """A success: the next failure of `key` starts its backoff anew."""
        self._failures.pop(key, None)
        self._refusals.pop(key, None)
        self._errors.pop(key, None)

    # -- taking

    def __len__(self) -> int:
        return len(self._waiting)

    def backlog(self) -> int:
        """Keys waiting at high priority: news not yet reconciled."""
        return self._high_waiting

    def busy(self) -> bool:
        """Keys waiting or being reconciled (timers of `add_after` not counted)."""
        return bool(self._waiting or self._running)

    def next_due(self) -> float | None:
        """Seconds until the earliest `add_after` fires, or None."""
        if not self._timers:
            return None
        now = asyncio.get_running_loop().time()
        return max(min(t.when() for t in self._timers.values()) - now, 0.0)

    async def get(self) -> K:
        while True:
            while not self._waiting:
                woken = asyncio.get_running_loop().create_future()
                self._idle.append(woken)
                try:
                    await woken
                except asyncio.CancelledError:
                    if woken.done() and not woken.cancelled():
                        self._wake_one()  # woken, then cancelled: the key goes to another
                    raise
            key, low = (self._high.popleft(), False) if self._high else (self._low.popleft(), True)
            waiting = self._waiting.get(key)
            if waiting is None or waiting[1] != low:
                continue  # taken already, or moved up to high priority
            del self._waiting[key]
            if not low:
                self._high_waiting -= 1
            timer = self._timers.pop(key, None)
            if timer is not None:  # this reconcile says when to look again, if ever
                timer.cancel()
            self._running.add(key)
            self._depth.set(len(self._waiting))
            self._queue_seconds.observe(time.monotonic() - waiting[0])
            return key

    def done(self, key: K) -> None:
        self._running.discard(key)
        low = self._again.pop(key, None)
        if low is not None:
            self.add(key, low=low)

    # -- workers

    def start(self, reconcile: Reconcile[K], workers: int) -> None:
        for number in range(workers):
            task = asyncio.get_running_loop().create_task(
                self._work(reconcile), name=f"{self.name}-worker-{number}"
            )
            self._workers.append(task)

    async def stop(self) -> None:
        for timer in self._timers.values():
            timer.cancel()
        self._timers.clear()
        for task in self._workers:
            task.cancel()
        await asyncio.gather(*self._workers, return_exceptions=True)
        self._workers.clear()
        # What waits here is dropped with the queue (a replica that stops leading makes new
        # ones): the metric must not keep reporting it.
        self._depth.set(0)

    def failures(self, key: K) -> int:
        """Failed reconciles of `key` since its last success."""
        return self._failures.get(key, 0)

    def _log_bug(self, key: K, error: Exception, delay: float) -> None:
        """The traceback once (an error line: the e2e suite fails on it); then, while the same
        error repeats, a warning per retry: the backoff grows, the log does not fill up."""
        said = f"{type(error).__name__}: {error}"
        fields = {"kind": self.name, "object": key, "error": said, "retry": delay}
        if self._errors.get(key) == said:
            logger.warning("Reconcile failed again", extra=fields)
            return
        self._errors[key] = said
        logger.error("Reconcile failed", exc_info=error, extra=fields)

    async def _work(self, reconcile: Reconcile[K]) -> None:
        while True:
            key = await self.get()
            started = time.monotonic()
            try:
                again = await reconcile(key)
            except asyncio.CancelledError:
                raise
            # refused (shown on the object by the runner): looked at again after 5 s, then
            # less and less often up to the longest backoff, or when a watch event adds the key
            except TerminalError as error:
                delay = self.retry(key, refused=True)
                logger.warning(
                    "Reconcile refused",
                    extra={
                        "kind": self.name,
                        "object": key,
                        "reason": error.reason,
                        "error": error.message,
                        "retry": delay,
                    },
                )
            # an API error, or no answer from the API server: retried with a warning; anything
            # else is a bug, logged with its traceback (which fails the e2e suite)
            except TRANSIENT_ERRORS as error:
                delay = self.retry(key)
                logger.warning(
                    "Reconcile failed",
                    extra={"kind": self.name, "object": key, "error": str(error), "retry": delay},
                )
            except Exception as error:  # a bug: said loudly once, retried for this key alone
                delay = self.retry(key)
                self._log_bug(key, error, delay)
            else:
                self.forget(key)
                if again is not None:
                    self.add_after(key, again, low=True)
            finally:
                self._work_seconds.observe(time.monotonic() - started)
                self.done(key)
