"""`modelfs sandbox`, the README's run command, run as a newcomer runs it: a subprocess that
starts its own control plane, Dataset controller and operator, applies config/samples and stays
up until Ctrl-C. The Dataset controller is the one `--dataset-controller` chooses (the real
BaizeAI/dataset controller with the pod simulator by default; the fake with `=fake`).

The README's first command is `make run`, and `make run` is `$(BIN)/modelfs sandbox` in the
virtualenv the Makefile bootstraps (`test_make_run_is_modelfs_sandbox` checks both). Running
`make run` from inside the tests would bootstrap a virtualenv from within the one running them,
so these tests run that virtualenv's `modelfs sandbox` directly: the same command, plus `--fast`
(1 s loader pods; near-instant downloads with the fake) and `--kubeconfig-out F` to reach the
sandbox from the test.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

pytestmark = pytest.mark.e2e

REPO = Path(__file__).resolve().parents[1]
SAMPLES = REPO / "config" / "samples"
#: What runs under the sandbox: each must be among its child processes, and gone after it.
BASE_COMPONENTS = {
    "etcd": "/etcd ",
    "kube-apiserver": "/kube-apiserver ",
    "kube-controller-manager": "/kube-controller-manager ",
    "operator": "-m modelfs run ",
}
ENGINE_COMPONENTS = {
    "real": {
        "dataset controller": "/dataset-controller ",
        "pod simulator": "-m modelfs.testing.podsim ",
    },
    "fake": {"fake Dataset controller": "-m modelfs.testing.fake_dataset "},
}


def components(engine: str) -> dict[str, str]:
    return {**BASE_COMPONENTS, **ENGINE_COMPONENTS[engine]}


def modelfs_command() -> list[str]:
    """The venv's `modelfs` console script, what `make run` runs."""
    script = Path(sys.executable).parent / "modelfs"
    return [str(script)] if script.exists() else [sys.executable, "-m", "modelfs"]


