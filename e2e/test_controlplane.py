"""The local control plane itself: versions, endpoints, metrics, audit, RSS, and restarting
one component (the fault suite, e2e/test_faults.py, relies on it)."""

from __future__ import annotations

import asyncio
import contextlib
import json
import subprocess
import time
import uuid
from typing import Any

import pytest
from kubernetes.aio import client

from e2e.helpers import REPO, wire
from modelfs.testing.controlplane import (
    ETCD_VERSION,
    K8S_VERSION,
    ControlPlane,
    ControlPlaneError,
)
from modelfs.testing.dataset_engine import DATASET_VERSION

pytestmark = pytest.mark.e2e


def test_versions_match_hack_versions_env() -> None:
    env = dict(
        line.split("=", 1)
        for line in (REPO / "hack" / "versions.env").read_text().splitlines()
        if line and not line.startswith("#")
    )
    # helm's version has no copy to agree with: hack/build-helm.sh and tests/tools.py read it here.
    assert env.pop("HELM_VERSION", None)
    assert env == {
        "K8S_VERSION": K8S_VERSION,
        "ETCD_VERSION": ETCD_VERSION,
        "DATASET_VERSION": DATASET_VERSION,
    }


def test_binaries_report_pinned_versions(k8s_control_plane: ControlPlane) -> None:
    bins = k8s_control_plane.binaries_dir
    for name in ("kube-apiserver", "kube-controller-manager"):
        out = subprocess.run([bins / name, "--version"], capture_output=True, text=True, check=True)
        assert out.stdout.strip() == f"Kubernetes {K8S_VERSION}", name
    etcd = subprocess.run([bins / "etcd", "--version"], capture_output=True, text=True, check=True)
    assert f"etcd Version: {ETCD_VERSION.removeprefix('v')}" in etcd.stdout


def test_server_version_and_health(k8s_control_plane: ControlPlane) -> None:
    version = json.loads(k8s_control_plane.get("/version"))
    assert version["gitVersion"] == K8S_VERSION
    assert (version["major"], version["minor"]) == ("1", K8S_VERSION.split(".")[1])
    assert k8s_control_plane.get("/readyz") == b"ok"
    assert all(c.alive() for c in k8s_control_plane.components.values())
    assert set(k8s_control_plane.components) == {
        "etcd",
        "kube-apiserver",
        "kube-controller-manager",
    }


async def test_metrics_and_audit_by_user(
    k8s_control_plane: ControlPlane, k8s_api: client.ApiClient
) -> None:
    await client.CoreV1Api(k8s_api).list_namespace()
    metrics = k8s_control_plane.metrics()
    assert "apiserver_request_total{" in metrics
    by_user = k8s_control_plane.requests_by_user()
    assert by_user[k8s_control_plane.admin_user] >= 1
    # the controller manager runs its controllers under their own ServiceAccounts
    assert any(u.startswith("system:serviceaccount:kube-system:") for u in by_user)


def test_resident_memory_is_reported(k8s_control_plane: ControlPlane) -> None:
    rss = k8s_control_plane.rss_bytes()
    assert set(rss) == {"etcd", "kube-apiserver", "kube-controller-manager"}
    assert all(value > 1_000_000 for value in rss.values()), rss
    print({k: f"{v / 2**20:.0f} MiB" for k, v in rss.items()}, k8s_control_plane.timings)


# --------------------------------------------------------------------------- one component


async def _default_service_account(api: client.ApiClient, within: float = 60.0) -> float:
    """Create a namespace and wait for its `default` ServiceAccount, which only
    kube-controller-manager's serviceaccount controller makes: proof that it works. Returns the
    seconds it took; deletes the namespace."""
    core = client.CoreV1Api(api)
    name = f"cp-restart-{uuid.uuid4().hex[:6]}"
    await core.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name=name)))
    started = time.monotonic()
    try:
        while True:
            accounts = await core.list_namespaced_service_account(name)
            if "default" in {wire(a)["metadata"]["name"] for a in accounts.items}:
                return time.monotonic() - started
            if time.monotonic() - started > within:
                pytest.fail(f"no default ServiceAccount in {name} within {within}s")
            await asyncio.sleep(0.2)
    finally:
        await core.delete_namespace(name)


