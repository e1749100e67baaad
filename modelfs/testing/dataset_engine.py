"""`DatasetEngine`: the REAL BaizeAI/dataset controller at work on a cluster, for tests and the
sandbox.

    with ControlPlane() as cp, DatasetEngine(cp.kubeconfig) as engine:   # returns once reconciling
        ...                                      # apply Datasets: Jobs run, PVCs bind, READY
    engine.log_text()                            # the controller's log, then the simulator's

Two child processes:

- the dataset controller, `github.com/BaizeAI/dataset/cmd` at `DATASET_VERSION`, built by
  `hack/build-dataset-controller.sh` (`make dataset-controller`) into
  `$MODELFS_CACHE_DIR/dataset-<version>/bin/dataset-controller`, run out of cluster with the
  admin kubeconfig, leader election off, metrics and health probes off, and `--config` a file
  rendered by `render_config()` the way the Helm chart renders it (loader Job backoffLimit
  settable: 0 makes a failing loader fail the round in seconds, the chart's 4 in minutes);
- the pod simulator (`modelfs.testing.podsim`), the scheduler and kubelet of one fake Node and
  a hostPath provisioner, unless `pod_simulator=False` (a cluster with real nodes).

The Dataset CRD comes from the same Go module (copied into the cache by the build script,
`dataset_crd_path()`), never from this project; `start()` installs it (`install_crd=False`
leaves that to the caller). The controller watches every namespace (v0.1.6 has no flag to
narrow it); `namespaces` narrows the pod simulator only.

Each child runs in its own process group, dies with its parent on Linux (PR_SET_PDEATHSIG, when
started from the main thread), is stopped with SIGTERM (SIGKILL after `stop_grace`), and is
stopped at interpreter exit too.
"""

from __future__ import annotations

import asyncio
import atexit
import contextlib
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import weakref
from collections.abc import Sequence
from pathlib import Path
from types import TracebackType
from typing import Any

import yaml

from modelfs.testing import podsim
from modelfs.testing.controlplane import cache_dir, repo_root
from modelfs.testing.kubeapi import install_crds, new_api_client
from modelfs.testing.process import Child

#: Keep in step with hack/versions.env (tests/test_dataset_engine.py checks it).
DATASET_VERSION = "v0.1.6"
MODULE = "github.com/BaizeAI/dataset"
BINARY = "dataset-controller"
CRD_FILE = "dataset.baizeai.io_datasets.yaml"
#: What the Helm chart (manifests/dataset, chart 0.1.0) renders with default values.
CHART_BACKOFF_LIMIT = 4
LOADER_IMAGE = "ghcr.io/baizeai/dataset-data-loader:0.1.0"
LOADER_COMMAND = "/usr/local/bin/data-loader"
#: controller-runtime logs this once its caches are synced and its workers reconcile.
READY_MARKER = "Starting workers"
#: Environment variables the controller's viper config reads over the file (AutomaticEnv).
_CONFIG_ENV = ("DEBUG", "ENABLE_CASCADING_DELETION", "DATASET_JOB_SPEC_YAML")

_LIVE: weakref.WeakSet[DatasetEngine] = weakref.WeakSet()


class DatasetEngineError(RuntimeError):
    """The dataset controller or the pod simulator is missing, did not start, or died."""


# --------------------------------------------------------------------------- binaries


def dataset_cache_dir() -> Path:
    """Where hack/build-dataset-controller.sh puts the controller and the CRD of the pinned
    version: `<cache>/dataset-<version>/{bin/dataset-controller,crd/<CRD_FILE>}`."""
    return cache_dir() / f"dataset-{DATASET_VERSION}"


def _build(build: bool) -> bool:
    """Run the build script when asked (or $MODELFS_CONTROLPLANE_BUILD=1); True if it ran."""
    root = repo_root()
    if not (build or os.environ.get("MODELFS_CONTROLPLANE_BUILD") == "1") or root is None:
        return False
    script = root / "hack" / "build-dataset-controller.sh"
    print(f"modelfs: building the dataset controller with {script}", file=sys.stderr)
    done = subprocess.run([str(script)], stdout=subprocess.PIPE, text=True, check=False)
    if done.returncode != 0:
        raise DatasetEngineError(f"{script} failed with exit code {done.returncode}")
    return True


def _missing(what: str, path: Path) -> DatasetEngineError:
    hint = (
        "run `make dataset-controller` (hack/build-dataset-controller.sh) in the modelfs checkout"
        if repo_root() is not None
        else "build it with hack/build-dataset-controller.sh from a modelfs checkout"
    )
    return DatasetEngineError(f"no {what} of {MODULE} {DATASET_VERSION} at {path}: {hint}")


