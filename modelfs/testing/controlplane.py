"""A real, local Kubernetes control plane for tests and the sandbox: etcd, kube-apiserver and
kube-controller-manager run as child processes, the way controller-runtime's envtest runs them.

    from modelfs.testing.controlplane import ControlPlane

    with ControlPlane() as cp:                      # finds the binaries, starts, waits for ready
        print(cp.kubeconfig)                        # admin kubeconfig (O=system:masters)
        print(cp.get("/metrics").decode())          # raw GET as admin, e.g. apiserver metrics
        sa = cp.service_account_kubeconfig("ns", "operator")   # TokenRequest-backed kubeconfig
        cp.stop_component("etcd"); ...; cp.start_component("etcd")   # an outage of one component

What is real: a structural-schema/CEL-validating API server with RBAC authorization, the status
subresource, server-side apply, admission, a TokenRequest-capable service-account issuer, and
the controllers that tests of operators lean on (garbage collector, namespace deletion, service
accounts and their tokens, cluster-role aggregation, the kube-root-ca.crt publisher) and that
workloads need (Jobs, the PV binder, PV and PVC protection, pod GC). What is absent: kubelets,
a scheduler, kube-proxy, networking; Pods are stored but never run unless a pod simulator
(modelfs.testing.podsim) plays the scheduler and the kubelet.

Binaries (kube-apiserver, kube-controller-manager, etcd) are looked up by `find_binaries()`:
$KUBEBUILDER_ASSETS first (setup-envtest folders work), then the cache that
`hack/build-control-plane.sh` fills, `$MODELFS_CACHE_DIR/k8s-<ver>-etcd-<ver>/bin` (default
`~/.cache/modelfs`). Each child runs in its own process group, is killed with its parent on
Linux (PR_SET_PDEATHSIG; the temp work folder of such a killed run is removed by the next
start), is stopped at interpreter exit (atexit) and on SIGTERM, and logs to
`<workdir>/logs/<component>.log`; a failed start raises `ControlPlaneError` with the log tails.

The apiserver writes an audit log (`<workdir>/audit.log`, JSON lines, level Metadata) because
`apiserver_request_total` has no user label: `requests_by_user()` counts requests per user.
"""

from __future__ import annotations

import argparse
import atexit
import base64
import contextlib
import datetime
import http.client
import ipaddress
import json
import os
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import tempfile
import threading
import time
import weakref
from collections import Counter
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType, TracebackType
from typing import Any

import yaml
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from modelfs.testing.process import Child

# Keep in step with hack/versions.env (e2e/test_controlplane.py checks it).
K8S_VERSION = "v1.37.2"
ETCD_VERSION = "v3.7.3"
BINARIES = ("etcd", "kube-apiserver", "kube-controller-manager")

#: The base controllers: garbage collection, namespace deletion, service accounts (and legacy
#: token Secrets), aggregated ClusterRoles and kube-root-ca.crt.
BASE_CONTROLLERS = (
    "garbage-collector-controller",
    "namespace-controller",
    "serviceaccount-controller",
    "serviceaccount-token-controller",
    "clusterrole-aggregation-controller",
    "root-ca-certificate-publisher-controller",
)
#: What the BaizeAI/dataset controller's loader Jobs and PVCs need (with a pod simulator,
#: modelfs.testing.podsim, in the kubelet's and the scheduler's place): Jobs create and count
#: Pods, PVCs bind to PVs, PVC and PV deletion waits for their users (the protection
#: finalizers admission puts on them are lifted), and Pods of deleted Nodes are collected.
WORKLOAD_CONTROLLERS = (
    "job-controller",
    "persistentvolume-binder-controller",
    "persistentvolume-protection-controller",
    "persistentvolumeclaim-protection-controller",
    "pod-garbage-collector-controller",
)
#: Controllers run by default: both sets (`ControlPlane(controllers=BASE_CONTROLLERS)` for the
#: base alone, where nothing must touch Jobs, Pods or volumes).
DEFAULT_CONTROLLERS = BASE_CONTROLLERS + WORKLOAD_CONTROLLERS
CONTEXT_NAME = "modelfs-local"
SERVICE_CIDR = "10.0.0.0/24"
_KUBERNETES_SERVICE_IP = "10.0.0.1"
_AUDIT_POLICY = """\
apiVersion: audit.k8s.io/v1
kind: Policy
omitStages: [RequestReceived]
rules:
  - level: Metadata
"""


class ControlPlaneError(RuntimeError):
    """The control plane could not be located, built, started or reached."""


# --------------------------------------------------------------------------- binaries


def repo_root() -> Path | None:
    """The source checkout this module lives in (it holds hack/), or None when installed."""
    root = Path(__file__).resolve().parents[2]
    return root if (root / "hack" / "build-control-plane.sh").is_file() else None


def cache_dir() -> Path:
    """`$MODELFS_CACHE_DIR`, else `$XDG_CACHE_HOME/modelfs`, else `~/.cache/modelfs`."""
    if os.environ.get("MODELFS_CACHE_DIR"):
        return Path(os.environ["MODELFS_CACHE_DIR"]).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(xdg) / "modelfs"