def _config_map(cp: ControlPlane, name: str, timeout: float = 30) -> tuple[int, dict[str, Any]]:
    path = f"/api/v1/namespaces/default/configmaps/{name}"
    status, data = cp.request("GET", path, timeout=timeout)
    return status, json.loads(data) if status == 200 else {}


@pytest.mark.parametrize("component", ["etcd", "kube-apiserver", "kube-controller-manager"])
async def test_restart_one_component_keeps_ports_data_and_identity(
    k8s_control_plane: ControlPlane, k8s_api: client.ApiClient, component: str
) -> None:
    """`stop_component` makes a real outage of one component; `start_component` brings it back
    on the same ports, with the same certificates and (etcd) the same data; the components that
    depend on it work again, and so do clients made before (the session's ApiClient)."""
    cp = k8s_control_plane
    name = f"restart-{uuid.uuid4().hex[:6]}"
    body = {"metadata": {"name": name}, "data": {"k": "v"}}
    status, _ = cp.request("POST", "/api/v1/namespaces/default/configmaps", body)
    assert status == 201
    before = {n: (c.pid, c.argv) for n, c in cp.components.items()}
    server, ca = cp.server, cp.pki.ca_cert.read_bytes() if cp.pki else b""
    try:
        cp.stop_component(component)
        assert component not in cp.components and not cp.running
        with pytest.raises(ControlPlaneError, match="already stopped"):
            cp.stop_component(component)
        if component == "etcd":  # the apiserver is up but not ready, and cannot read
            try:  # 500, or (machine loaded) no answer while its etcd check waits
                readyz: int | str = cp.request("GET", "/readyz", timeout=15)[0]
            except TimeoutError:
                readyz = "timeout"
            assert readyz in (500, "timeout")
            with contextlib.suppress(TimeoutError, OSError):  # 5xx, or no answer in time
                assert _config_map(cp, name, timeout=5)[0] >= 500
        elif component == "kube-apiserver":  # nothing listens
            with pytest.raises(ConnectionRefusedError):
                cp.request("GET", "/readyz", timeout=5)
        await asyncio.sleep(2)
        restart = cp.start_component(component)
    finally:
        if component not in cp.components:  # never leave the session's control plane down
            cp.start_component(component)
    assert cp.running
    assert restart.component == component and restart.downtime >= 2 and restart.ready > 0
    assert restart.also == (), "a dependent component died meanwhile"
    print(f"\n{component}: {restart}")
    after = cp.components[component]
    assert after.pid != before[component][0]
    assert after.argv == before[component][1]  # the same ports, data dir, certificates
    assert cp.server == server and cp.pki is not None and cp.pki.ca_cert.read_bytes() == ca
    for other, (pid, _) in before.items():
        if other != component:
            assert cp.components[other].pid == pid, f"{other} was restarted too"
    assert "stopped by ControlPlane.stop_component" in cp.log_path(component).read_text()
    status, config_map = _config_map(cp, name)
    assert status == 200 and config_map["data"] == {"k": "v"}  # etcd kept its data
    # The session's client (its connections were cut) works again, and so does the controller
    # manager (its watches were cut too, or it was the one restarted).
    took = await _default_service_account(k8s_api)
    print(f"default ServiceAccount after the restart in {took:.1f}s")
    cp.request("DELETE", f"/api/v1/namespaces/default/configmaps/{name}")


def test_restart_refuses_what_was_not_stopped(k8s_control_plane: ControlPlane) -> None:
    with pytest.raises(ControlPlaneError, match="was not stopped"):
        k8s_control_plane.start_component("etcd")
    with pytest.raises(ControlPlaneError, match="no running component 'kubelet'"):
        k8s_control_plane.stop_component("kubelet")
    assert k8s_control_plane.running


def test_restart_with_downtime_and_a_crash(k8s_control_plane: ControlPlane) -> None:
    """`restart(kill=True)`: SIGKILL, as a crash; the log says so; `restarts` records it."""
    cp = k8s_control_plane
    count = len(cp.restarts)
    restart = cp.restart("kube-controller-manager", downtime=1, kill=True)
    assert restart.downtime >= 1 and cp.restarts[count:] == [restart]
    assert "killed by ControlPlane.stop_component" in cp.log_path(restart.component).read_text()
    cp.wait_ready(timeout=30)
    assert cp.running
