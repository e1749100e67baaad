"""kubectl and kustomize for the tests that install modelfs the way its users do."""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

import yaml

REPO = Path(__file__).resolve().parents[1]
CONFIG = REPO / "config"
# What config/rbac contributes to config/default (plus the Namespace its ServiceAccount lives in).
RBAC_KINDS = frozenset(
    {"Namespace", "ServiceAccount", "ClusterRole", "ClusterRoleBinding", "Role", "RoleBinding"}
)


def kubectl(
    binary: str, kubeconfig: Path | str, *args: str, stdin: str | None = None, check: bool = True
) -> subprocess.CompletedProcess[str]:
    """Run kubectl against `kubeconfig`; raise with its output when `check` and it fails."""
    result = subprocess.run(
        [binary, f"--kubeconfig={kubeconfig}", *args],
        input=stdin,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    if check and result.returncode != 0:
        raise AssertionError(
            f"kubectl {' '.join(args)} failed ({result.returncode}):\n"
            f"{result.stdout}\n{result.stderr}"
        )
    return result


def build(binary: str, directory: Path | str) -> list[dict[str, Any]]:
    """`kubectl kustomize directory`, as documents."""
    result = subprocess.run(
        [binary, "kustomize", str(directory)],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    return [d for d in yaml.safe_load_all(result.stdout) if d]


def installed_rbac(binary: str) -> list[dict[str, Any]]:
    """The operator's identity and RBAC exactly as `kubectl apply -k config/default` installs
    them: config/rbac with config/default's namespace, name prefix and labels."""
    return [d for d in build(binary, CONFIG / "default") if d["kind"] in RBAC_KINDS]


def dump(documents: list[dict[str, Any]]) -> str:
    return yaml.safe_dump_all(documents, sort_keys=False)
