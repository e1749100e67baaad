"""`modelfs sandbox` without a cluster: the live view, "settled", the commands it prints, and
the errors a newcomer can meet before anything starts (Go missing, a failing build, a port in
use). The sandbox itself runs in e2e/test_sandbox.py."""

from __future__ import annotations

import io
import os
import socket
import stat
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from modelfs.testing.sandbox import (
    Console,
    LiveView,
    SandboxError,
    all_settled,
    check_port,
    commands_to_try,
    row_of,
    rows_of,
    summary,
)

REPO = Path(__file__).resolve().parents[1]


def obj(
    namespace: str,
    name: str,
    *,
    phase: str | None = None,
    ready: str | None = None,
    reason: str = "",
    message: str = "",
    **extra: Any,
) -> dict[str, Any]:
    status: dict[str, Any] = dict(extra)
    if phase:
        status["phase"] = phase
    if ready:
        status["conditions"] = [
            {"type": "Ready", "status": ready, "reason": reason, "message": message}
        ]
    return {"metadata": {"namespace": namespace, "name": name}, "status": status}


class Tty(io.StringIO):
    def isatty(self) -> bool:
        return True


# --------------------------------------------------------------------------- rows, settled


def test_a_sync_settles_on_ready_or_failed_only() -> None:
    for phase, settled in (
        (None, False),
        ("PENDING", False),
        ("PROCESSING", False),
        ("READY", True),
        ("FAILED", True),
    ):
        row = row_of("ModelSync", obj("ns", "s", phase=phase, ready="False", reason="Pending"))
        assert row.settled is settled, phase
        assert row.state == (phase or "-")
    row = row_of("ModelReference", obj("team", "r", phase="READY", ready="True"))
    assert row.settled and row.ref == "team/r"


def test_a_source_or_model_settles_on_any_ready_condition() -> None:
    assert not row_of("ModelSource", obj("ns", "src")).settled
    refused = row_of(
        "ModelSource", obj("ns", "src", ready="False", reason="InvalidConfig", message="bad")
    )
    assert refused.settled and refused.state == "NotReady"
    assert (refused.reason, refused.message) == ("InvalidConfig", "bad")
    assert row_of("Model", obj("ns", "m", ready="True")).state == "Ready"
    assert row_of("Model", obj("ns", "m", ready="Unknown")).state == "Unknown"


def test_settled_needs_every_expected_object() -> None:
    rows = rows_of({"ModelSync": [obj("ns", "a", phase="READY")]})
    assert all_settled(rows)
    assert not all_settled(rows, {("ModelSync", "ns", "a"), ("ModelSync", "ns", "b")})
    assert all_settled([], set())  # an empty sandbox (--no-samples) is settled at once
    more = rows_of({"ModelSync": [obj("ns", "a", phase="READY"), obj("ns", "b", phase="PENDING")]})
    assert not all_settled(more)


def test_rows_are_ordered_by_kind_then_name_and_summarised() -> None:
    rows = rows_of(
        {
            "ModelReference": [obj("t", "r", phase="READY")],
            "ModelSync": [obj("ns", "b", phase="FAILED"), obj("ns", "a", phase="READY")],
            "ModelSource": [obj("ns", "s", ready="True")],
        }
    )
    assert [(r.kind, r.name) for r in rows] == [
        ("ModelSource", "s"),
        ("ModelSync", "a"),
        ("ModelSync", "b"),
        ("ModelReference", "r"),
    ]
    lines = summary(rows)
    assert lines[0].split() == ["ModelSources", "1", "Ready"]
    assert lines[1].split() == ["ModelSyncs", "1", "FAILED,", "1", "READY"]


# --------------------------------------------------------------------------- live view


def test_line_mode_prints_each_change_once_and_deletions() -> None:
    out = io.StringIO()
    view = LiveView(Console(out, io.StringIO()))
    pending = row_of("ModelSync", obj("ns", "s", phase="PENDING", ready="False", reason="Pending"))
    assert view.update([pending])
    assert not view.update([pending])  # nothing new: nothing printed
    ready = row_of(
        "ModelSync", obj("ns", "s", phase="READY", ready="True", reason="DatasetReady", message="m")
    )
    assert view.update([ready])
    assert view.update([])
    lines = out.getvalue().splitlines()
    assert len(lines) == 3, lines
    assert lines[0].endswith("] ModelSync ns/s: PENDING (Pending)")
    assert lines[1].endswith("] ModelSync ns/s: READY (DatasetReady: m)")
    assert lines[2].endswith("] ModelSync ns/s: deleted")
    assert "\x1b" not in out.getvalue()