def cached_binaries_dir() -> Path:
    """Where hack/build-control-plane.sh puts the binaries of the pinned versions."""
    return cache_dir() / f"k8s-{K8S_VERSION}-etcd-{ETCD_VERSION}" / "bin"


def _has_binaries(folder: Path) -> bool:
    return all(os.access(folder / name, os.X_OK) for name in BINARIES)


def find_binaries(*, build: bool = False) -> Path:
    """The folder holding etcd, kube-apiserver and kube-controller-manager.

    Order: `$KUBEBUILDER_ASSETS`, then `cached_binaries_dir()`, then (if `build`, or
    `$MODELFS_CONTROLPLANE_BUILD=1`) a build by hack/build-control-plane.sh. Otherwise raises
    `ControlPlaneError` saying what to run.
    """
    assets = os.environ.get("KUBEBUILDER_ASSETS")
    if assets and _has_binaries(Path(assets)):
        return Path(assets)
    cached = cached_binaries_dir()
    if _has_binaries(cached):
        return cached
    build = build or os.environ.get("MODELFS_CONTROLPLANE_BUILD") == "1"
    root = repo_root()
    if build and root is not None:
        script = root / "hack" / "build-control-plane.sh"
        print(f"modelfs: building the control plane binaries with {script}", file=sys.stderr)
        done = subprocess.run([str(script)], stdout=subprocess.PIPE, text=True, check=False)
        if done.returncode != 0:
            raise ControlPlaneError(f"{script} failed with exit code {done.returncode}")
        built = Path(done.stdout.strip().splitlines()[-1])
        if _has_binaries(built):
            return built
    hint = (
        "run `make controlplane-binaries` (hack/build-control-plane.sh) in the modelfs checkout"
        if root is not None
        else "build them with hack/build-control-plane.sh from a modelfs checkout"
    )
    raise ControlPlaneError(
        f"no control plane binaries ({', '.join(BINARIES)}) in "
        f"KUBEBUILDER_ASSETS={assets or '(unset)'} nor in {cached}: {hint}, "
        "or point KUBEBUILDER_ASSETS at a folder holding all three"
    )


# --------------------------------------------------------------------------- certificates


def _ec_key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


def _pem_key(key: ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def _pem_cert(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(serialization.Encoding.PEM)


def _issue(
    *,
    common_name: str,
    key: ec.EllipticCurvePrivateKey,
    issuer: tuple[x509.Certificate, ec.EllipticCurvePrivateKey] | None,
    organizations: Sequence[str] = (),
    server_names: Sequence[str] = (),
    client: bool = False,
    days: int = 365,
) -> x509.Certificate:
    attributes = [x509.NameAttribute(NameOID.ORGANIZATION_NAME, o) for o in organizations]
    attributes.append(x509.NameAttribute(NameOID.COMMON_NAME, common_name))
    subject = x509.Name(attributes)
    now = datetime.datetime.now(datetime.UTC)
    builder = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer[0].subject if issuer else subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=days))
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), False)
    )
    if issuer is None:
        builder = builder.add_extension(x509.BasicConstraints(ca=True, path_length=None), True)
        usage = x509.KeyUsage(True, False, False, False, False, True, True, False, False)
        builder = builder.add_extension(usage, True)
    else:
        builder = builder.add_extension(x509.BasicConstraints(ca=False, path_length=None), True)
        usage = x509.KeyUsage(True, False, True, False, False, False, False, False, False)
        builder = builder.add_extension(usage, True)
        purposes = [ExtendedKeyUsageOID.CLIENT_AUTH] if client else []
        if server_names:
            purposes.append(ExtendedKeyUsageOID.SERVER_AUTH)
        builder = builder.add_extension(x509.ExtendedKeyUsage(purposes), False)
        builder = builder.add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(issuer[1].public_key()), False
        )
    if server_names:
        sans: list[x509.GeneralName] = []
        for name in server_names:
            try:
                sans.append(x509.IPAddress(ipaddress.ip_address(name)))
            except ValueError:
                sans.append(x509.DNSName(name))
        builder = builder.add_extension(x509.SubjectAlternativeName(sans), False)
    signer = issuer[1] if issuer else key
    return builder.sign(signer, hashes.SHA256())


