"""Start/stop behaviour of ControlPlane and `modelfs controlplane start`: no orphans, clear
errors. These start their own short-lived control planes (a few seconds each)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from modelfs.testing.controlplane import ControlPlane, ControlPlaneError, find_binaries

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def binaries() -> Path:
    try:
        return find_binaries()
    except ControlPlaneError as error:
        pytest.fail(str(error), pytrace=False)


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # a zombie awaiting its reaper is as good as gone
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state != "Z"


def wait_dead(pids: list[int], within: float = 20.0) -> list[int]:
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        if not any(alive(p) for p in pids):
            return []
        time.sleep(0.1)
    return [p for p in pids if alive(p)]


def test_stop_ends_every_process_and_removes_the_workdir(binaries: Path) -> None:
    with ControlPlane(binaries, controllers=None) as cp:
        pids = [c.pid for c in cp.components.values()]
        workdir = cp.workdir
        assert workdir is not None and cp.kubeconfig.is_file()
        assert cp.get("/readyz") == b"ok"
        assert "kube-controller-manager" not in cp.components
    assert wait_dead(pids) == []
    assert not workdir.exists()
    cp.stop()  # idempotent


def test_failed_start_raises_with_the_log_tail(binaries: Path, tmp_path: Path) -> None:
    cp = ControlPlane(binaries, apiserver_flags={"no-such-flag": "1"}, workdir=tmp_path)
    with pytest.raises(ControlPlaneError) as raised:
        cp.start()
    message = str(raised.value)
    assert "kube-apiserver exited with code" in message
    assert "unknown flag: --no-such-flag" in message
    assert not cp.components  # etcd was stopped too
    assert "unknown flag: --no-such-flag" in (tmp_path / "logs" / "kube-apiserver.log").read_text()


def ignore_sigint() -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)


def start_cli(
    tmp_path: Path, *, sigint_ignored: bool = False
) -> tuple[subprocess.Popen[str], Path, str]:
    """`modelfs controlplane start`; `sigint_ignored`: started as a shell starts `cmd &` in a
    script (SIGINT ignored, which the child inherits)."""
    kubeconfig = tmp_path / "kubeconfig"
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "modelfs.cli",
            "controlplane",
            "start",
            "--kubeconfig-out",
            str(kubeconfig),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        preexec_fn=ignore_sigint if sigint_ignored else None,
    )
    assert process.stdout is not None
    lines = []
    for line in process.stdout:
        lines.append(line)
        if line.startswith("Press Ctrl-C"):
            break
    output = "".join(lines)
    assert "Control plane ready" in output, output
    return process, kubeconfig, output


def component_pids(parent: int) -> list[int]:
    out = subprocess.run(
        ["ps", "-o", "pid=", "--ppid", str(parent)], capture_output=True, text=True
    )
    return [int(p) for p in out.stdout.split()]


@pytest.mark.parametrize("sigint_ignored", [False, True], ids=["foreground", "started-with-&"])
def test_cli_runs_until_ctrl_c(tmp_path: Path, kubectl: str, sigint_ignored: bool) -> None:
    process, kubeconfig, output = start_cli(tmp_path, sigint_ignored=sigint_ignored)
    try:
        assert f"kubeconfig: {kubeconfig}" in output
        assert f"export KUBECONFIG={kubeconfig}" in output
        got = subprocess.run(
            [
                kubectl,
                "--kubeconfig",
                str(kubeconfig),
                "get",
                "namespace",
                "kube-system",
                "-o",
                "name",
            ],
            capture_output=True,
            text=True,
            check=True,
        )
        assert got.stdout.strip() == "namespace/kube-system"
        children = component_pids(process.pid)
        assert len(children) == 3
        process.send_signal(signal.SIGINT)
        # three components stopped in turn, each given 5 s after SIGTERM before a SIGKILL
        try:
            code = process.wait(60)
        except subprocess.TimeoutExpired:
            process.kill()
            rest = process.communicate(timeout=10)[0]
            raise AssertionError(f"still running 60 s after SIGINT; it printed:\n{rest}") from None
        assert code == 0
    finally:
        process.kill()
    assert wait_dead(children) == []


def test_killed_parent_leaves_no_orphans(tmp_path: Path, binaries: Path) -> None:
    process, _, output = start_cli(tmp_path)
    children = component_pids(process.pid)
    assert len(children) == 3
    workdir = Path(output.split("logs:", 1)[1].split()[0]).parent
    assert workdir.is_dir()
    process.kill()  # SIGKILL: no atexit, no handler; PR_SET_PDEATHSIG must do it
    process.wait(10)
    assert wait_dead(children) == []
    # the next start sweeps the work folder the killed run could not remove
    with ControlPlane(binaries, controllers=None):
        assert not workdir.exists()