def test_terminal_mode_redraws_the_table_in_place(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COLUMNS", "60")
    monkeypatch.setenv("LINES", "20")
    monkeypatch.delenv("NO_COLOR", raising=False)
    monkeypatch.setenv("TERM", "xterm")
    out = Tty()
    console = Console(out, io.StringIO())
    view = LiveView(console, redraw=console.tty)
    long = "x" * 200
    rows = [
        row_of("ModelSource", obj("ns", "src", ready="True", reason="Ready", message=long)),
        row_of("ModelSync", obj("ns", "s", phase="PROCESSING")),
    ]
    view.update(rows)
    first = out.getvalue()
    assert "\x1b[" not in first.split("\n", 1)[0]  # nothing to erase the first time
    table = first.splitlines()
    assert table[0].split() == ["KIND", "NAMESPACE/NAME", "STATE", "FOR", "WHY"]
    assert "1/2 settled" in table[-1]
    for line in table:
        visible = line.replace("\x1b[32m", "").replace("\x1b[33m", "").replace("\x1b[0m", "")
        assert len(visible) < 60, line
    assert table[1].endswith("…")
    assert "\x1b[33mPROCESSING" in first  # coloured in a terminal
    view.update(rows)
    assert out.getvalue()[len(first) :].startswith(f"\x1b[{len(table)}F\x1b[J")
    view.freeze()  # settled: later changes as lines, below the last table
    before = len(out.getvalue())
    view.update([rows[0], row_of("ModelSync", obj("ns", "s", phase="READY"))])
    assert out.getvalue()[before:].lstrip().startswith("[")
    assert out.getvalue()[before:].rstrip().endswith("ModelSync ns/s: READY")


def test_commands_to_try_raise_the_round_of_a_download() -> None:
    nfs = obj("ns", "nfs-sync", phase="READY", source={"type": "NFS", "uri": "nfs://x"})
    hf = obj("ns", "hf-sync", phase="READY", source={"type": "HUGGING_FACE", "uri": "h"})
    nfs["spec"] = {"syncRound": 1}
    hf["spec"] = {"syncRound": 4}
    lists = {"ModelSync": [nfs, hf], "ModelReference": [obj("team", "ref", phase="READY")]}
    rows = rows_of(lists)
    objects = {row_of(k, o).key: o for k, items in lists.items() for o in items}
    commands = commands_to_try("kubectl", Path("/tmp/k"), rows, objects)
    assert commands[:2] == ["export KUBECONFIG=/tmp/k", "kubectl get modelfs -A"]
    assert "kubectl describe msync -n ns hf-sync" in commands
    (patch,) = [c for c in commands if " patch " in c]
    assert """-p '{"spec":{"syncRound":5}}'""" in patch
    assert "kubectl get mref -n team ref -o yaml" in commands
    empty = commands_to_try("kubectl", Path("/tmp/k"), [], {})
    assert not any(" patch " in c or "describe" in c for c in empty)


# --------------------------------------------------------------------------- clear errors


def test_check_port_refuses_a_port_in_use() -> None:
    check_port(0)
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        port = listener.getsockname()[1]
        with pytest.raises(SandboxError, match=rf"port {port} .*--port"):
            check_port(port)


def sandbox_cli(
    tmp_path: Path, *args: str, path: str = "/usr/bin:/bin"
) -> subprocess.CompletedProcess[str]:
    """`modelfs sandbox` with an empty binaries cache and only `path` on PATH."""
    env = {
        k: v for k, v in os.environ.items() if k not in ("KUBEBUILDER_ASSETS", "MODELFS_CACHE_DIR")
    }
    env.update(MODELFS_CACHE_DIR=str(tmp_path / "cache"), PATH=path, NO_COLOR="1")
    return subprocess.run(
        [sys.executable, "-m", "modelfs", "sandbox", *args],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
        check=False,
    )


def test_port_in_use_is_an_error_before_anything_starts(tmp_path: Path) -> None:
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        port = listener.getsockname()[1]
        done = sandbox_cli(tmp_path, "--port", str(port))
    assert done.returncode == 1, done.stderr
    assert f"error: port {port} on 127.0.0.1 is not available" in done.stderr
    assert "Starting etcd" not in done.stdout


@pytest.mark.skipif(
    any(Path(p, "go").exists() for p in ("/usr/bin", "/bin")), reason="go in /usr/bin"
)
def test_go_missing_says_what_to_install(tmp_path: Path) -> None:
    done = sandbox_cli(tmp_path)
    assert done.returncode == 1, done.stderr
    assert "Go is not installed" in done.stderr
    assert "https://go.dev/dl/" in done.stderr
    assert "KUBEBUILDER_ASSETS" in done.stderr
    assert not list((tmp_path / "cache").glob("k8s-*/bin/*"))


def test_a_failing_build_shows_its_log_tail(tmp_path: Path) -> None:
    fake_bin = tmp_path / "bin"
    fake_bin.mkdir()
    go = fake_bin / "go"
    go.write_text("#!/bin/sh\necho 'go: simulated toolchain failure (exit 3)' >&2\nexit 3\n")
    go.chmod(go.stat().st_mode | stat.S_IXUSR)
    done = sandbox_cli(tmp_path, path=f"{fake_bin}:/usr/bin:/bin")
    assert done.returncode == 1, done.stderr
    assert "building the control plane binaries failed" in done.stderr
    assert "go: simulated toolchain failure (exit 3)" in done.stderr  # the log's tail
    assert "Building etcd" in done.stdout  # progress was shown
    log = tmp_path / "cache" / "build-control-plane.log"
    assert "simulated toolchain failure" in log.read_text()


def fake_control_plane(tmp_path: Path) -> None:
    """Control plane "binaries" in the empty cache of sandbox_cli, each exiting 1 at once."""
    from modelfs.testing.controlplane import BINARIES, ETCD_VERSION, K8S_VERSION

    binaries = tmp_path / "cache" / f"k8s-{K8S_VERSION}-etcd-{ETCD_VERSION}" / "bin"
    binaries.mkdir(parents=True)
    for name in BINARIES:
        (binaries / name).write_text("#!/bin/sh\nexit 1\n")
        (binaries / name).chmod(0o755)


def failing_go(tmp_path: Path) -> str:
    """A PATH whose `go` fails."""
    fake_bin = tmp_path / "bin"
    fake_bin.mkdir()
    go = fake_bin / "go"
    go.write_text("#!/bin/sh\necho 'go: simulated toolchain failure (exit 3)' >&2\nexit 3\n")
    go.chmod(go.stat().st_mode | stat.S_IXUSR)
    return f"{fake_bin}:/usr/bin:/bin"


def test_a_failing_dataset_controller_build_shows_its_log_tail(tmp_path: Path) -> None:
    """With the control plane binaries there, the Dataset controller is built next (the real
    one is the default), before anything starts."""
    fake_control_plane(tmp_path)
    done = sandbox_cli(tmp_path, path=failing_go(tmp_path))
    assert done.returncode == 1, done.stderr
    assert "building the Dataset controller failed" in done.stderr
    assert "go: simulated toolchain failure (exit 3)" in done.stderr
    assert "Building the BaizeAI/dataset controller v0.1.6" in done.stdout
    assert "Starting etcd" not in done.stdout
    log = tmp_path / "cache" / "build-dataset-controller.log"
    assert "simulated toolchain failure" in log.read_text()


def test_the_fake_needs_no_dataset_controller_build(tmp_path: Path) -> None:
    """`--dataset-controller=fake` keeps the old path: no build of the Dataset controller, on to
    starting the control plane (whose stand-in binaries fail here)."""
    fake_control_plane(tmp_path)
    done = sandbox_cli(tmp_path, "--dataset-controller=fake", path=failing_go(tmp_path))
    assert done.returncode == 1, done.stderr
    assert "Building" not in done.stdout
    assert "Starting etcd" in done.stdout
    assert "the control plane did not start" in done.stderr