@dataclass
class PKI:
    """The files of a control plane's certificates and keys (all PEM)."""

    folder: Path
    ca_cert: Path = field(init=False)
    ca_key: Path = field(init=False)
    serving_cert: Path = field(init=False)
    serving_key: Path = field(init=False)
    admin_cert: Path = field(init=False)
    admin_key: Path = field(init=False)
    controller_manager_cert: Path = field(init=False)
    controller_manager_key: Path = field(init=False)
    front_proxy_ca_cert: Path = field(init=False)
    front_proxy_client_cert: Path = field(init=False)
    front_proxy_client_key: Path = field(init=False)
    sa_key: Path = field(init=False)
    sa_pub: Path = field(init=False)

    def __post_init__(self) -> None:
        for name in self.__dataclass_fields__:
            if name != "folder":
                suffix = ".crt" if name.endswith("cert") else ".pem"
                setattr(self, name, self.folder / (name.replace("_", "-") + suffix))

    @classmethod
    def create(cls, folder: Path, admin_user: str = "modelfs-admin") -> PKI:
        folder.mkdir(parents=True, exist_ok=True)
        pki = cls(folder)
        ca_key = _ec_key()
        ca = _issue(common_name="modelfs-local-ca", key=ca_key, issuer=None, days=3650)
        pki._write(pki.ca_cert, _pem_cert(ca))
        pki._write(pki.ca_key, _pem_key(ca_key))
        names = [
            "127.0.0.1",
            "localhost",
            _KUBERNETES_SERVICE_IP,
            "kubernetes",
            "kubernetes.default",
            "kubernetes.default.svc",
            "kubernetes.default.svc.cluster.local",
        ]
        for cert_path, key_path, cn, orgs, server in (
            (pki.serving_cert, pki.serving_key, "kube-apiserver", (), names),
            (pki.admin_cert, pki.admin_key, admin_user, ("system:masters",), ()),
            (
                pki.controller_manager_cert,
                pki.controller_manager_key,
                "system:kube-controller-manager",
                (),
                (),
            ),
        ):
            key = _ec_key()
            cert = _issue(
                common_name=cn,
                key=key,
                issuer=(ca, ca_key),
                organizations=orgs,
                server_names=server,
                client=not server,
            )
            pki._write(cert_path, _pem_cert(cert))
            pki._write(key_path, _pem_key(key))
        # The aggregation layer's front proxy: its own CA, so that only its client certificate
        # may assert X-Remote-User headers (and kube-controller-manager's delegated
        # authentication finds the requestheader CA it looks for).
        proxy_ca_key = _ec_key()
        proxy_ca = _issue(common_name="modelfs-front-proxy-ca", key=proxy_ca_key, issuer=None)
        pki._write(pki.front_proxy_ca_cert, _pem_cert(proxy_ca))
        proxy_key = _ec_key()
        proxy_cert = _issue(
            common_name="front-proxy-client",
            key=proxy_key,
            issuer=(proxy_ca, proxy_ca_key),
            client=True,
        )
        pki._write(pki.front_proxy_client_cert, _pem_cert(proxy_cert))
        pki._write(pki.front_proxy_client_key, _pem_key(proxy_key))
        sa_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        pki._write(pki.sa_key, _pem_key(sa_key))
        pub = sa_key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
        pki._write(pki.sa_pub, pub)
        return pki

    @staticmethod
    def _write(path: Path, data: bytes) -> None:
        path.write_bytes(data)
        path.chmod(0o600)


# --------------------------------------------------------------------------- kubeconfig


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def kubeconfig_dict(
    server: str,
    ca_data: bytes,
    *,
    user: str,
    token: str | None = None,
    client_cert: bytes | None = None,
    client_key: bytes | None = None,
    context: str = CONTEXT_NAME,
    namespace: str | None = None,
) -> dict[str, Any]:
    """A self-contained kubeconfig (credentials embedded) for one server and one user."""
    creds: dict[str, str] = {}
    if token is not None:
        creds["token"] = token
    if client_cert is not None and client_key is not None:
        creds["client-certificate-data"] = _b64(client_cert)
        creds["client-key-data"] = _b64(client_key)
    ctx: dict[str, str] = {"cluster": context, "user": user}
    if namespace:
        ctx["namespace"] = namespace
    return {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [
            {
                "name": context,
                "cluster": {"server": server, "certificate-authority-data": _b64(ca_data)},
            }
        ],
        "users": [{"name": user, "user": creds}],
        "contexts": [{"name": context, "context": ctx}],
        "current-context": context,
    }


