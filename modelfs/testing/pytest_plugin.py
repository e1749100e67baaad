"""pytest plugin: Kubernetes fixtures for operator tests on a real API server.

Not auto-loaded (no `pytest11` entry point: a plugin registered that way would load in every
pytest run of an environment with modelfs-testing installed): this repository's conftest.py
names it in `pytest_plugins`; elsewhere `pytest -p modelfs.testing.pytest_plugin`. The cluster
comes from `--k8s` (or `$MODELFS_K8S`):

- `local` (default): one `ControlPlane` (etcd + kube-apiserver + kube-controller-manager built
  by hack/build-control-plane.sh, see modelfs.testing.controlplane) per test session, started
  lazily the first time a cluster fixture is requested; `pytest tests/` without cluster tests
  never starts one. `--k8s-keep` keeps its work folder (logs, audit log) for inspection.
- `kind`: the session cluster of pytest-kind (`kind_cluster` fixture; needs Docker).
- `existing`: the cluster of `$KUBECONFIG` (or ~/.kube/config). Tests only create namespaced
  objects in their own namespaces, plus the CRDs they install.

The Dataset controller comes from `--dataset-controller` (or `$MODELFS_DATASET_CONTROLLER`):

- `real` (default): the BaizeAI/dataset controller itself (modelfs.testing.dataset_engine,
  built by `make dataset-controller`), with the Dataset CRD of its own Go module. On
  `--k8s=local` the pod simulator (modelfs.testing.podsim) runs beside it, playing the scheduler
  and kubelet of one fake Node, so loader Jobs complete (or fail on demand). On `--k8s=kind` or
  `existing` the controller runs out of cluster against that cluster, WITHOUT the pod
  simulator: that cluster's nodes run the loader pods (and really download).
- `fake`: modelfs's fake Dataset controller (modelfs.testing.fake_dataset) and the bundled
  test CRD (modelfs/testing/crds).

Fixtures (names are prefixed `k8s_`; only `dataset_*` know modelfs):

- `k8s_cluster` (session) -> `Cluster`: `.mode`, `.kubeconfig` (Path), `.control_plane`
  (a ControlPlane for `local`, else None).
- `k8s_kubeconfig` (session) -> Path of an admin kubeconfig.
- `k8s_control_plane` (session) -> ControlPlane; skips the test unless `--k8s=local`.
- `k8s_api` (session, async) -> `kubernetes.aio.client.ApiClient` for the admin kubeconfig.
- `k8s_namespace` (function, async) -> str: a fresh namespace, deleted after the test.
- `k8s_install_crds` (session) -> `async (*paths, within=60.0) -> list[str]`: server-side
  applies the CRDs in the YAML files and waits until each is Established.
- `k8s_service_account_kubeconfig` (function) -> `async (namespace, name, *, create=True,
  expiration_seconds=3600) -> Path`: a TokenRequest-backed kubeconfig for a ServiceAccount.
- `dataset_controller` (session) -> "real" | "fake", from `--dataset-controller`.
- `dataset_crd` (session, async) -> str: installs the Dataset CRD (dataset.baizeai.io) of
  the chosen controller (`dataset_crd_file()`) and returns its name.

`new_dataset_engine(mode, cluster, log_dir)` makes (does not start) the chosen engine, a
`DatasetEngine` or a `FakeDatasetController`; both have `start()`, `stop()`, `alive()`,
`log_text()` and are context managers; `with running_dataset_engine(mode, cluster, log_dir) as
engine:` starts one for a block, failing the test when it does not start. Run one engine at a
time: each acts cluster-wide.

Tests using any of these fixtures get the `e2e` marker, so `-m "not e2e"` leaves them out.

Local catalog servers (modelfs/testing/catalog; no cluster, no `e2e` marker), each started
once per session on a free loopback port, cleared after each test:
- `hub_catalog` (session) -> `Catalog`: the repositories the local Hub and ModelScope serve
  (`hub_catalog.add(Repo(...))`; `repo.push(files)` makes a new commit); `CATALOG_TOKEN` is a
  token they accept.
- `hub_server`, `modelscope_server` -> `HubServer`, `ModelScopeServer` (`.url`, `.fail(Fault)`,
  `.requests(path_part)`); `s3_server` -> `S3Server` (moto; `.url`, `.put(bucket, {key:
  bytes})`, keys `ACCESS_KEY`/`SECRET_KEY`); `git_root` (session) + `git_server` -> a
  `git http-backend` over the bare repositories `make_repo(git_root, name, files)` makes;
  `file_server` -> `FileServer` (`.files[path] = bytes`, `.users`, `.redirects`);
  `stopped_url` -> a loopback URL nothing listens on.

The helpers (`new_api_client`, `install_crds`, `wait_crd_established`,
`service_account_kubeconfig`, `apply_custom_object`, `new_dataset_engine`, ...) live in
modelfs.testing.cluster, which does not import pytest, and are re-exported here.
"""

