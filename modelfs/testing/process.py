"""`Child`: one child process of the test harness (a control-plane component, the Dataset
controller, the pod simulator, the fake Dataset controller, the operator), started, awaited and
stopped the same way for all.

    child = Child.start("podsim", argv, log_path, ready_pipe=True)
    child.wait_for_line(READY_LINE, timeout=30, error=MyError)   # or wait_until(check, ...)
    ...
    child.stop(grace=5)                                          # SIGTERM, then SIGKILL

Each child runs in a process group of its own (`start_new_session`), so a Ctrl-C at the
terminal reaches only the parent, which then stops its children in its own order; on Linux
it gets SIGKILL when the parent dies, even by SIGKILL (PR_SET_PDEATHSIG, from the main thread
only). Its stdout and stderr go to `log_path`, except with `ready_pipe`: stdout is then a pipe
the parent reads the child's ready line from (stderr, the log, still goes to the file).

No pytest here: the sandbox and the pod simulator import this module.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import selectors
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Self


def parent_death_signal() -> Callable[[], None] | None:
    """A preexec_fn asking Linux to SIGKILL the child when this process dies (even by SIGKILL).

    SIGKILL, not SIGTERM: every child gets it at once, and a kube-apiserver shutting down
    gracefully while its etcd vanishes can hang; what the harness runs is disposable.

    The signal fires when the *thread* that forked exits, so it is only used from the main
    thread, whose end is the process's end (elsewhere: None, and the child outlives a killed
    parent; the wrappers still stop it at interpreter exit).
    """
    if not sys.platform.startswith("linux"):
        return None
    if threading.current_thread() is not threading.main_thread():
        return None
    try:
        prctl = ctypes.CDLL(None, use_errno=True).prctl
    except (OSError, AttributeError):
        return None
    parent = os.getpid()
    pr_set_pdeathsig = 1

    def preexec() -> None:
        prctl(pr_set_pdeathsig, int(signal.SIGKILL))
        if os.getppid() != parent:  # the parent died before prctl took effect
            os._exit(1)

    return preexec


def tail(path: Path, lines: int = 40) -> str:
    """The last `lines` lines of a log file, "(no log)" when it cannot be read."""
    try:
        text = path.read_text(errors="replace").splitlines()
    except OSError:
        return "(no log)"
    return "\n".join(text[-lines:])


def stop_process(
    process: subprocess.Popen[bytes], grace: float, signum: int = signal.SIGTERM
) -> int | None:
    """`signum` to the process group of `process`, SIGKILL to the group after `grace` seconds
    (and in any case, for stragglers the leader left behind). Returns the exit code (None if
    the process is still not reaped 10 s after the SIGKILL)."""
    if process.poll() is None:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(process.pid, signum)
        with contextlib.suppress(subprocess.TimeoutExpired):
            process.wait(grace)
    # The group may hold stragglers even when the leader is gone.
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(process.pid, signal.SIGKILL)
    try:
        return process.wait(10)
    except subprocess.TimeoutExpired:
        return None
    finally:
        if process.stdout is not None:
            process.stdout.close()


@dataclass
class Child:
    """One running child process: `name` (in messages), `argv`, `log_path`, `process`."""

    name: str
    argv: list[str]
    log_path: Path
    process: subprocess.Popen[bytes]

    @classmethod
    def start(
        cls,
        name: str,
        argv: Sequence[str],
        log_path: Path,
        *,
        ready_pipe: bool = False,
        env: Mapping[str, str] | None = None,
        cwd: Path | str | None = None,
        die_with_parent: bool = True,
    ) -> Self:
        """Start `argv` with its output appended to `log_path` (stdout a pipe with
        `ready_pipe`); `die_with_parent`: PR_SET_PDEATHSIG (see `parent_death_signal`)."""
        argv = list(argv)
        log_path.parent.mkdir(parents=True, exist_ok=True)
        # The child holds its own descriptor of the log: the parent's can close at once.
        with log_path.open("ab") as log:
            process = subprocess.Popen(
                argv,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE if ready_pipe else log,
                stderr=log if ready_pipe else subprocess.STDOUT,
                env=None if env is None else dict(env),
                cwd=cwd,
                start_new_session=True,  # own process group: Ctrl-C of the terminal spares it
                preexec_fn=parent_death_signal() if die_with_parent else None,
                close_fds=True,
            )
        return cls(name, argv, log_path, process)

    @property
    def pid(self) -> int:
        return self.process.pid

    def alive(self) -> bool:
        return self.process.poll() is None

    def tail(self, lines: int = 40) -> str:
        return tail(self.log_path, lines)

    def _exited(self, error: type[Exception], code: int | None) -> Exception:
        return error(
            f"{self.name} exited with code {code} while starting;"
            f" the last lines of {self.log_path}:\n{self.tail()}"
        )

    def _not_ready(self, error: type[Exception], timeout: float, detail: str) -> Exception:
        return error(
            f"{self.name} is not ready after {timeout:.0f}s{detail};"
            f" the last lines of {self.log_path}:\n{self.tail()}"
        )

    def wait_for_line(self, line: str, timeout: float, error: type[Exception]) -> None:
        """Read the child's stdout (`ready_pipe`) until it prints `line`; `error(message)`, with
        the log's tail, when it exits first or `timeout` seconds pass."""
        stdout = self.process.stdout
        if stdout is None:
            raise ValueError(f"{self.name} was started without ready_pipe")
        deadline = time.monotonic() + timeout
        buffer = b""
        with selectors.DefaultSelector() as selector:
            selector.register(stdout, selectors.EVENT_READ)
            while line.encode() not in buffer.splitlines():
                left = deadline - time.monotonic()
                if left <= 0:
                    raise self._not_ready(error, timeout, "")
                if selector.select(timeout=min(left, 0.5)):
                    chunk = os.read(stdout.fileno(), 4096)
                    if not chunk:
                        with contextlib.suppress(subprocess.TimeoutExpired):
                            self.process.wait(timeout=5)
                        raise self._exited(error, self.process.returncode)
                    buffer += chunk

    def wait_until(
        self,
        ready: Callable[[], bool],
        timeout: float,
        error: type[Exception],
        *,
        detail: str = "",
        poll: float = 0.1,
        transient: tuple[type[Exception], ...] = (),
    ) -> None:
        """Call `ready()` every `poll` seconds until it is true (exceptions of `transient` count
        as not yet); `error(message)`, with the log's tail and `detail`, when the child exits
        first or `timeout` seconds pass."""
        deadline = time.monotonic() + timeout
        while True:
            if not self.alive():
                raise self._exited(error, self.process.returncode)
            with contextlib.suppress(*transient):
                if ready():
                    return
            if time.monotonic() > deadline:
                raise self._not_ready(error, timeout, detail)
            time.sleep(poll)

    def stop(self, grace: float, signum: int = signal.SIGTERM) -> int | None:
        """See `stop_process`. Safe to call twice."""
        return stop_process(self.process, grace, signum)

    def rss_bytes(self) -> int:
        """Resident memory from /proc (Linux), 0 when unknown."""
        try:
            for line in Path(f"/proc/{self.pid}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) * 1024
        except OSError:
            pass
        return 0