def find_dataset_controller(*, build: bool = False) -> Path:
    """The cached dataset-controller binary; built first when missing and `build` (or
    $MODELFS_CONTROLPLANE_BUILD=1), else DatasetEngineError saying what to run."""
    path = dataset_cache_dir() / "bin" / BINARY
    if not os.access(path, os.X_OK) and _build(build) and os.access(path, os.X_OK):
        return path
    if not os.access(path, os.X_OK):
        raise _missing("dataset-controller binary", path)
    return path


def dataset_crd_path(*, build: bool = False) -> Path:
    """The Dataset CRD of the same module version (config/crd/bases, copied by the build)."""
    path = dataset_cache_dir() / "crd" / CRD_FILE
    if not path.is_file() and _build(build) and path.is_file():
        return path
    if not path.is_file():
        raise _missing("Dataset CRD", path)
    return path


# --------------------------------------------------------------------------- config


def loader_job_spec(*, backoff_limit: int = CHART_BACKOFF_LIMIT, image: str = LOADER_IMAGE) -> Any:
    """The loader Job spec the chart puts in the controller's config (dataset_job_spec_yaml)."""
    return {
        "backoffLimit": backoff_limit,
        "completionMode": "NonIndexed",
        "completions": 1,
        "parallelism": 1,
        "template": {
            "spec": {
                "restartPolicy": "Never",
                "securityContext": {"runAsUser": 0},
                "containers": [
                    {
                        "image": image,
                        "command": [LOADER_COMMAND],
                        "resources": {
                            "requests": {"cpu": "100m", "memory": "100Mi"},
                            "limits": {"cpu": "2000m", "memory": "2000Mi"},
                        },
                    }
                ],
            }
        },
    }


def render_config(
    *,
    backoff_limit: int = CHART_BACKOFF_LIMIT,
    image: str = LOADER_IMAGE,
    cascading_deletion: bool = False,
) -> str:
    """The controller's config.yaml as the Helm chart renders it, with `backoff_limit` for the
    loader Jobs."""
    if backoff_limit < 0:
        raise ValueError(f"backoff_limit must be >= 0, not {backoff_limit}")
    job_spec = yaml.safe_dump(
        loader_job_spec(backoff_limit=backoff_limit, image=image), sort_keys=False
    )
    config = {
        "debug": False,
        "enable_cascading_deletion": cascading_deletion,
        "dataset_job_spec_yaml": job_spec,
    }
    header = f"# {MODULE} {DATASET_VERSION} controller config (modelfs DatasetEngine)\n"
    return header + yaml.safe_dump(config, sort_keys=False, width=1000)


# --------------------------------------------------------------------------- CRD


def install_crd(kubeconfig: Path | str, path: Path | str, within: float = 60.0) -> list[str]:
    """Server-side apply the CRD file and wait until Established (from sync code, in a thread
    of its own so that it works inside a running event loop too)."""

    async def install() -> list[str]:
        api = await new_api_client(kubeconfig)
        try:
            return await install_crds(api, path, within=within, field_manager="modelfs-engine")
        finally:
            await api.close()  # type: ignore[no-untyped-call]

    result: list[list[str]] = []
    errors: list[BaseException] = []

    def run() -> None:
        try:
            result.append(asyncio.run(install()))
        except BaseException as error:
            errors.append(error)

    thread = threading.Thread(target=run, name="install-dataset-crd")
    thread.start()
    thread.join()
    if errors:
        raise DatasetEngineError(f"installing {path}: {errors[0]!r}") from errors[0]
    return result[0]


# --------------------------------------------------------------------------- the engine


