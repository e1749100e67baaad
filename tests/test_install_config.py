"""The install: the generated ClusterRole against controllers/rbac.py, docs/security.md's table
of it, config/ consistency, the Dockerfile (hadolint; what its build stage installs is
tests/test_packaging.py's) and the GitHub workflows (actionlint)."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from modelfs.controllers.rbac import RULES
from modelfs.manifests import CLUSTER_ROLE, cluster_role, rbac_table, render
from tests import tools

ROOT = Path(__file__).resolve().parents[1]
CONFIG = ROOT / "config"


def load(path: Path) -> list[dict[str, Any]]:
    return [d for d in yaml.safe_load_all(path.read_text()) if d]


# ----------------------------------------------------------------------------- RBAC


def test_role_yaml_is_rendered_from_controllers_rbac() -> None:
    assert "rbac/role.yaml" in render()  # so test_manifests' staleness test covers it
    (committed,) = load(CONFIG / "rbac" / "role.yaml")
    assert committed == cluster_role()
    assert committed["metadata"]["name"] == CLUSTER_ROLE


def test_role_has_no_wildcard_and_nothing_outside_controllers_rbac() -> None:
    (role,) = load(CONFIG / "rbac" / "role.yaml")
    declared = {
        (rule.group, resource, verb)
        for rule in RULES
        for resource in rule.resources
        for verb in rule.verbs
    }
    granted = set()
    for rule in role["rules"]:
        assert set(rule) == {"apiGroups", "resources", "verbs"}, rule  # no resourceNames etc.
        for field in ("apiGroups", "resources", "verbs"):
            assert not any("*" in value for value in rule[field]), f"wildcard in {rule}"
        granted |= {
            (g, r, v) for g in rule["apiGroups"] for r in rule["resources"] for v in rule["verbs"]
        }
    assert granted == declared
    secrets = {v for g, r, v in granted if (g, r) == ("", "secrets")}
    assert secrets == {"get"}, "Secrets: get only (no list or watch across the cluster)"
    assert all(rule.why.strip() for rule in RULES)


def test_binding_and_account_are_the_installed_ones() -> None:
    docs = {d["kind"]: d for d in load(CONFIG / "rbac" / "role_binding.yaml")}
    docs |= {d["kind"]: d for d in load(CONFIG / "rbac" / "service_account.yaml")}
    binding = docs["ClusterRoleBinding"]
    assert binding["roleRef"]["name"] == CLUSTER_ROLE
    (subject,) = binding["subjects"]
    assert subject["name"] == docs["ServiceAccount"]["metadata"]["name"]
    kustomization = yaml.safe_load((CONFIG / "rbac" / "kustomization.yaml").read_text())
    assert "role.yaml" in kustomization["resources"]


def test_security_page_lists_every_rule_and_its_reason() -> None:
    page = (ROOT / "docs" / "security.md").read_text()
    assert "## RBAC" in page
    assert rbac_table() in page, (
        "docs/security.md's RBAC table is stale: paste `modelfs.manifests.rbac_table()`"
    )


# ----------------------------------------------------------------------------- manager


def test_deployment_matches_the_image_and_the_cli() -> None:
    docs = {d["kind"]: d for d in load(CONFIG / "manager" / "manager.yaml")}
    pod = docs["Deployment"]["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    dockerfile = (ROOT / "Dockerfile").read_text()
    assert 'ENTRYPOINT ["modelfs", "run"]' in dockerfile
    # The entrypoint is `modelfs run`: the args are run's own options, which it must accept.
    from modelfs.cli import build_parser

    args = build_parser().parse_args(["run", *container["args"]])
    assert args.all_namespaces
    ports = {p["name"]: p["containerPort"] for p in container["ports"]}
    assert ports == {"health": args.health_port, "metrics": args.metrics_port}
    user = re.search(r"^USER (\d+):(\d+)$", dockerfile, re.M)
    assert user is not None and int(user.group(1)) != 0
    assert pod["securityContext"]["runAsUser"] == int(user.group(1))


# ----------------------------------------------------------------------------- Dockerfile


def tool(name: str) -> str:
    found = shutil.which(name) or shutil.which(name, path=os.path.dirname(sys.executable))
    if not found:
        pytest.fail(f"{name} not found: `make venv` installs it", pytrace=False)
    return found


def test_dockerfile_passes_hadolint() -> None:
    result = subprocess.run(
        [tool("hadolint"), "--failure-threshold", "info", str(ROOT / "Dockerfile")],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr


# ----------------------------------------------------------------------------- workflows


def workflows() -> list[Path]:
    found = sorted((ROOT / ".github" / "workflows").glob("*.yml"))
    assert found
    return found


def test_workflows_pass_actionlint() -> None:
    result = subprocess.run(
        [tools.actionlint(), "-color=false", *map(str, workflows())],
        capture_output=True,
        text=True,
        check=False,
        cwd=ROOT,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_every_workflow_step_is_a_make_target() -> None:
    """Each `run:` is `make <target>`: the commands the local tests and CI run too."""
    targets = set(re.findall(r"^([a-zA-Z0-9_-]+):", (ROOT / "Makefile").read_text(), re.M))
    for path in workflows():
        for job in yaml.safe_load(path.read_text())["jobs"].values():
            for step in job["steps"]:
                if "run" in step:
                    words = step["run"].split()
                    assert words[0] == "make" and words[1] in targets, (path.name, step["run"])
