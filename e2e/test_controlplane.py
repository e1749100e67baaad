"""The local control plane itself: versions, endpoints, metrics, audit, RSS."""

from __future__ import annotations

import json
import subprocess

import pytest
from kubernetes.aio import client

from e2e.helpers import REPO
from modelfs.testing.controlplane import ETCD_VERSION, K8S_VERSION, ControlPlane
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
