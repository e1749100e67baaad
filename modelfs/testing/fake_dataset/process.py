"""`FakeDatasetController`: the fake Dataset controller as a child process, for tests and the
sandbox.

    with FakeDatasetController(kubeconfig) as fake:          # returns once it is watching
        ...
    async with FakeDatasetController(kubeconfig, timings=Timings(round_duration=1)) as fake:
        ...
    fake.log_text()                                          # its log so far

The child runs in its own process group, dies with its parent on Linux (PR_SET_PDEATHSIG), is
stopped with SIGTERM (then SIGKILL after `stop_grace`), and is also stopped at interpreter exit.
"""

from __future__ import annotations

import asyncio
import atexit
import contextlib
import ctypes
import os
import selectors
import signal
import subprocess
import sys
import tempfile
import time
import weakref
from collections.abc import Callable, Sequence
from pathlib import Path
from types import TracebackType
from typing import IO

from modelfs.testing.fake_dataset import logic
from modelfs.testing.fake_dataset.cli import READY_LINE

_LIVE: weakref.WeakSet[FakeDatasetController] = weakref.WeakSet()


class FakeDatasetError(RuntimeError):
    """The fake Dataset controller did not start, or died."""


def _parent_death_signal() -> Callable[[], None] | None:
    if not sys.platform.startswith("linux"):
        return None

    def preexec() -> None:
        with contextlib.suppress(OSError, AttributeError):
            libc = ctypes.CDLL("libc.so.6", use_errno=True)
            libc.prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG

    return preexec


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
        self.process: subprocess.Popen[bytes] | None = None
        self._log_file: IO[bytes] | None = None

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
        if self.process is not None:
            return self
        if self._log_arg is None:
            handle, name = tempfile.mkstemp(prefix="fake-dataset-", suffix=".log")
            os.close(handle)
            self.log_path = Path(name)
        else:
            self.log_path = self._log_arg
            self.log_path.parent.mkdir(parents=True, exist_ok=True)
        self._log_file = self.log_path.open("ab")
        self.process = subprocess.Popen(
            self.argv(),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=self._log_file,
            start_new_session=True,
            preexec_fn=_parent_death_signal(),
            close_fds=True,
        )
        _LIVE.add(self)
        try:
            self._wait_ready()
        except BaseException:
            self.stop()
            raise
        return self

    def _wait_ready(self) -> None:
        assert self.process is not None and self.process.stdout is not None
        deadline = time.monotonic() + self.startup_timeout
        buffer = b""
        with selectors.DefaultSelector() as selector:
            selector.register(self.process.stdout, selectors.EVENT_READ)
            while True:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise FakeDatasetError(
                        "the fake Dataset controller is not ready after "
                        f"{self.startup_timeout:.0f}s;"
                        f" its log:\n{self.log_text()[-3000:]}"
                    )
                if selector.select(timeout=min(left, 0.5)):
                    chunk = os.read(self.process.stdout.fileno(), 4096)
                    if not chunk:
                        code = self.process.wait(timeout=5)
                        raise FakeDatasetError(
                            f"the fake Dataset controller exited ({code}) while starting;"
                            f" its log:\n{self.log_text()[-3000:]}"
                        )
                    buffer += chunk
                    if READY_LINE.encode() in buffer.splitlines():
                        return

    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def stop(self) -> int | None:
        """SIGTERM to its process group, SIGKILL after `stop_grace`. Returns the exit code.
        Safe to call twice."""
        process, self.process = self.process, None
        code = None
        if process is not None:
            if process.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(process.pid, signal.SIGTERM)
                try:
                    code = process.wait(timeout=self.stop_grace)
                except subprocess.TimeoutExpired:
                    with contextlib.suppress(ProcessLookupError):
                        os.killpg(process.pid, signal.SIGKILL)
                    code = process.wait()
            else:
                code = process.returncode
            if process.stdout is not None:
                process.stdout.close()
        if self._log_file is not None:
            self._log_file.close()
            self._log_file = None
        _LIVE.discard(self)
        return code

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
