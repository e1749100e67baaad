"""SIGTERM ends a pytest session that uses modelfs's plugin, instead of failing one test and
going on with the next."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path

TESTS = """
import time

from modelfs.testing import controlplane

def test_first():
    controlplane._install_signal_handlers()  # as a control plane's start does
    open("started", "w").close()
    time.sleep(60)

def test_second():
    open("second-ran", "w").close()
"""


def test_sigterm_ends_the_whole_session(tmp_path: Path) -> None:
    (tmp_path / "test_slow.py").write_text(TESTS)
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "pytest",
            "-q",
            "-p",
            "modelfs.testing.pytest_plugin",
            "-p",
            "no:cacheprovider",
            "test_slow.py",
        ],
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    deadline = time.monotonic() + 60
    while not (tmp_path / "started").exists():
        assert process.poll() is None and time.monotonic() < deadline, process.stdout
        time.sleep(0.1)
    process.send_signal(signal.SIGTERM)
    output, _ = process.communicate(timeout=30)
    assert process.returncode == 128 + signal.SIGTERM, output
    assert "stopped by signal SIGTERM" in output, output
    assert not (tmp_path / "second-ran").exists(), output