class Sandbox:
    """`modelfs sandbox ...` as a child process, its output collected line by line."""

    def __init__(self, *args: str, env: dict[str, str] | None = None) -> None:
        self.argv = [*modelfs_command(), "sandbox", *args]
        self.process = subprocess.Popen(
            self.argv,
            cwd=REPO,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            env={**os.environ, **(env or {})},
        )
        self.lines: list[str] = []
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self.lines.append(line.rstrip("\n"))

    def output(self) -> str:
        return "\n".join(self.lines)

    def wait_for(self, pattern: str, timeout: float) -> re.Match[str]:
        deadline = time.monotonic() + timeout
        regex = re.compile(pattern)
        while time.monotonic() < deadline:
            for line in list(self.lines):
                if found := regex.search(line):
                    return found
            if self.process.poll() is not None:
                self._reader.join(5)
                pytest.fail(f"sandbox exited ({self.process.returncode}):\n{self.output()}")
            time.sleep(0.2)
        pytest.fail(f"no line matching {pattern!r} after {timeout}s:\n{self.output()}")

    def stop(self, signum: int, timeout: float = 90) -> int:
        self.process.send_signal(signum)
        code = self.process.wait(timeout)
        self._reader.join(10)
        return code

    def kill(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(60)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


@pytest.fixture
def sandboxes() -> Iterator[list[Sandbox]]:
    started: list[Sandbox] = []
    yield started
    for sandbox in started:
        sandbox.kill()


# --------------------------------------------------------------------------- processes


def _stat(pid: int) -> tuple[int, str, int] | None:
    """(parent pid, state, start time) of a process, None when gone."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = text[text.rindex(")") + 2 :].split()
    return int(fields[1]), fields[0], int(fields[19])


def descendants(root: int) -> dict[int, tuple[int, str]]:
    """Every live descendant of `root`: pid -> (start time, command line)."""
    parents: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit() and (stat := _stat(int(entry.name))) is not None:
            parents.setdefault(stat[0], []).append(int(entry.name))
    found: dict[int, tuple[int, str]] = {}
    todo = list(parents.get(root, []))
    while todo:
        pid = todo.pop()
        stat = _stat(pid)
        if stat is None:
            continue
        try:
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
        except OSError:
            continue
        found[pid] = (stat[2], cmdline)
        todo.extend(parents.get(pid, []))
    return found


def still_running(processes: dict[int, tuple[int, str]]) -> list[str]:
    """The processes of `processes` still alive (same pid and start time, not a zombie)."""
    left = []
    for pid, (started, cmdline) in processes.items():
        stat = _stat(pid)
        if stat is not None and stat[2] == started and stat[1] != "Z":
            left.append(f"{pid}: {cmdline[:150]}")
    return left


def wait_gone(processes: dict[int, tuple[int, str]], within: float = 15) -> list[str]:
    deadline = time.monotonic() + within
    while (left := still_running(processes)) and time.monotonic() < deadline:
        time.sleep(0.2)
    return left


def components_of(processes: dict[int, tuple[int, str]], engine: str) -> dict[str, int]:
    return {
        name: pid
        for name, needle in components(engine).items()
        for pid, (_, cmdline) in processes.items()
        if needle in cmdline + " "
    }


# --------------------------------------------------------------------------- kubectl


def run_kubectl(
    kubectl: str, kubeconfig: Path, cache: Path, *args: str, check: bool = True
) -> subprocess.CompletedProcess[str]:
    done = subprocess.run(
        [kubectl, *args],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        env={**os.environ, "KUBECONFIG": str(kubeconfig), "KUBECACHEDIR": str(cache)},
    )
    if check:
        assert done.returncode == 0, f"kubectl {shlex.join(args)}:\n{done.stdout}{done.stderr}"
    return done


def condition(item: dict[str, Any], kind: str) -> dict[str, Any]:
    for found in (item.get("status") or {}).get("conditions") or []:
        if found.get("type") == kind:
            return dict(found)
    return {}


def samples_not_ready(items: list[dict[str, Any]]) -> list[str]:
    waiting = []
    for item in items:
        kind, meta = item["kind"], item["metadata"]
        name = f"{kind} {meta.get('namespace', '')}/{meta['name']}"
        if kind in ("ModelSource", "Model"):
            if condition(item, "Ready").get("status") != "True":
                waiting.append(f"{name}: Ready={condition(item, 'Ready')}")
        elif kind in ("ModelSync", "ModelReference"):
            status = item.get("status") or {}
            if status.get("phase") != "READY":
                waiting.append(f"{name}: {status.get('phase')} {condition(item, 'Ready')}")
    return waiting


def commands_printed(output: str) -> list[str]:
    """The kubectl commands under "Try, in another terminal:"."""
    block = output.split("Try, in another terminal:", 1)[1].split("\nLogs:", 1)[0]
    commands = [line.split("   #", 1)[0].strip() for line in block.splitlines()]
    return [c for c in commands if c and shlex.split(c)[0].endswith("kubectl")]


#: (ModelSync, status.catalog.size, whether it has a revision) served by the sandbox's local
#: catalogs (modelfs/testing/sandbox_catalogs.py): Hub, ModelScope, S3 (no revision: its
#: listing is its state), HTTP (the ETag).
SAMPLE_CATALOG = (
    ("qwen2-5-instruct-0.5b", "953.3MiB", True),
    ("deepseek-r1-distill-qwen-1.5b", "3.3GiB", True),
    ("llama-3-8b-instruct", "15.0GiB", False),
    ("gpt2-v1", "522.7MiB", True),
)
TINYLLAMA_COMMIT = "fe8a4ea1ffedaf415f4da2f062534de366a451e6"


# --------------------------------------------------------------------------- tests


def test_make_run_is_modelfs_sandbox() -> None:
    """The README's run command is `make run`, and `make run` is `modelfs sandbox` in the
    bootstrapped virtualenv: what the other tests here run."""
    readme = (REPO / "README.md").read_text()
    section = readme.split("## Try it with no cluster: `make run`", 1)[1].split("\n## ", 1)[0]
    block = section.split("```bash\n", 1)[1].split("```", 1)[0]
    assert block.splitlines()[0].split("#")[0].strip() == "make run"
    makefile = (REPO / "Makefile").read_text()
    target = re.search(r"^run: (.*)\n((?:\t.*\n)+)", makefile, re.MULTILINE)
    assert target is not None, "no run target in the Makefile"
    # The venv bootstrap, and the Dataset controller's build (with its own progress lines).
    assert target.group(1).split("##")[0].split() == ["$(STAMP)", "dataset-controller"]
    assert target.group(2).strip().split() == ["$(BIN)/modelfs", "sandbox", "$(SANDBOX_ARGS)"]


def test_samples_ready_through_the_kubeconfig_then_ctrl_c_stops_everything(
    kubectl: str, tmp_path: Path, sandboxes: list[Sandbox], dataset_controller: str
) -> None:
    kubeconfig = tmp_path / "sandbox.kubeconfig"
    cache = tmp_path / "kube-cache"
    started = time.monotonic()
    engine = f"--dataset-controller={dataset_controller}"
    sandbox = Sandbox("--fast", engine, "--kubeconfig-out", str(kubeconfig))
    sandboxes.append(sandbox)
    state = Path(sandbox.wait_for(r"log: (/\S+)/logs/operator\.log", 240).group(1))
    assert state.is_dir() and kubeconfig.is_file()
    # The samples, through the sandbox's kustomization pointing their endpoints at its local
    # catalogs (config/samples itself keeps the real ones).
    applied = sandbox.wait_for(r"^\s+\$ (.*kubectl .* apply -k \S+)$", 60).group(1)
    overlay = Path(shlex.split(applied)[-1])
    assert shlex.split(applied)[-2:-1] == ["-k"] and overlay.name == "samples", applied
    kustomization = (overlay if overlay.is_absolute() else REPO / overlay) / "kustomization.yaml"
    assert kustomization.parent.parent == state, applied
    assert "../" in kustomization.read_text() and "127.0.0.1" in kustomization.read_text()
    sandbox.wait_for(r"\] Live view of every ModelSource", 60)  # printed once applied

    # Every sample READY, seen through the kubeconfig the sandbox wrote.
    waiting: list[str] = ["(not looked yet)"]
    items: list[dict[str, Any]] = []
    while waiting and time.monotonic() - started < 300:
        got = run_kubectl(kubectl, kubeconfig, cache, "get", "-k", str(SAMPLES), "-o", "json")
        items = json.loads(got.stdout)["items"]
        waiting = samples_not_ready(items)
        assert sandbox.process.poll() is None, sandbox.output()
        time.sleep(0.5)
    assert not waiting, "\n".join(waiting) + f"\n{sandbox.output()}"
    ready_seconds = time.monotonic() - started
    kinds = {item["kind"] for item in items}
    # The local catalogs answered: SIZE (and REVISION, which S3 has none of) for the Hub,
    # ModelScope, S3, HTTP samples; the Git sample's pinned commit.
    catalogs = {
        item["metadata"]["name"]: (item.get("status") or {}).get("catalog") or {}
        for item in items
        if item["kind"] == "ModelSync"
    }
    for name, size, revision in SAMPLE_CATALOG:
        found = catalogs.get(name, {})
        assert found.get("size") == size, f"{name}: {found}"
        assert (found.get("revision") is not None) == revision, f"{name}: {found}"
    assert catalogs["tinyllama-chat-v1.0"].get("revision") == TINYLLAMA_COMMIT, catalogs
    shown = run_kubectl(kubectl, kubeconfig, cache, "get", "msync", "-A").stdout
    print(f"\n$ kubectl get msync -A\n{shown}")
    assert "SIZE" in shown and "REVISION" in shown, shown
    assert {"ModelSource", "Model", "ModelSync", "ModelReference"} <= kinds

    # The live view ends with a summary, then the commands to try.
    sandbox.wait_for(r"Settled: \d+ objects", 60)
    output = sandbox.output()
    counts = {
        kind: sum(item["kind"] == kind for item in items)
        for kind in ("ModelSource", "Model", "ModelSync", "ModelReference")
    }
    for kind, count in counts.items():
        state_word = "READY" if kind in ("ModelSync", "ModelReference") else "Ready"
        assert re.search(rf"{kind}s\s+{count} {state_word}\b", output), output
    for phase in ("PENDING", "PROCESSING", "READY"):
        assert re.search(rf"\] ModelSync \S+: {phase}\b", output), f"no {phase} shown:\n{output}"

    # The commands it prints work on the samples.
    commands = commands_printed(output)
    assert any(c.endswith("kubectl get modelfs -A") for c in commands), commands
    patched = None
    for command in commands:
        args = shlex.split(command)[1:]  # kubectl, or the venv's when none is on PATH
        if "-w" in args or args[0] == "delete":
            continue  # a watch never ends; deleting the samples is for the user's own time
        done = run_kubectl(kubectl, kubeconfig, cache, *args)
        if args[0] == "patch":
            patched = args[args.index("-n") + 1], args[args.index("-n") + 2]
        if args[:2] == ["get", "modelfs"]:
            for column in ("PHASE", "READY", "DATASET"):
                assert column in done.stdout, done.stdout
    assert patched is not None, commands
    namespace, name = patched
    # The raised syncRound is a new download round, which the sandbox reports as it happens.
    sandbox.wait_for(rf"\] ModelSync {namespace}/{re.escape(name)}: READY .*round 2\)", 60)

    processes = descendants(sandbox.process.pid)
    found = components_of(processes, dataset_controller)
    assert set(found) == set(components(dataset_controller)), f"{found}\n{processes}"

    assert sandbox.stop(signal.SIGINT) == 0, sandbox.output()
    assert not wait_gone(processes), sandbox.output()
    assert not state.exists(), f"{state} left behind:\n{sandbox.output()}"
    assert not kubeconfig.exists()  # it pointed at a server that is gone
    output = sandbox.output()
    engine_stop = re.search(r"Stopping the (fake )?Dataset controller", output)
    assert engine_stop is not None, output
    stops = [
        output.index("Stopping the operator"),
        engine_stop.start(),
        output.index("Stopping the control plane"),
    ]
    assert stops == sorted(stops), output
    print(f"\nsandbox --fast {engine}: every sample READY after {ready_seconds:.1f}s")


@pytest.mark.parametrize("engine", ["real", "fake"])
def test_sigterm_stops_an_empty_sandbox_and_keep_keeps_its_state(
    kubectl: str, tmp_path: Path, sandboxes: list[Sandbox], engine: str, dataset_controller: str
) -> None:
    if engine == "real" and dataset_controller != "real":
        pytest.skip("the real Dataset controller (--dataset-controller=real)")
    kubeconfig = tmp_path / "sandbox.kubeconfig"
    sandbox = Sandbox(
        "--fast",
        "--no-samples",
        "--keep",
        f"--dataset-controller={engine}",
        "--kubeconfig-out",
        str(kubeconfig),
    )
    sandboxes.append(sandbox)
    state = Path(sandbox.wait_for(r"log: (/\S+)/logs/operator\.log", 240).group(1))
    sandbox.wait_for(r"Up, 0 modelfs objects", 60)
    assert "Applying the samples" not in sandbox.output()
    got = run_kubectl(kubectl, kubeconfig, tmp_path / "cache", "get", "modelfs", "-A")
    assert "No resources found" in got.stderr
    commands = commands_printed(sandbox.output())
    assert any(c.endswith("kubectl apply -k config/samples") for c in commands), commands
    processes = descendants(sandbox.process.pid)
    assert set(components_of(processes, engine)) == set(components(engine)), processes
    try:
        assert sandbox.stop(signal.SIGTERM) == 0, sandbox.output()
        assert not wait_gone(processes), sandbox.output()
        assert (state / "logs" / "operator.log").is_file(), sandbox.output()
        engine_log = "dataset-controller.log" if engine == "real" else "fake-dataset.log"
        assert (state / "logs" / engine_log).is_file(), sandbox.output()
        assert (state / "controlplane" / "logs" / "kube-apiserver.log").is_file()
        assert kubeconfig.is_file()
        assert f"Kept {state}" in sandbox.output()
    finally:
        subprocess.run(["rm", "-rf", str(state)], check=False)