from __future__ import annotations

import contextlib
import os
import re
import signal
import tempfile
import threading
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING

import pytest

from modelfs.testing.catalog.files import FileServer
from modelfs.testing.catalog.git import GitServer
from modelfs.testing.catalog.hub import CATALOG_TOKEN, Catalog, HubServer, ModelScopeServer
from modelfs.testing.catalog.s3 import S3Server, free_port
from modelfs.testing.kubeapi import (
    CRDS_DIR,
    DATASET_CRD,
    FIELD_MANAGER,
    InstallCrds,
    SaKubeconfigFactory,
    apply_custom_object,
    install_crds,
    load_yaml_documents,
    new_api_client,
    service_account_kubeconfig,
    wait_crd_established,
)

if TYPE_CHECKING:
    from kubernetes.aio.client import ApiClient

    from modelfs.testing.controlplane import ControlPlane
    from modelfs.testing.dataset_engine import DatasetEngine
    from modelfs.testing.fake_dataset.process import FakeDatasetController

# Re-exported: tests and benchmarks import the API helpers from here.
__all__ = [
    "CRDS_DIR",
    "DATASET_CRD",
    "FIELD_MANAGER",
    "InstallCrds",
    "SaKubeconfigFactory",
    "apply_custom_object",
    "install_crds",
    "load_yaml_documents",
    "new_api_client",
    "service_account_kubeconfig",
    "wait_crd_established",
]

MODES = ("local", "kind", "existing")
DATASET_CONTROLLERS = ("real", "fake")
CLUSTER_FIXTURES = frozenset(
    {
        "k8s_cluster",
        "k8s_kubeconfig",
        "k8s_control_plane",
        "k8s_api",
        "k8s_namespace",
        "k8s_install_crds",
        "k8s_service_account_kubeconfig",
        "dataset_crd",
        "dataset_controller",
    }
)


# --------------------------------------------------------------------------- hooks


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("modelfs-k8s", "Kubernetes cluster for e2e tests (modelfs)")
    group.addoption(
        "--k8s",
        choices=MODES,
        default=os.environ.get("MODELFS_K8S", "local"),
        help="where the cluster fixtures point: local (a control plane started for the "
        "session, default), kind (pytest-kind, needs Docker) or existing ($KUBECONFIG); "
        "default from $MODELFS_K8S",
    )
    group.addoption(
        "--dataset-controller",
        choices=DATASET_CONTROLLERS,
        default=os.environ.get("MODELFS_DATASET_CONTROLLER", "real"),
        help="the Dataset controller of the e2e tests: real (BaizeAI/dataset built by `make "
        "dataset-controller`, with a pod simulator on --k8s=local; default) or fake (modelfs's "
        "fake); default from $MODELFS_DATASET_CONTROLLER",
    )
    group.addoption(
        "--k8s-keep",
        action="store_true",
        help="keep the local control plane's work folder (logs, audit log) after the session",
    )


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "e2e: needs a Kubernetes API server (the local control plane by default)"
    )
    stop_session_on_termination()


def _end_session(signum: int, frame: FrameType | None) -> None:
    pytest.exit(f"stopped by signal {signal.Signals(signum).name}", returncode=128 + signum)


def stop_session_on_termination() -> None:
    """SIGTERM or SIGHUP (a CI timeout, a closed terminal) ends the whole session, with its
    fixtures' teardown, as Ctrl-C does. Left alone, the control plane's own handler would stop
    the control planes and raise SystemExit inside the running test, which pytest reports as
    that test failing before it goes on to the next one (and starts a new control plane). The
    control plane's handler, installed later, stops the control planes first, then calls this."""
    if threading.current_thread() is not threading.main_thread():
        return
    for sig in (signal.SIGTERM, signal.SIGHUP):
        if signal.getsignal(sig) in (signal.SIG_DFL, None):
            signal.signal(sig, _end_session)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if CLUSTER_FIXTURES.intersection(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.e2e)


# --------------------------------------------------------------------------- helpers


def dataset_crd_file(mode: str) -> Path:
    """The Dataset CRD of Dataset controller `mode`: for "real", the one of its Go module (in
    the build cache; DatasetEngineError, naming `make dataset-controller`, when missing); for
    "fake", the bundled test CRD."""
    if mode == "fake":
        return DATASET_CRD
    from modelfs.testing.dataset_engine import dataset_crd_path

    return dataset_crd_path()