def write_kubeconfig(path: Path, config: Mapping[str, Any]) -> Path:
    """Write a kubeconfig with mode 0600 (it holds credentials)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as out:
        yaml.safe_dump(dict(config), out, sort_keys=False)
    return path


# --------------------------------------------------------------------------- processes


def _free_ports(count: int) -> list[int]:
    sockets = []
    try:
        for _ in range(count):
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            s.bind(("127.0.0.1", 0))
            sockets.append(s)
        return [s.getsockname()[1] for s in sockets]
    finally:
        for s in sockets:
            s.close()


_WORKDIR_PREFIX = "modelfs-controlplane-"
_OWNER_FILE = "owner.pid"


def reap_orphaned_folders(prefix: str, owner_file: str = _OWNER_FILE) -> list[Path]:
    """Remove the temp folders named `prefix*` whose owning process (the pid in `owner_file`)
    is gone: what a run killed with -9 left behind. Returns the folders removed."""
    removed = []
    for folder in Path(tempfile.gettempdir()).glob(prefix + "*"):
        try:
            owner = int((folder / owner_file).read_text())
        except (OSError, ValueError):
            continue
        try:
            os.kill(owner, 0)
        except ProcessLookupError:
            shutil.rmtree(folder, ignore_errors=True)
            removed.append(folder)
        except PermissionError:
            pass
    return removed


@dataclass
class Component(Child):
    """One running component."""

    stopped_at: float = 0.0
    """`time.monotonic()` when `stop` was called, 0 while never stopped."""

    def stop(self, grace: float, signum: int = signal.SIGTERM) -> int | None:
        self.stopped_at = time.monotonic()
        return super().stop(grace, signum)


@dataclass(frozen=True)
class Restart:
    """What `ControlPlane.start_component` did: `downtime`, seconds between the stop and the
    new start; `ready`, seconds until the component answered its health check; `total`, until
    the components depending on it were ready too; `also`, those it had to restart."""

    component: str
    downtime: float
    ready: float
    total: float
    also: tuple[str, ...] = ()


# Live control planes, stopped at exit and on SIGTERM/SIGHUP.
_LIVE: weakref.WeakSet[ControlPlane] = weakref.WeakSet()
_PREVIOUS_HANDLERS: dict[int, Any] = {}


def _stop_all() -> None:
    for cp in list(_LIVE):
        with contextlib.suppress(Exception):
            cp.stop()


atexit.register(_stop_all)


def _on_termination(signum: int, frame: FrameType | None) -> None:
    _stop_all()
    previous = _PREVIOUS_HANDLERS.get(signum)
    if callable(previous):
        previous(signum, frame)
    raise SystemExit(128 + signum)


def _install_signal_handlers() -> None:
    """Turn SIGTERM/SIGHUP into a clean stop, where nobody else handles them."""
    if threading.current_thread() is not threading.main_thread():
        return
    for sig in (signal.SIGTERM, signal.SIGHUP):
        current = signal.getsignal(sig)
        if current is _on_termination:
            continue
        if current in (signal.SIG_DFL, None) or callable(current):
            _PREVIOUS_HANDLERS[sig] = current if callable(current) else None
            signal.signal(sig, _on_termination)


# --------------------------------------------------------------------------- control plane


class ControlPlane:
    """etcd + kube-apiserver + kube-controller-manager on 127.0.0.1, on free ports.

    `start()` blocks until the apiserver's /readyz and the controller manager's /healthz
    answer ok, and writes `kubeconfig` (admin, user in group system:masters). `stop()` ends
    every process group and removes the work folder (unless `keep_workdir`). Use it as a
    context manager. `timings` holds the seconds each component took to be ready.
    """

    def __init__(
        self,
        binaries_dir: Path | str | None = None,
        *,
        workdir: Path | str | None = None,
        keep_workdir: bool = False,
        controllers: Sequence[str] | None = DEFAULT_CONTROLLERS,
        audit: bool = True,
        apiserver_flags: Mapping[str, str] | None = None,
        controller_manager_flags: Mapping[str, str] | None = None,
        etcd_flags: Mapping[str, str] | None = None,
        startup_timeout: float = 90.0,
        stop_grace: float = 5.0,
        admin_user: str = "modelfs-admin",
        apiserver_port: int = 0,
    ) -> None:
        """`controllers=None` runs no kube-controller-manager at all; extra `*_flags` are
        added to (or override) each component's `--flag=value` arguments; `apiserver_port`
        fixes the apiserver's port (0: a free one)."""
        self._binaries_dir = Path(binaries_dir) if binaries_dir else None
        self._workdir_arg = Path(workdir) if workdir else None
        self.keep_workdir = keep_workdir
        self.controllers = tuple(controllers) if controllers is not None else None
        self.audit = audit
        self.apiserver_flags = dict(apiserver_flags or {})
        self.controller_manager_flags = dict(controller_manager_flags or {})
        self.etcd_flags = dict(etcd_flags or {})
        self.startup_timeout = startup_timeout
        self.stop_grace = stop_grace
        self.admin_user = admin_user
        self._fixed_apiserver_port = apiserver_port
        self.components: dict[str, Component] = {}
        self.timings: dict[str, float] = {}
        self.workdir: Path | None = None
        self.pki: PKI | None = None
        self.etcd_url = ""
        self.apiserver_port = 0
        self.controller_manager_port = 0
        self._ssl: ssl.SSLContext | None = None
        self._lock = threading.Lock()
        #: Components stopped by `stop_component`, kept to start them again with the same argv.
        self._stopped: dict[str, Component] = {}
        #: One `Restart` per component start after the first (see `start_component`).
        self.restarts: list[Restart] = []

    # -- properties

    @property
    def binaries_dir(self) -> Path:
        if self._binaries_dir is None:
            self._binaries_dir = find_binaries()
        return self._binaries_dir

    @property
    def server(self) -> str:
        """The apiserver URL, https://127.0.0.1:<port>."""
        return f"https://127.0.0.1:{self.apiserver_port}"

    @property
    def kubeconfig(self) -> Path:
        """The admin kubeconfig (credentials embedded)."""
        return self._require_workdir() / "admin.kubeconfig"

    @property
    def audit_log(self) -> Path:
        return self._require_workdir() / "audit.log"

    @property
    def running(self) -> bool:
        """Every component is up (none stopped by `stop_component`, none exited)."""
        return (
            bool(self.components)
            and not self._stopped
            and all(c.alive() for c in self.components.values())
        )

    def log_path(self, component: str) -> Path:
        return self._require_workdir() / "logs" / f"{component}.log"

    def _require_workdir(self) -> Path:
        if self.workdir is None:
            raise ControlPlaneError("the control plane has not been started")
        return self.workdir

    # -- lifecycle

    def __enter__(self) -> ControlPlane:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def start(self) -> ControlPlane:
        """Start the three components and wait until they are ready; retries once when a
        port picked as free was taken in between."""
        with self._lock:
            if self.components:
                raise ControlPlaneError("already started")
            binaries = self.binaries_dir
            started = time.monotonic()
            _LIVE.add(self)
            _install_signal_handlers()
            for attempt in (1, 2):
                try:
                    self._start_once(binaries)
                    break
                except ControlPlaneError as error:
                    in_use = "address already in use" in str(error)
                    self._stop_processes()
                    if attempt == 2 or not in_use:
                        self._cleanup_workdir()
                        _LIVE.discard(self)
                        raise
                except BaseException:
                    self._stop_processes()
                    self._cleanup_workdir()
                    _LIVE.discard(self)
                    raise
            self.timings["total"] = time.monotonic() - started
            return self

    def _start_once(self, binaries: Path) -> None:
        if self._workdir_arg is not None:
            self._workdir_arg.mkdir(parents=True, exist_ok=True)
            self.workdir = self._workdir_arg
        else:
            reap_orphaned_folders(_WORKDIR_PREFIX)
            self.workdir = Path(tempfile.mkdtemp(prefix=_WORKDIR_PREFIX))
            (self.workdir / _OWNER_FILE).write_text(str(os.getpid()))
        (self.workdir / "logs").mkdir(exist_ok=True)
        t0 = time.monotonic()
        self.pki = PKI.create(self.workdir / "pki", self.admin_user)
        self._ssl = None
        self.timings["pki"] = time.monotonic() - t0
        etcd_port, peer_port, api_port, cm_port = _free_ports(4)
        self.etcd_url = f"http://127.0.0.1:{etcd_port}"
        self.apiserver_port = self._fixed_apiserver_port or api_port
        self.controller_manager_port = cm_port
        self._write_admin_kubeconfig()

        t0 = time.monotonic()
        self._spawn("etcd", binaries / "etcd", self._etcd_flags(peer_port))
        self._wait("etcd", lambda: self._etcd_healthy())
        self.timings["etcd"] = time.monotonic() - t0

        t0 = time.monotonic()
        self._spawn("kube-apiserver", binaries / "kube-apiserver", self._apiserver_flags())
        self._wait("kube-apiserver", lambda: self._status("/readyz") == 200)
        self.timings["kube-apiserver"] = time.monotonic() - t0

        if self.controllers is not None:
            t0 = time.monotonic()
            self._write_controller_manager_kubeconfig()
            self._spawn(
                "kube-controller-manager",
                binaries / "kube-controller-manager",
                self._controller_manager_flags(),
            )
            self._wait("kube-controller-manager", self._controller_manager_healthy)
            self.timings["kube-controller-manager"] = time.monotonic() - t0

    def stop(self) -> None:
        """Stop every component (controller manager, apiserver, then etcd) and remove the
        work folder unless `keep_workdir`. Safe to call twice."""
        self._stop_processes()
        self._cleanup_workdir()
        _LIVE.discard(self)

    def _stop_processes(self) -> None:
        self._stopped.clear()
        for name in ("kube-controller-manager", "kube-apiserver", "etcd"):
            component = self.components.pop(name, None)
            if component is not None:
                component.stop(self.stop_grace)

    # -- one component at a time (fault injection)

    def stop_component(self, name: str, *, kill: bool = False) -> None:
        """Stop one component, the others keep running: SIGTERM (SIGKILL after `stop_grace`),
        or at once SIGKILL with `kill` (a crash). `start_component(name)` starts it again as it
        was: the same command line, so the same ports, certificates and, for etcd, data dir.

        What a client sees meanwhile is an outage: etcd stopped, kube-apiserver answers
        /readyz 500 and fails reads and writes; kube-apiserver stopped, connections are refused.
        """
        with self._lock:
            if name in self._stopped:
                raise ControlPlaneError(f"{name} is already stopped")
            component = self.components.pop(name, None)
            if component is None:
                raise ControlPlaneError(
                    f"no running component {name!r}; running: {', '.join(self.components)}"
                )
            if kill:
                component.stop(0, signal.SIGKILL)
            else:
                component.stop(self.stop_grace)
            self._stopped[name] = component
            with contextlib.suppress(OSError), component.log_path.open("a") as log:
                how = "killed" if kill else "stopped"
                log.write(f"--- modelfs: {name} {how} by ControlPlane.stop_component ---\n")

    def start_component(self, name: str) -> Restart:
        """Start a component stopped by `stop_component` with its previous command line, and
        wait until it is ready (etcd /health, kube-apiserver /readyz, kube-controller-manager
        /healthz). Then check the components that depend on it: kube-apiserver once etcd is
        back (its /readyz needs etcd), kube-controller-manager once the apiserver is back; one
        that exited meanwhile is started again too (and listed in the result's `also`).

        Call it from the main thread: a child started from another thread would be SIGKILLed
        when that thread ends (PR_SET_PDEATHSIG)."""
        with self._lock:
            stopped = self._stopped.pop(name, None)
            if stopped is None:
                raise ControlPlaneError(f"{name!r} was not stopped by stop_component")
            began = time.monotonic()
            downtime = began - stopped.stopped_at if stopped.stopped_at else 0.0
            self._respawn(stopped)
            ready = time.monotonic() - began
            also = self._revive_dependents(name)
            restart = Restart(name, downtime, ready, time.monotonic() - began, tuple(also))
            self.restarts.append(restart)
            return restart

    def restart(self, name: str, *, downtime: float = 0.0, kill: bool = False) -> Restart:
        """`stop_component(name, kill=kill)`, `downtime` seconds of outage, then
        `start_component(name)`. Blocks throughout; for an outage during which the caller does
        other things, call the two halves itself."""
        self.stop_component(name, kill=kill)
        if downtime > 0:
            time.sleep(downtime)
        return self.start_component(name)

    def wait_ready(self, timeout: float | None = None) -> None:
        """Wait until every running component answers its health check (ControlPlaneError
        after `timeout`, default `startup_timeout`)."""
        for name in ("etcd", "kube-apiserver", "kube-controller-manager"):
            if name in self.components:
                self._wait(name, self._ready_check(name), timeout)

    def _ready_check(self, name: str) -> Callable[[], bool]:
        return {
            "etcd": self._etcd_healthy,
            "kube-apiserver": lambda: self._status("/readyz") == 200,
            "kube-controller-manager": self._controller_manager_healthy,
        }[name]

    def _respawn(self, previous: Component) -> None:
        self._spawn(previous.name, Path(previous.argv[0]), {}, argv=previous.argv)
        self._wait(previous.name, self._ready_check(previous.name))

    def _revive_dependents(self, name: str) -> list[str]:
        """After `name` came back: wait for the components that need it, restarting any that
        died while it was down. Returns the names restarted."""
        dependents = {
            "etcd": ("kube-apiserver", "kube-controller-manager"),
            "kube-apiserver": ("kube-controller-manager",),
        }.get(name, ())
        revived = []
        for dependent in dependents:
            component = self.components.get(dependent)
            if component is None:  # stopped on purpose, or not configured
                continue
            if not component.alive():
                with component.log_path.open("a") as log:
                    log.write(
                        f"--- modelfs: {dependent} exited ({component.process.returncode}) "
                        f"while {name} was down; restarting it ---\n"
                    )
                self._respawn(component)
                revived.append(dependent)
            else:
                self._wait(dependent, self._ready_check(dependent))
        return revived

    def _cleanup_workdir(self) -> None:
        if self.workdir is not None and not self.keep_workdir and self._workdir_arg is None:
            shutil.rmtree(self.workdir, ignore_errors=True)

    # -- flags

    def _etcd_flags(self, peer_port: int) -> dict[str, str]:
        workdir = self._require_workdir()
        peer = f"http://127.0.0.1:{peer_port}"
        flags = {
            "name": "modelfs",
            "data-dir": str(workdir / "etcd"),
            "listen-client-urls": self.etcd_url,
            "advertise-client-urls": self.etcd_url,
            "listen-peer-urls": peer,
            "initial-advertise-peer-urls": peer,
            "initial-cluster": f"modelfs={peer}",
            "unsafe-no-fsync": "true",
            "log-level": "warn",
        }
        flags.update(self.etcd_flags)
        return flags

    def _apiserver_flags(self) -> dict[str, str]:
        pki, workdir = self.pki, self._require_workdir()
        assert pki is not None
        flags = {
            "etcd-servers": self.etcd_url,
            "bind-address": "127.0.0.1",
            "advertise-address": "127.0.0.1",
            "secure-port": str(self.apiserver_port),
            "cert-dir": str(workdir / "apiserver-certs"),
            "tls-cert-file": str(pki.serving_cert),
            "tls-private-key-file": str(pki.serving_key),
            "client-ca-file": str(pki.ca_cert),
            "authorization-mode": "RBAC",
            "service-account-issuer": "https://kubernetes.default.svc.cluster.local",
            "service-account-key-file": str(pki.sa_pub),
            "service-account-signing-key-file": str(pki.sa_key),
            "service-cluster-ip-range": SERVICE_CIDR,
            "allow-privileged": "true",
            "enable-priority-and-fairness": "true",
            "requestheader-client-ca-file": str(pki.front_proxy_ca_cert),
            "requestheader-allowed-names": "front-proxy-client",
            "requestheader-username-headers": "X-Remote-User",
            "requestheader-group-headers": "X-Remote-Group",
            "requestheader-extra-headers-prefix": "X-Remote-Extra-",
            "proxy-client-cert-file": str(pki.front_proxy_client_cert),
            "proxy-client-key-file": str(pki.front_proxy_client_key),
            # the default "lease" reconciler refuses a loopback advertise address
            "endpoint-reconciler-type": "none",
        }
        if self.audit:
            policy = workdir / "audit-policy.yaml"
            policy.write_text(_AUDIT_POLICY)
            flags["audit-policy-file"] = str(policy)
            flags["audit-log-path"] = str(workdir / "audit.log")
            flags["audit-log-format"] = "json"
            flags["audit-log-mode"] = "blocking"
        flags.update(self.apiserver_flags)
        return flags

    def _controller_manager_flags(self) -> dict[str, str]:
        pki, workdir = self.pki, self._require_workdir()
        assert pki is not None and self.controllers is not None
        kubeconfig = str(workdir / "controller-manager.kubeconfig")
        flags = {
            "kubeconfig": kubeconfig,
            "authentication-kubeconfig": kubeconfig,
            "authorization-kubeconfig": kubeconfig,
            "bind-address": "127.0.0.1",
            "secure-port": str(self.controller_manager_port),
            "cert-dir": str(workdir / "controller-manager-certs"),
            "leader-elect": "false",
            "use-service-account-credentials": "true",
            "service-account-private-key-file": str(pki.sa_key),
            "root-ca-file": str(pki.ca_cert),
            "controllers": ",".join(self.controllers),
            "concurrent-gc-syncs": "5",
        }
        flags.update(self.controller_manager_flags)
        return flags

    # -- kubeconfigs

    def _write_admin_kubeconfig(self) -> None:
        pki = self.pki
        assert pki is not None
        config = kubeconfig_dict(
            self.server,
            pki.ca_cert.read_bytes(),
            user=self.admin_user,
            client_cert=pki.admin_cert.read_bytes(),
            client_key=pki.admin_key.read_bytes(),
        )
        write_kubeconfig(self.kubeconfig, config)

    def _write_controller_manager_kubeconfig(self) -> None:
        pki = self.pki
        assert pki is not None
        config = kubeconfig_dict(
            self.server,
            pki.ca_cert.read_bytes(),
            user="system:kube-controller-manager",
            client_cert=pki.controller_manager_cert.read_bytes(),
            client_key=pki.controller_manager_key.read_bytes(),
        )
        write_kubeconfig(self._require_workdir() / "controller-manager.kubeconfig", config)

    def write_admin_kubeconfig(self, path: Path | str) -> Path:
        """Copy the admin kubeconfig to `path` (mode 0600)."""
        target = Path(path).expanduser()
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(self.kubeconfig, target)
        target.chmod(0o600)
        return target

    def service_account_kubeconfig(
        self,
        namespace: str,
        name: str,
        path: Path | str | None = None,
        *,
        create: bool = True,
        expiration_seconds: int = 3600,
        audiences: Sequence[str] = (),
    ) -> Path:
        """A kubeconfig authenticating as ServiceAccount `namespace/name` with a token from the
        TokenRequest API (so requests run under that account's RBAC). Creates the namespace and
        the account when `create` and they are missing. Written to `path` or the work folder."""
        if create:
            for api_path, body in (
                ("/api/v1/namespaces", {"metadata": {"name": namespace}}),
                (
                    f"/api/v1/namespaces/{namespace}/serviceaccounts",
                    {"metadata": {"name": name, "namespace": namespace}},
                ),
            ):
                status, data = self.request("POST", api_path, body)
                if status not in (201, 409):
                    raise ControlPlaneError(f"POST {api_path}: {status} {data[:300]!r}")
        request: dict[str, Any] = {
            "apiVersion": "authentication.k8s.io/v1",
            "kind": "TokenRequest",
            "spec": {"expirationSeconds": expiration_seconds},
        }
        if audiences:
            request["spec"]["audiences"] = list(audiences)
        token_path = f"/api/v1/namespaces/{namespace}/serviceaccounts/{name}/token"
        status, data = self.request("POST", token_path, request)
        if status != 201:
            raise ControlPlaneError(f"TokenRequest for {namespace}/{name}: {status} {data!r}")
        token = json.loads(data)["status"]["token"]
        assert self.pki is not None
        target = (
            Path(path) if path else self._require_workdir() / f"sa-{namespace}-{name}.kubeconfig"
        )
        config = kubeconfig_dict(
            self.server,
            self.pki.ca_cert.read_bytes(),
            user=f"system:serviceaccount:{namespace}:{name}",
            token=token,
            namespace=namespace,
        )
        return write_kubeconfig(target, config)

    # -- raw HTTP as admin

    def _ssl_context(self) -> ssl.SSLContext:
        if self._ssl is None:
            assert self.pki is not None
            context = ssl.create_default_context(cafile=str(self.pki.ca_cert))
            context.load_cert_chain(str(self.pki.admin_cert), str(self.pki.admin_key))
            self._ssl = context
        return self._ssl

    def request(
        self,
        method: str,
        path: str,
        body: Mapping[str, Any] | bytes | None = None,
        *,
        content_type: str = "application/json",
        timeout: float = 30.0,
    ) -> tuple[int, bytes]:
        """One HTTPS request to the apiserver as the admin user: (status, body bytes)."""
        conn = http.client.HTTPSConnection(
            "127.0.0.1", self.apiserver_port, context=self._ssl_context(), timeout=timeout
        )
        try:
            payload = body if isinstance(body, bytes | None) else json.dumps(body).encode()
            headers = {"Content-Type": content_type} if payload is not None else {}
            conn.request(method, path, body=payload, headers=headers)
            response = conn.getresponse()
            return response.status, response.read()
        finally:
            conn.close()

    def get(self, path: str, *, timeout: float = 30.0) -> bytes:
        """GET `path` as admin and return the body; raises on a non-2xx status. E.g.
        `get("/metrics")` for the apiserver's Prometheus metrics, `get("/version")`."""
        status, data = self.request("GET", path, timeout=timeout)
        if not 200 <= status < 300:
            raise ControlPlaneError(f"GET {path}: {status} {data[:500]!r}")
        return data

    def metrics(self) -> str:
        """The apiserver's /metrics (Prometheus text format)."""
        return self.get("/metrics").decode()

    def audit_events(self) -> Iterator[dict[str, Any]]:
        """The apiserver's audit events so far (level Metadata, one per finished request)."""
        if not self.audit:
            raise ControlPlaneError("audit logging is off (ControlPlane(audit=False))")
        with contextlib.suppress(FileNotFoundError), self.audit_log.open() as lines:
            for line in lines:
                if line.strip():
                    yield json.loads(line)

    def requests_by_user(self, *, stage: str = "ResponseComplete") -> Counter[str]:
        """How many requests each user made, from the audit log (metrics carry no user)."""
        return Counter(
            event["user"]["username"]
            for event in self.audit_events()
            if event.get("stage") == stage and "user" in event
        )

    def rss_bytes(self) -> dict[str, int]:
        """Resident memory of each running component."""
        return {name: c.rss_bytes() for name, c in self.components.items()}

    # -- internals

    def _spawn(
        self,
        name: str,
        binary: Path,
        flags: Mapping[str, str],
        *,
        argv: Sequence[str] | None = None,
    ) -> None:
        if not os.access(binary, os.X_OK):
            raise ControlPlaneError(f"{binary} is missing or not executable")
        if argv is None:
            argv = [str(binary), *(f"--{key}={value}" for key, value in flags.items())]
        argv = list(argv)
        self.components[name] = Component.start(name, argv, self.log_path(name), cwd=self.workdir)

    def _wait(self, name: str, ready: Callable[[], bool], timeout: float | None = None) -> None:
        self.components[name].wait_until(
            ready,
            self.startup_timeout if timeout is None else timeout,
            ControlPlaneError,
            transient=(OSError, http.client.HTTPException),
        )

    def _etcd_healthy(self) -> bool:
        conn = http.client.HTTPConnection("127.0.0.1", int(self.etcd_url.rsplit(":", 1)[1]), 2)
        try:
            conn.request("GET", "/health")
            response = conn.getresponse()
            return response.status == 200 and b"true" in response.read()
        finally:
            conn.close()

    def _status(self, path: str) -> int:
        return self.request("GET", path, timeout=5)[0]

    def _controller_manager_healthy(self) -> bool:
        context = ssl.create_default_context()
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE  # its serving cert is self-signed at start
        conn = http.client.HTTPSConnection(
            "127.0.0.1", self.controller_manager_port, context=context, timeout=5
        )
        try:
            conn.request("GET", "/healthz")
            response = conn.getresponse()
            return response.status == 200 and response.read().strip() == b"ok"
        finally:
            conn.close()


