"""Run `modelfs run` as a child process, the way it runs in a cluster: its own process, its own
kubeconfig (identity), its log in a file. Used by the end-to-end tests and the sandbox."""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import socket
import subprocess
import sys
import tempfile
import urllib.error
import urllib.request
import weakref
from collections.abc import Sequence
from pathlib import Path
from types import TracebackType

from modelfs.testing.process import Child


class OperatorError(RuntimeError):
    pass


#: Every OperatorProcess made in this interpreter, so that tests can check each one's log.
LIVE: weakref.WeakSet[OperatorProcess] = weakref.WeakSet()
#: A text-format line at error level (`E1127 07:59:27.123 logger] ...`) or critical (`C...`).
_ERROR_LINE = re.compile(r"^[EC]\d{4} \d\d:\d\d:\d\d")


def problem_lines(text: str) -> list[str]:
    """The lines of an operator log that show a failure: a Traceback, or an error-level line
    (text or JSON format). An operator that works logs neither."""
    found = []
    for line in text.splitlines():
        if "Traceback (most recent call last)" in line or _ERROR_LINE.match(line):
            found.append(line)
        elif line.startswith("{"):
            with contextlib.suppress(ValueError):
                record = json.loads(line)
                if isinstance(record, dict):
                    level = str(record.get("severity") or record.get("levelname") or "")
                    if level.lower() in ("error", "critical"):
                        found.append(line)
    return found


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class OperatorProcess:
    """`python -m modelfs run` against `kubeconfig`, until `stop()` (or `kill()`)."""

    def __init__(
        self,
        kubeconfig: Path | str,
        *,
        namespaces: Sequence[str] = (),
        log_path: Path | str | None = None,
        log_format: str = "text",
        extra_args: Sequence[str] = (),
        python: str = sys.executable,
        startup_timeout: float = 60.0,
        die_with_parent: bool = False,
    ) -> None:
        """`die_with_parent`: on Linux the child gets SIGKILL when the thread that started it
        ends (PR_SET_PDEATHSIG), so a SIGKILLed parent leaves no operator behind; start it
        from the main thread then."""
        self.kubeconfig = Path(kubeconfig)
        self.namespaces = tuple(namespaces)
        self.log_format = log_format
        self.extra_args = tuple(extra_args)
        self.python = python
        self.startup_timeout = startup_timeout
        self.die_with_parent = die_with_parent
        if log_path is None:
            handle, name = tempfile.mkstemp(prefix="modelfs-operator-", suffix=".log")
            os.close(handle)
            log_path = name
        self.log_path = Path(log_path)
        self.health_port = free_port()
        self.metrics_port = free_port()
        self.child: Child | None = None
        self.checked_offset = 0
        """How far `unchecked_problems` has read the log."""
        LIVE.add(self)

    def argv(self) -> list[str]:
        scope = [arg for ns in self.namespaces for arg in ("--namespace", ns)] or ["-A"]
        return [
            self.python,
            "-m",
            "modelfs",
            "run",
            *scope,
            "--health-port",
            str(self.health_port),
            "--metrics-port",
            str(self.metrics_port),
            "--log-format",
            self.log_format,
            *self.extra_args,
        ]

    def start(self) -> OperatorProcess:
        if self.alive():
            return self
        env = {**os.environ, "KUBECONFIG": str(self.kubeconfig)}
        self.child = Child.start(
            "modelfs run",
            self.argv(),
            self.log_path,
            env=env,
            die_with_parent=self.die_with_parent,
        )
        url = f"http://127.0.0.1:{self.health_port}/healthz"

        def healthy() -> bool:
            with urllib.request.urlopen(url, timeout=1) as response:
                return bool(response.status == 200)

        try:
            self.child.wait_until(
                healthy,
                self.startup_timeout,
                OperatorError,
                poll=0.2,
                transient=(OSError, urllib.error.URLError),
            )
        except BaseException:
            self.stop()
            raise
        return self

    @property
    def process(self) -> subprocess.Popen[bytes] | None:
        return None if self.child is None else self.child.process

    def metrics(self) -> str:
        url = f"http://127.0.0.1:{self.metrics_port}/metrics"
        with urllib.request.urlopen(url, timeout=5) as response:
            return str(response.read().decode())

    def alive(self) -> bool:
        return self.child is not None and self.child.alive()

    def log_text(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def unchecked_problems(self) -> list[str]:
        """`problem_lines` of the log written since the last call (each line is reported once)."""
        if not self.log_path.exists():
            return []
        with self.log_path.open("rb") as log:
            log.seek(self.checked_offset)
            data = log.read()
        complete = data[: data.rfind(b"\n") + 1]  # a line being written waits for next time
        self.checked_offset += len(complete)
        return problem_lines(complete.decode(errors="replace"))

    def log_tail(self, lines: int = 40) -> str:
        return "\n".join(self.log_text().splitlines()[-lines:])

    def rss_bytes(self) -> int:
        """Resident memory of the operator process (Linux), 0 when unknown."""
        return 0 if self.child is None else self.child.rss_bytes()

    def kill(self) -> None:
        """SIGKILL, as a crash or an evicted pod: no cleanup runs."""
        self._signal(signal.SIGKILL, grace=10)

    def stop(self) -> None:
        """SIGTERM, a graceful shutdown; SIGKILL after 20 s."""
        self._signal(signal.SIGTERM, grace=20)

    def _signal(self, signum: int, grace: float) -> None:
        child, self.child = self.child, None
        if child is not None:
            child.stop(grace, signum)

    def __enter__(self) -> OperatorProcess:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
