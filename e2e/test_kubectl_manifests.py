"""The generated CRDs load with kubectl as a user would apply them."""

from __future__ import annotations

import subprocess
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def test_crds_pass_kubectl_client_dry_run(kubectl: str, k8s_kubeconfig: Path) -> None:
    # Client-side dry run still asks the server for discovery, hence the cluster.
    result = subprocess.run(
        [
            kubectl,
            *("--kubeconfig", str(k8s_kubeconfig), "apply", "--dry-run=client"),
            *("-f", str(REPO / "config" / "crd" / "bases")),
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    for plural in ("modelsources", "models", "modelsyncs", "modelreferences"):
        assert f"{plural}.model.samzong.dev" in result.stdout
