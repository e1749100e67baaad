"""The benchmark is not run by `make test` (it takes minutes), but it must not rot: it imports
and parses its arguments."""

from __future__ import annotations

import subprocess
import sys


def test_the_benchmark_imports_and_answers_help() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "benchmarks.operator_bench", "--help"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert "--syncs" in done.stdout and "--fake-timings" in done.stdout
