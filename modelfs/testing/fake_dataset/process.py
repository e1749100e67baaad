"""`FakeDatasetController`: the fake Dataset controller as a child process, for tests and the
sandbox.

    with FakeDatasetController(kubeconfig) as fake:          # returns once it is watching
        ...
    async with FakeDatasetController(kubeconfig, timings=Timings(round_duration=1)) as fake:
        ...
    fake.log_text()                                          # its log so far

The child (a `modelfs.testing.process.Child`) runs in its own process group, dies with its
parent on Linux (PR_SET_PDEATHSIG, when started from the main thread), is stopped with SIGTERM
(then SIGKILL after `stop_grace`), and is also stopped at interpreter exit.
"""

from __future__ import annotations

import asyncio
import atexit
import os
import subprocess
import sys
import tempfile
import weakref
from collections.abc import Sequence
from pathlib import Path
from types import TracebackType

from modelfs.testing.fake_dataset import logic
from modelfs.testing.fake_dataset.cli import READY_LINE
from modelfs.testing.process import Child

_LIVE: weakref.WeakSet[FakeDatasetController] = weakref.WeakSet()


class FakeDatasetError(RuntimeError):
    """The fake Dataset controller did not start, or died."""


def _duration_arg(seconds: float) -> str:
    return f"{round(seconds * 1000)}ms"


class FakeDatasetController:
    """Runs `python -m modelfs.testing.fake_dataset` against `kubeconfig`."""

    def __init__(
        self,
        kubeconfig: Path | str,
        *,
        namespaces: Sequence[str] = (),
        timings: logic.Timings | None = None,
        sandbox: bool = False,
        backoff_limit: int = logic.DEFAULT_BACKOFF_LIMIT,
        storage: bool = True,
        resync: float | None = None,
        context: str | None = None,
        log_path: Path | str | None = None,
        log_level: str = "info",
        python: str = sys.executable,
        startup_timeout: float = 30.0,
        stop_grace: float = 5.0,
    ) -> None:
        self.kubeconfig = Path(kubeconfig)
        self.namespaces = tuple(namespaces)
        self.timings = timings
        self.sandbox = sandbox
        self.backoff_limit = backoff_limit
        self.storage = storage
        self.resync = resync
        self.context = context
        self.log_level = log_level
        self.python = python
        self.startup_timeout = startup_timeout
        self.stop_grace = stop_grace
        self._log_arg = Path(log_path) if log_path else None
        self.log_path: Path | None = None
        self.child: Child | None = None

    def argv(self) -> list[str]:
        argv = [
            self.python,
            "-m",
            "modelfs.testing.fake_dataset",
            "--kubeconfig",
            str(self.kubeconfig),
            "--log-level",
            self.log_level,
        ]
        if self.context:
            argv += ["--context", self.context]
        for namespace in self.namespaces:
            argv += ["--namespace", namespace]
        if self.sandbox:
            argv.append("--sandbox")
        if self.timings is not None:
            fail = self.timings.fail_rounds
            argv += [
                "--round-duration",
                _duration_arg(self.timings.round_duration),
                "--fail-rounds",
                "all" if fail == "all" else ",".join(map(str, sorted(fail))),
            ]
        if self.backoff_limit != logic.DEFAULT_BACKOFF_LIMIT:
            argv += ["--backoff-limit", str(self.backoff_limit)]
        if not self.storage:
            argv.append("--no-storage")
        if self.resync:
            argv += ["--resync", _duration_arg(self.resync)]
        return argv

    # -- lifecycle

    def start(self) -> FakeDatasetController:
        if self.child is not None:
            return self
        if self._log_arg is None:
            handle, name = tempfile.mkstemp(prefix="fake-dataset-", suffix=".log")
            os.close(handle)
            self.log_path = Path(name)
        else:
            self.log_path = self._log_arg
        self.child = Child.start(
            "the fake Dataset controller", self.argv(), self.log_path, ready_pipe=True
        )
        _LIVE.add(self)
        try:
            self.child.wait_for_line(READY_LINE, self.startup_timeout, FakeDatasetError)
        except BaseException:
            self.stop()
            raise
        return self

    @property
    def process(self) -> subprocess.Popen[bytes] | None:
        return None if self.child is None else self.child.process

    def alive(self) -> bool:
        return self.child is not None and self.child.alive()

    def stop(self) -> int | None:
        """SIGTERM to its process group, SIGKILL after `stop_grace`. Returns the exit code.
        Safe to call twice."""
        child, self.child = self.child, None
        _LIVE.discard(self)
        return None if child is None else child.stop(self.stop_grace)

    def log_text(self) -> str:
        if self.log_path is None or not self.log_path.exists():
            return ""
        return self.log_path.read_text(errors="replace")

    def __enter__(self) -> FakeDatasetController:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    async def __aenter__(self) -> FakeDatasetController:
        return await asyncio.to_thread(self.start)

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await asyncio.to_thread(self.stop)


@atexit.register
def _stop_all() -> None:
    for fake in list(_LIVE):
        fake.stop()