def new_dataset_engine(
    mode: str,
    cluster: Cluster,
    log_dir: Path,
    *,
    backoff_limit: int = 0,
) -> DatasetEngine | FakeDatasetController:
    """The Dataset controller `mode` ("real" or "fake") for `cluster`, not started. Install
    its CRD first (`dataset_crd`): neither installs it. The real one gets the pod simulator on
    a local control plane only, and `backoff_limit` for its loader Jobs."""
    if mode == "fake":
        from modelfs.testing.fake_dataset.process import FakeDatasetController

        return FakeDatasetController(cluster.kubeconfig, log_path=log_dir / "fake-dataset.log")
    from modelfs.testing.dataset_engine import DatasetEngine

    return DatasetEngine(
        cluster.kubeconfig,
        backoff_limit=backoff_limit,
        log_dir=log_dir,
        pod_simulator=cluster.mode == "local",
        install_crd=False,
    )


@contextlib.contextmanager
def running_control_plane(config: pytest.Config, name: str) -> Iterator[ControlPlane]:
    """A local control plane of its own (`--k8s-keep` keeps its folder), stopped on leaving;
    missing binaries or a failed start fail the test, naming it `name`, without a traceback."""
    from modelfs.testing.controlplane import ControlPlane, ControlPlaneError, find_binaries

    try:
        binaries = find_binaries()
    except ControlPlaneError as error:
        pytest.fail(f"{name}: {error}", pytrace=False)
    cp = ControlPlane(binaries, keep_workdir=bool(config.getoption("--k8s-keep")))
    try:
        cp.start()
    except ControlPlaneError as error:
        pytest.fail(f"{name} did not start: {error}", pytrace=False)
    try:
        yield cp
    finally:
        cp.stop()


@contextlib.contextmanager
def running_dataset_engine(
    mode: str,
    cluster: Cluster,
    log_dir: Path,
    *,
    backoff_limit: int = 0,
) -> Iterator[DatasetEngine | FakeDatasetController]:
    """`new_dataset_engine(...)` started, stopped on leaving; a start that fails (say, a
    controller not built) fails the test with the reason, without a traceback."""
    from modelfs.testing.dataset_engine import DatasetEngineError
    from modelfs.testing.fake_dataset.process import FakeDatasetError

    engine = new_dataset_engine(mode, cluster, log_dir, backoff_limit=backoff_limit)
    try:
        engine.start()
    except (DatasetEngineError, FakeDatasetError) as error:
        pytest.fail(f"--dataset-controller={mode}: {error}", pytrace=False)
    try:
        yield engine
    finally:
        engine.stop()


def _namespace_name(node_name: str) -> str:
    stem = re.sub(r"[^a-z0-9]+", "-", node_name.lower()).strip("-")[:40].strip("-")
    return f"t-{stem or 'test'}-{uuid.uuid4().hex[:6]}"


# --------------------------------------------------------------------------- fixtures


@dataclass
class Cluster:
    """The cluster of a test session."""

    mode: str
    kubeconfig: Path
    control_plane: ControlPlane | None = None


@pytest.fixture(scope="session")
def k8s_cluster(request: pytest.FixtureRequest) -> Iterator[Cluster]:
    mode = request.config.getoption("--k8s")
    if mode == "local":
        with running_control_plane(request.config, "--k8s=local: the control plane") as cp:
            yield Cluster("local", cp.kubeconfig, cp)
    elif mode == "kind":
        kind = request.getfixturevalue("kind_cluster")  # pytest-kind, needs Docker
        yield Cluster("kind", Path(kind.kubeconfig_path))
    else:
        env = os.environ.get("KUBECONFIG", "")
        first = env.split(os.pathsep)[0] if env else str(Path.home() / ".kube" / "config")
        if not Path(first).is_file():
            pytest.fail(f"--k8s=existing: no kubeconfig at {first} ($KUBECONFIG)", pytrace=False)
        yield Cluster("existing", Path(first))


@pytest.fixture(scope="session")
def k8s_kubeconfig(k8s_cluster: Cluster) -> Path:
    return k8s_cluster.kubeconfig


@pytest.fixture(scope="session")
def k8s_control_plane(k8s_cluster: Cluster) -> ControlPlane:
    if k8s_cluster.control_plane is None:
        pytest.skip(f"needs --k8s=local (this session uses --k8s={k8s_cluster.mode})")
    return k8s_cluster.control_plane


@pytest.fixture(scope="session")
async def k8s_api(k8s_kubeconfig: Path) -> AsyncIterator[ApiClient]:
    api = await new_api_client(k8s_kubeconfig)
    try:
        yield api
    finally:
        await api.close()  # type: ignore[no-untyped-call]


