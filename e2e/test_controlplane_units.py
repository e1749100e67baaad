"""The control plane's pieces that need no cluster: certificates, kubeconfigs, binary lookup."""

from __future__ import annotations

import ipaddress
import stat
import subprocess
from pathlib import Path

import pytest
import yaml
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from modelfs.testing import controlplane
from modelfs.testing.controlplane import PKI, ControlPlaneError, find_binaries, kubeconfig_dict


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> PKI:
    return PKI.create(tmp_path_factory.mktemp("pki"), admin_user="alice")


def load(path: Path) -> x509.Certificate:
    return x509.load_pem_x509_certificate(path.read_bytes())


def test_certificates_chain_to_the_ca(pki: PKI) -> None:
    ca = load(pki.ca_cert)
    ca_key = ca.public_key()
    assert isinstance(ca_key, ec.EllipticCurvePublicKey)
    for path in (pki.serving_cert, pki.admin_cert, pki.controller_manager_cert):
        cert = load(path)
        assert cert.issuer == ca.subject
        cert.verify_directly_issued_by(ca)
    proxy = load(pki.front_proxy_client_cert)
    assert proxy.issuer != ca.subject  # its own CA
    proxy.verify_directly_issued_by(load(pki.front_proxy_ca_cert))


def test_admin_is_a_system_master_client(pki: PKI) -> None:
    admin = load(pki.admin_cert)
    assert admin.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value == "alice"
    orgs = [a.value for a in admin.subject.get_attributes_for_oid(NameOID.ORGANIZATION_NAME)]
    assert orgs == ["system:masters"]
    usage = admin.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert list(usage) == [ExtendedKeyUsageOID.CLIENT_AUTH]


def test_serving_certificate_names(pki: PKI) -> None:
    sans = load(pki.serving_cert).extensions.get_extension_for_class(x509.SubjectAlternativeName)
    assert ipaddress.ip_address("127.0.0.1") in sans.value.get_values_for_type(x509.IPAddress)
    dns = sans.value.get_values_for_type(x509.DNSName)
    assert {"localhost", "kubernetes.default.svc"} <= set(dns)


def test_keys_are_private(pki: PKI) -> None:
    for path in pki.folder.iterdir():
        assert stat.S_IMODE(path.stat().st_mode) == 0o600, path


def test_kubeconfig_with_token(tmp_path: Path) -> None:
    config = kubeconfig_dict(
        "https://127.0.0.1:6443",
        b"CA",
        user="system:serviceaccount:ns:sa",
        token="t",
        namespace="ns",
    )
    path = controlplane.write_kubeconfig(tmp_path / "kc", config)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    loaded = yaml.safe_load(path.read_text())
    assert loaded["users"][0]["user"] == {"token": "t"}
    assert loaded["contexts"][0]["context"]["namespace"] == "ns"
    assert loaded["clusters"][0]["cluster"]["certificate-authority-data"] == "Q0E="


def fake_binaries(folder: Path) -> Path:
    folder.mkdir(parents=True)
    for name in controlplane.BINARIES:
        (folder / name).write_text("#!/bin/sh\n")
        (folder / name).chmod(0o755)
    return folder


def test_find_binaries_prefers_kubebuilder_assets(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    assets = fake_binaries(tmp_path / "assets")
    monkeypatch.setenv("KUBEBUILDER_ASSETS", str(assets))
    assert find_binaries() == assets


def test_find_binaries_uses_the_versioned_cache(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("KUBEBUILDER_ASSETS", raising=False)
    monkeypatch.setenv("MODELFS_CACHE_DIR", str(tmp_path))
    expected = tmp_path / f"k8s-{controlplane.K8S_VERSION}-etcd-{controlplane.ETCD_VERSION}" / "bin"
    assert controlplane.cached_binaries_dir() == expected
    fake_binaries(expected)
    assert find_binaries() == expected


def test_find_binaries_says_what_to_run(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KUBEBUILDER_ASSETS", str(tmp_path / "missing"))
    monkeypatch.setenv("MODELFS_CACHE_DIR", str(tmp_path))
    monkeypatch.delenv("MODELFS_CONTROLPLANE_BUILD", raising=False)
    with pytest.raises(ControlPlaneError, match=r"make controlplane-binaries"):
        find_binaries()


def test_workload_controllers_run_by_default() -> None:
    """The real Dataset controller's Jobs and PVCs need them (with the pod simulator)."""
    assert set(controlplane.WORKLOAD_CONTROLLERS) == {
        "job-controller",
        "persistentvolume-binder-controller",
        "persistentvolume-protection-controller",
        "persistentvolumeclaim-protection-controller",
        "pod-garbage-collector-controller",
    }
    assert controlplane.DEFAULT_CONTROLLERS == (
        controlplane.BASE_CONTROLLERS + controlplane.WORKLOAD_CONTROLLERS
    )
    assert len(set(controlplane.DEFAULT_CONTROLLERS)) == len(controlplane.DEFAULT_CONTROLLERS)


def test_controller_names_are_known_to_kube_controller_manager() -> None:
    """A misspelt name is an error at start; check them against the binary's own list."""
    try:
        binaries = find_binaries()
    except ControlPlaneError as error:
        pytest.skip(str(error))
    help_text = subprocess.run(
        [str(binaries / "kube-controller-manager"), "--help"],
        capture_output=True,
        text=True,
        check=False,
    ).stdout
    (line,) = [x for x in help_text.splitlines() if "All controllers:" in x]
    known = {name.strip() for name in line.split("All controllers:", 1)[1].split(",")}
    assert set(controlplane.DEFAULT_CONTROLLERS) <= known, known
