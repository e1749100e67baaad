"""`python -m modelfs ARGS...` under cProfile, switched on and off by signals: the operator
benchmark's `--profile FILE` runs the operator as

    python benchmarks/profiled.py FILE run -A ...

SIGUSR1 starts profiling, SIGUSR2 stops it and writes the stats to FILE (pstats format, written
to a temporary name and renamed, so a reader never sees half a file). Only what runs between the
two signals is profiled: start-up and imports are not.

The timer is `time.thread_time` (CPU time of the calling thread): time spent waiting (epoll, the
network) is not counted, so the figures add up to CPU time. Every thread is profiled, not only
the main one: kopf runs synchronous handlers (the index functions) in its thread pool through
`loop.run_in_executor`, which is wrapped here so that each pool thread turns its own profiler on
(and off) when it next runs a call. The stats of all threads are merged.
"""

from __future__ import annotations

import asyncio.base_events
import cProfile
import functools
import os
import pstats
import runpy
import signal
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from types import FrameType
from typing import Any


class Snapshot(cProfile.Profile):
    """Stats already taken, as pstats.Stats reads them (its `create_stats` would disable the
    profiler from the wrong thread)."""

    def __init__(self, stats: dict[Any, Any]) -> None:
        super().__init__()
        self.stats = stats

    def create_stats(self) -> None:
        pass


class Profiling:
    def __init__(self, out: Path) -> None:
        self.out = out
        self.on = False
        self.profilers: dict[int, cProfile.Profile] = {}
        self.lock = threading.Lock()
        self.local = threading.local()

    def profiler(self) -> cProfile.Profile:
        """The calling thread's profiler."""
        ident = threading.get_ident()
        with self.lock:
            found = self.profilers.get(ident)
            if found is None:
                found = cProfile.Profile(time.thread_time)
                self.profilers[ident] = found
        return found

    def follow(self) -> None:
        """Turn the calling thread's profiler on or off, as profiling is."""
        enabled = getattr(self.local, "enabled", False)
        if self.on and not enabled:
            self.profiler().enable()
            self.local.enabled = True
        elif not self.on and enabled:
            self.profiler().disable()
            self.local.enabled = False

    def start(self, signum: int, frame: FrameType | None) -> None:
        self.on = True
        self.follow()

    def stop(self, signum: int, frame: FrameType | None) -> None:
        if not self.on:
            return
        self.on = False
        self.follow()
        merged: pstats.Stats | None = None
        with self.lock:
            profilers = list(self.profilers.values())
        for profiler in profilers:
            # Read, not disabled: disabling from this thread would close the calls a pool
            # thread has open (its idle wait for work) with this thread's clock. Those open
            # calls are left out. The pool is idle when the benchmark sends SIGUSR2 (after the
            # operator has gone quiet).
            profiler.snapshot_stats()
            if not getattr(profiler, "stats", None):
                continue
            snapshot = Snapshot(profiler.stats)
            if merged is None:
                merged = pstats.Stats(snapshot)
            else:
                merged.add(snapshot)
        partial = self.out.with_name(self.out.name + ".partial")
        if merged is None:
            partial.write_bytes(b"")
        else:
            merged.dump_stats(str(partial))
        os.replace(partial, self.out)

    def wrap(self, fn: Callable[..., Any]) -> Callable[..., Any]:
        @functools.wraps(fn)
        def call(*args: Any) -> Any:
            self.follow()
            return fn(*args)

        return call


def main() -> None:
    if len(sys.argv) < 2:
        raise SystemExit("usage: profiled.py OUT.prof [modelfs arguments...]")
    profiling = Profiling(Path(sys.argv[1]).resolve())
    original = asyncio.base_events.BaseEventLoop.run_in_executor

    def run_in_executor(self: Any, executor: Any, func: Any, *args: Any) -> Any:
        return original(self, executor, profiling.wrap(func), *args)

    asyncio.base_events.BaseEventLoop.run_in_executor = run_in_executor  # type: ignore[method-assign,assignment]
    signal.signal(signal.SIGUSR1, profiling.start)
    signal.signal(signal.SIGUSR2, profiling.stop)
    sys.argv = [sys.argv[0], *sys.argv[2:]]
    runpy.run_module("modelfs", run_name="__main__", alter_sys=True)


if __name__ == "__main__":
    main()