@pytest.fixture
async def k8s_namespace(k8s_api: ApiClient, request: pytest.FixtureRequest) -> AsyncIterator[str]:
    from kubernetes.aio import client
    from kubernetes.aio.client.exceptions import ApiException

    core = client.CoreV1Api(k8s_api)
    name = _namespace_name(request.node.name)
    labels = {"app.kubernetes.io/managed-by": FIELD_MANAGER}
    await core.create_namespace(
        client.V1Namespace(metadata=client.V1ObjectMeta(name=name, labels=labels))
    )
    try:
        yield name
    finally:
        try:
            await core.delete_namespace(name)
        except ApiException as error:
            if error.status != 404:
                raise


@pytest.fixture(scope="session")
def k8s_install_crds(k8s_api: ApiClient) -> InstallCrds:
    async def install(*paths: Path | str, within: float = 60.0) -> list[str]:
        return await install_crds(k8s_api, *paths, within=within)

    return install


@pytest.fixture
def k8s_service_account_kubeconfig(k8s_api: ApiClient, tmp_path: Path) -> SaKubeconfigFactory:
    async def make(
        namespace: str, name: str, *, create: bool = True, expiration_seconds: int = 3600
    ) -> Path:
        path = tmp_path / f"sa-{namespace}-{name}.kubeconfig"
        return await service_account_kubeconfig(
            k8s_api,
            namespace,
            name,
            path,
            create=create,
            expiration_seconds=expiration_seconds,
        )

    return make


@pytest.fixture(scope="session")
def dataset_controller(request: pytest.FixtureRequest) -> str:
    return str(request.config.getoption("--dataset-controller"))


@pytest.fixture(scope="session")
async def dataset_crd(k8s_install_crds: InstallCrds, dataset_controller: str) -> str:
    from modelfs.testing.dataset_engine import DatasetEngineError

    try:
        path = dataset_crd_file(dataset_controller)
    except DatasetEngineError as error:
        pytest.fail(f"--dataset-controller={dataset_controller}: {error}", pytrace=False)
    (name,) = await k8s_install_crds(path)
    return name


# ------------------------------------------------------------------- local catalog servers
# Each starts once per session on a free loopback port (modelfs/testing/catalog); the
# function-scoped fixture hands it to a test and clears its request log and pending faults
# afterwards. Tests add their own repositories, buckets and files under names of their own.


@pytest.fixture(scope="session")
def hub_catalog() -> Catalog:
    """The repositories the local Hub and ModelScope serve; tests add their own."""
    return Catalog(users={CATALOG_TOKEN: "modelfs"})


@pytest.fixture(scope="session")
def _hub_server(hub_catalog: Catalog) -> Iterator[HubServer]:
    with HubServer(hub_catalog, page_size=50) as server:
        yield server


@pytest.fixture(scope="session")
def _modelscope_server(hub_catalog: Catalog) -> Iterator[ModelScopeServer]:
    with ModelScopeServer(hub_catalog) as server:
        yield server


@pytest.fixture(scope="session")
def _s3_server() -> Iterator[S3Server]:
    with S3Server() as server:
        yield server


@pytest.fixture(scope="session")
def git_root() -> Iterator[Path]:
    """Where the local git server's bare repositories live (make_repo(git_root, name, ...))."""
    with tempfile.TemporaryDirectory(prefix="modelfs-git-") as root:
        yield Path(root)


@pytest.fixture(scope="session")
def _git_server(git_root: Path) -> Iterator[GitServer]:
    with GitServer(git_root) as server:
        yield server


@pytest.fixture(scope="session")
def _file_server() -> Iterator[FileServer]:
    with FileServer() as server:
        yield server


@pytest.fixture
def hub_server(_hub_server: HubServer) -> Iterator[HubServer]:
    """The local Hugging Face Hub (`.url` is the endpoint to give HfApi or the source)."""
    yield _hub_server
    _hub_server.clear()


@pytest.fixture
def modelscope_server(_modelscope_server: ModelScopeServer) -> Iterator[ModelScopeServer]:
    yield _modelscope_server
    _modelscope_server.clear()


@pytest.fixture
def s3_server(_s3_server: S3Server) -> S3Server:
    """moto's S3 server (`.url`, `.put(bucket, {key: bytes})`, keys in modelfs...s3)."""
    return _s3_server


@pytest.fixture
def git_server(_git_server: GitServer) -> Iterator[GitServer]:
    yield _git_server
    _git_server.clear()
    _git_server.users.clear()


@pytest.fixture
def file_server(_file_server: FileServer) -> Iterator[FileServer]:
    yield _file_server
    _file_server.clear()
    _file_server.users.clear()
    _file_server.redirects.clear()


@pytest.fixture
def stopped_url() -> str:
    """The URL of a loopback port nothing listens on (a catalog that cannot be reached)."""
    return f"http://127.0.0.1:{free_port()}"