# --------------------------------------------------------------------------- CLI


def cli_start(args: argparse.Namespace) -> int:
    """`modelfs controlplane start`: run until Ctrl-C, like `kind create cluster` + wait."""
    try:
        binaries = find_binaries(build=True)
    except ControlPlaneError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    if threading.current_thread() is threading.main_thread():
        # Ctrl-C (SIGINT) stops it even when started with SIGINT ignored, as a shell does for
        # `modelfs controlplane start &` in a script and a child inherits.
        signal.signal(signal.SIGINT, signal.default_int_handler)
    cp = ControlPlane(binaries)
    print(
        f"Starting etcd {ETCD_VERSION}, kube-apiserver and kube-controller-manager "
        f"{K8S_VERSION} from {binaries} ...",
        flush=True,
    )
    try:
        cp.start()
    except ControlPlaneError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    try:
        kubeconfig = cp.kubeconfig
        if getattr(args, "kubeconfig_out", None):
            kubeconfig = cp.write_admin_kubeconfig(args.kubeconfig_out)
        assert cp.workdir is not None
        print(
            f"Control plane ready in {cp.timings['total']:.1f}s at {cp.server}\n"
            f"  kubeconfig: {kubeconfig}\n"
            f"  logs:       {cp.workdir / 'logs'}\n"
            f"  audit log:  {cp.audit_log}\n"
            f"Use it with:\n"
            f"  export KUBECONFIG={kubeconfig}\n"
            f"  kubectl get namespaces\n"
            f"Press Ctrl-C to stop.",
            flush=True,
        )
        while True:
            for component in cp.components.values():
                if not component.alive():
                    print(
                        f"error: {component.name} exited ({component.process.returncode});"
                        f" last lines of {component.log_path}:\n{component.tail()}",
                        file=sys.stderr,
                    )
                    return 1
            time.sleep(1)
    except KeyboardInterrupt:
        print("\nStopping the control plane ...", flush=True)
        return 0
    except SystemExit:  # SIGTERM/SIGHUP, see _on_termination
        print("Stopped the control plane.", flush=True)
        raise
    finally:
        # A second Ctrl-C (or a SIGINT sent to the whole process group) must not cut the
        # stop short and leave processes behind.
        with contextlib.suppress(ValueError):  # not the main thread
            signal.signal(signal.SIGINT, signal.SIG_IGN)
        cp.stop()