class DatasetEngine:
    """The real dataset controller (and, by default, the pod simulator) against `kubeconfig`."""

    def __init__(
        self,
        kubeconfig: Path | str,
        *,
        backoff_limit: int = 0,
        log_dir: Path | str | None = None,
        namespaces: Sequence[str] = (),
        pod_simulator: bool = True,
        round_duration: float = podsim.DEFAULT_ROUND_DURATION,
        install_crd: bool = True,
        binary: Path | str | None = None,
        crd: Path | str | None = None,
        build: bool = False,
        log_level: str = "info",
        python: str = sys.executable,
        startup_timeout: float = 60.0,
        stop_grace: float = 5.0,
    ) -> None:
        """`round_duration`: how long a simulated loader Pod runs unless annotated;
        `binary`/`crd`: override the cached ones; `build`: build them when missing."""
        self.kubeconfig = Path(kubeconfig)
        self.backoff_limit = backoff_limit
        self.namespaces = tuple(namespaces)
        self.pod_simulator = pod_simulator
        self.round_duration = round_duration
        self.install_crd = install_crd
        self.build = build
        self.log_level = log_level
        self.python = python
        self.startup_timeout = startup_timeout
        self.stop_grace = stop_grace
        self._binary_arg = Path(binary) if binary else None
        self._crd_arg = Path(crd) if crd else None
        self._log_dir_arg = Path(log_dir) if log_dir else None
        self.log_dir: Path | None = None
        self.controller: Child | None = None
        self.simulator: Child | None = None
        self._own_log_dir = False

    # -- paths

    @property
    def binary(self) -> Path:
        if self._binary_arg is None:
            self._binary_arg = find_dataset_controller(build=self.build)
        return self._binary_arg

    @property
    def crd_path(self) -> Path:
        """The module's Dataset CRD (install it before the controller starts)."""
        if self._crd_arg is None:
            self._crd_arg = dataset_crd_path(build=self.build)
        return self._crd_arg

    @property
    def controller_log(self) -> Path:
        return self._require_log_dir() / "dataset-controller.log"

    @property
    def simulator_log(self) -> Path:
        return self._require_log_dir() / "podsim.log"

    @property
    def config_path(self) -> Path:
        return self._require_log_dir() / "dataset-controller-config.yaml"

    def _require_log_dir(self) -> Path:
        if self.log_dir is None:
            raise DatasetEngineError("the engine has not been started")
        return self.log_dir

    def controller_argv(self) -> list[str]:
        return [
            str(self.binary),
            f"--kubeconfig={self.kubeconfig}",
            f"--config={self.config_path}",
            "--leader-elect=false",
            "--metrics-bind-address=0",
            "--health-probe-bind-address=0",
            f"--zap-log-level={self.log_level}",
        ]

    def simulator_argv(self) -> list[str]:
        argv = [
            self.python,
            "-m",
            "modelfs.testing.podsim",
            "--kubeconfig",
            str(self.kubeconfig),
            "--round-duration",
            f"{round(self.round_duration * 1000)}ms",
            "--log-level",
            self.log_level if self.log_level in ("debug", "info", "warning", "error") else "info",
        ]
        for namespace in self.namespaces:
            argv += ["--namespace", namespace]
        return argv

    # -- lifecycle

    def start(self) -> DatasetEngine:
        if self.controller is not None:
            return self
        binary, crd = self.binary, self.crd_path  # fail early, with the hint
        if self._log_dir_arg is None:
            self.log_dir = Path(tempfile.mkdtemp(prefix="modelfs-dataset-engine-"))
            self._own_log_dir = True
        else:
            self.log_dir = self._log_dir_arg
            self.log_dir.mkdir(parents=True, exist_ok=True)
        _LIVE.add(self)
        try:
            if self.install_crd:
                install_crd(self.kubeconfig, crd)
            if self.pod_simulator:
                self._start_simulator()
            self.config_path.write_text(render_config(backoff_limit=self.backoff_limit))
            self._start_controller(binary)
        except BaseException:
            self.stop()
            raise
        return self

    def _start_simulator(self) -> None:
        self.simulator = Child.start(
            "the pod simulator", self.simulator_argv(), self.simulator_log, ready_pipe=True
        )
        self.simulator.wait_for_line(podsim.READY_LINE, self.startup_timeout, DatasetEngineError)

    def _start_controller(self, binary: Path) -> None:
        env = {k: v for k, v in os.environ.items() if k.upper() not in _CONFIG_ENV}
        env["KUBECONFIG"] = str(self.kubeconfig)
        self.controller = Child.start(
            binary.name, self.controller_argv(), self.controller_log, env=env, cwd=self.log_dir
        )
        self.controller.wait_until(
            lambda: READY_MARKER in self.controller_log.read_text(errors="replace"),
            self.startup_timeout,
            DatasetEngineError,
            detail=f" (no {READY_MARKER!r} in its log)",
        )

    def alive(self) -> bool:
        """The controller and (when used) the simulator are running."""
        processes = [self.controller, self.simulator if self.pod_simulator else None]
        if self.controller is None or (self.pod_simulator and self.simulator is None):
            return False
        return all(p.alive() for p in processes if p is not None)

    def stop(self) -> None:
        """Stop the controller, then the simulator. Safe to call twice."""
        controller, self.controller = self.controller, None
        simulator, self.simulator = self.simulator, None
        if controller is not None:
            controller.stop(self.stop_grace)
        if simulator is not None:
            simulator.stop(self.stop_grace)
        _LIVE.discard(self)

    def cleanup(self) -> None:
        """Stop, and remove the log folder when the engine made it."""
        self.stop()
        if self._own_log_dir and self.log_dir is not None:
            shutil.rmtree(self.log_dir, ignore_errors=True)

    # -- logs

    def log_text(self) -> str:
        """The controller's log, then the pod simulator's (each under a header)."""
        if self.log_dir is None:
            return ""
        parts = []
        for title, path in (
            ("dataset-controller", self.controller_log),
            ("podsim", self.simulator_log),
        ):
            if path.exists():
                parts.append(f"===== {title} ({path})\n{path.read_text(errors='replace')}")
        return "\n".join(parts)

    # -- context managers

    def __enter__(self) -> DatasetEngine:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    async def __aenter__(self) -> DatasetEngine:
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
    for engine in list(_LIVE):
        with contextlib.suppress(Exception):
            engine.stop()
