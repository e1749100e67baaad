"""Install modelfs with its Helm chart, as users do, on a real API server: the chart's objects
pass a server-side dry run; the README's install scripts (Helm and kustomize) run as written,
with kubectl's default discovery cache and no pauses, and leave `kubectl get modelfs -A`
answering; the samples reach READY under the chart's ServiceAccount; `helm upgrade` with a
namespace list and another log format changes what runs; `helm uninstall` removes all but the
CRDs. `helm install` with a namespace list (watchNamespaces) from the start: the operator works
under Roles in the watched namespaces only, across them (a ModelReference of one reading a Model
of the other), and leaves an unwatched namespace alone.

Like e2e/test_install.py, this module starts a control plane of its own (uninstalling and
deleting config/default would take the session's CRDs away) and, with no kubelet, runs the
operator as a process with a token of the installed ServiceAccount and the arguments of the
installed Deployment. The README's Helm line names the chart on ghcr.io; here the chart is
packaged and pushed by `make chart-push` (what the release workflow runs) to a registry on
127.0.0.1, and the line runs with that registry's address and `--plain-http` in place of
ghcr.io: the one change made to it.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from e2e.helpers import readme_block
from e2e.kustomize import CONFIG, REPO, kubectl
from e2e.oci_registry import OciRegistry
from e2e.test_install import (
    LEADER,
    OPERATOR,
    OPERATOR_USER,
    SAMPLE_NAMESPACES,
    SYSTEM_NAMESPACE,
    Target,
    apply_dataset_crd,
    check_audit,
    condition,
    installed_identity,
    not_ready,
    sample_objects,
    target_engine,
)
from modelfs.cli import build_parser
from modelfs.manifests import rules
from modelfs.testing.operator import OperatorProcess
from modelfs.testing.pytest_plugin import running_control_plane
from tests import tools

pytestmark = pytest.mark.e2e

CHART = REPO / "charts" / "modelfs"
README_CHART = "oci://ghcr.io/samzong/charts/modelfs"
RELEASE = "modelfs"
NOT_READY_YET = 'the server doesn\'t have a resource type "modelfs"'


def readme_script(name: str) -> str:
    return readme_block("install-script", name)


@pytest.fixture(scope="module")
def target(request: pytest.FixtureRequest, kubectl: str) -> Iterator[Target]:
    if request.config.getoption("--k8s") != "local":
        pytest.skip("needs --k8s=local: it installs and uninstalls modelfs's CRDs")
    with running_control_plane(request.config, "the Helm tests' control plane") as cp:
        yield Target(cp.kubeconfig, kubectl, cp)


def shell(target: Target, script: str, home: Path) -> subprocess.CompletedProcess[str]:
    """`script` in bash (-e: stop at the first failure) from the repository root, as a user's
    shell: HOME is fresh, so kubectl's discovery cache and helm's config are the defaults
    under it; kubectl and helm are on PATH."""
    home.mkdir(parents=True, exist_ok=True)
    path = os.pathsep.join(
        [os.path.dirname(target.kubectl), os.path.dirname(tools.helm()), os.environ["PATH"]]
    )
    env = {"HOME": str(home), "PATH": path, "KUBECONFIG": str(target.kubeconfig)}
    return subprocess.run(
        ["bash", "-e", "-c", script],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


def helm(target: Target, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    home = Path(target.kubeconfig).parent / "helm-home"
    env = {
        **os.environ,
        "KUBECONFIG": str(target.kubeconfig),
        "HELM_CONFIG_HOME": str(home / "config"),
        "HELM_CACHE_HOME": str(home / "cache"),
        "HELM_DATA_HOME": str(home / "data"),
    }
    result = subprocess.run(
        [tools.helm(), *args], env=env, capture_output=True, text=True, timeout=300, check=False
    )
    if check and result.returncode != 0:
        raise AssertionError(f"helm {' '.join(args)}:\n{result.stdout}\n{result.stderr}")
    return result


def documents(text: str) -> list[dict[str, Any]]:
    return [d for d in yaml.safe_load_all(text) if d]


def key(doc: dict[str, Any]) -> tuple[str, str, str]:
    return (doc["kind"], doc["metadata"].get("namespace", ""), doc["metadata"]["name"])


def test_chart_objects_pass_a_server_side_dry_run(target: Target) -> None:
    """Every object the chart renders, with default values and with every option on (a
    namespace list, the NetworkPolicy), is accepted by the API server."""
    for ns in (SYSTEM_NAMESPACE, "team-a"):
        target.run("create", "namespace", ns)
    try:
        for args in [
            (),
            (
                "--set", "networkPolicy.enabled=true", "--set", "watchNamespaces={team-a}",
                "--set", "networkPolicy.catalog.ports={443,9000}",
                "--set-json", 'networkPolicy.catalog.to=[{"ipBlock": {"cidr": "10.9.0.0/16"}}]',
            ),
        ]:  # fmt: skip
            rendered = helm(
                target,
                "template",
                RELEASE,
                str(CHART),
                "-n",
                SYSTEM_NAMESPACE,
                "--include-crds",
                *args,
            ).stdout
            objects = documents(rendered)
            out = target.run("apply", "--dry-run=server", "-f", "-", stdin=rendered).stdout
            assert out.count("(server dry run)") == len(objects), out
            for kind, _, name in map(key, objects):
                assert f"/{name} " in out, f"{kind} {name} not in:\n{out}"
    finally:
        target.run("delete", "namespace", SYSTEM_NAMESPACE, "team-a", "--wait=true")


def test_readme_kustomize_script_runs_as_written(target: Target, tmp_path: Path) -> None:
    script = readme_script("kustomize")
    assert script.startswith("kubectl apply -k config/default\n")
    assert script.rstrip().endswith("kubectl get modelfs -A")
    # Without the README's discovery wait, a script fails: its kubectl cached discovery
    # before the CRDs existed.
    unwaited = "\n".join(line for line in script.splitlines() if "api-resources" not in line)
    failed = shell(target, unwaited, tmp_path / "home-unwaited")
    assert failed.returncode != 0 and NOT_READY_YET in failed.stderr, failed.stderr
    # As written, in a fresh shell:
    started = time.monotonic()
    done = shell(target, script, tmp_path / "home")
    seconds = time.monotonic() - started
    assert done.returncode == 0, done.stdout + done.stderr
    assert "No resources found" in done.stderr
    print(f"\nREADME kustomize script, as written: {seconds:.1f} s\n$ {script}{done.stderr}")
    target.run("delete", "-k", str(CONFIG / "default"), "--wait=true", "--timeout=180s")


@pytest.fixture(scope="module")
def registry() -> Iterator[OciRegistry]:
    with OciRegistry() as found:
        yield found


def readme_helm_script(registry: OciRegistry) -> str:
    """The README's Helm script with ghcr.io replaced by the local registry (plain HTTP)."""
    script = readme_script("helm")
    (line,) = [line for line in script.splitlines() if line.startswith("helm install ")]
    assert f" {README_CHART} " in line and "--namespace modelfs-system --create-namespace" in line
    local = line.replace("oci://ghcr.io/", f"oci://{registry.host}/") + " --plain-http"
    return script.replace(line, local)


def deployment_args(target: Target) -> list[str]:
    got = target.run("-n", SYSTEM_NAMESPACE, "get", "deployment", f"{OPERATOR}", "-o", "json")
    (container,) = json.loads(got.stdout)["spec"]["template"]["spec"]["containers"]
    return list(container["args"])


def operator_as_deployed(target: Target, identity: Path, log: Path) -> OperatorProcess:
    """The operator with the installed Deployment's arguments (ports aside: the process picks
    free ones) under the installed ServiceAccount's token."""
    args = build_parser().parse_args(["run", *deployment_args(target)])
    extra = ["-v"] if args.verbose else []
    if args.leader_elect:  # the Lease in the release namespace (the pod's, from the downward API)
        extra += [
            "--leader-elect",
            f"--leader-election-namespace={SYSTEM_NAMESPACE}",
            f"--leader-elect-lease-duration={args.leader_elect_lease_duration}",
            f"--leader-elect-renew-deadline={args.leader_elect_renew_deadline}",
            f"--leader-elect-retry-period={args.leader_elect_retry_period}",
        ]
    return OperatorProcess(
        identity,
        namespaces=args.namespace or (),
        log_format=args.log_format,
        extra_args=extra,
        log_path=log,
    )


def wait_samples_ready(target: Target, operator: OperatorProcess, within: float = 120) -> float:
    started = time.monotonic()
    waiting: list[str] = []
    while time.monotonic() - started < within:
        waiting = not_ready(sample_objects(target))
        if not waiting:
            return time.monotonic() - started
        time.sleep(0.5)
    pytest.fail("\n".join(waiting) + f"\noperator log:\n{operator.log_tail()}", pytrace=False)


def modelsync(target: Target, name: str) -> dict[str, Any]:
    got = target.run("-n", SAMPLE_NAMESPACES[0], "get", "modelsync", name, "-o", "json")
    return dict(json.loads(got.stdout))


def test_helm_install_samples_upgrade_uninstall(
    target: Target,
    registry: OciRegistry,
    tmp_path: Path,
    dataset_controller: str,
    request: pytest.FixtureRequest,
) -> None:
    # The release workflow's packaging, into the local registry.
    pushed = subprocess.run(
        ["make", "chart-push", f"CHART_REPO=oci://{registry.host}/samzong/charts",
         "HELM_PUSH_FLAGS=--plain-http"],
        cwd=REPO, capture_output=True, text=True, timeout=300, check=False,
        env={**os.environ, "HELM_CONFIG_HOME": str(tmp_path / "helm-push")},
    )  # fmt: skip
    assert pushed.returncode == 0, pushed.stdout + pushed.stderr
    assert list(registry.tags["samzong/charts/modelfs"]) == ["0.1.0"]

    # The README's Helm script, in a fresh shell.
    script = readme_helm_script(registry)
    started = time.monotonic()
    done = shell(target, script, tmp_path / "home")
    install_seconds = time.monotonic() - started
    assert done.returncode == 0, done.stdout + done.stderr
    assert "No resources found" in done.stderr
    print(f"\nREADME Helm script ({install_seconds:.1f} s):\n$ {script}{done.stdout}{done.stderr}")

    manifest = helm(target, "get", "manifest", RELEASE, "-n", SYSTEM_NAMESPACE).stdout
    installed = {key(d) for d in documents(manifest)}
    assert {k[0] for k in installed} == {
        "ServiceAccount", "ClusterRole", "ClusterRoleBinding", "Service", "Deployment",
        "Role", "RoleBinding", "PodDisruptionBudget",  # leader election, two replicas
    }  # fmt: skip
    for kind, ns, name in installed:
        target.run("get", kind, name, *(["-n", ns] if ns else []))
    assert "--all-namespaces" in deployment_args(target)

    # The samples, READY, with the operator under the chart's ServiceAccount.
    apply_dataset_crd(target, dataset_controller)
    identity = asyncio.run(installed_identity(target.kubeconfig, tmp_path / "operator.kubeconfig"))
    who = kubectl(target.kubectl, identity, "auth", "whoami", "-o", "json").stdout
    assert json.loads(who)["status"]["userInfo"]["username"] == OPERATOR_USER
    with target_engine(target, dataset_controller, request, tmp_path / "dataset-engine"):
        with operator_as_deployed(target, identity, tmp_path / "operator.log") as operator:
            assert operator.log_text().lstrip().startswith("{"), "logFormat json by default"
            target.run("apply", "-k", str(CONFIG / "samples"))
            ready_seconds = wait_samples_ready(target, operator)

        # helm upgrade: only the samples' namespaces, text logs.
        watched = ",".join(SAMPLE_NAMESPACES)
        helm(
            target, "upgrade", RELEASE, f"oci://{registry.host}/samzong/charts/modelfs",
            "--version", "0.1.0", "--plain-http", "-n", SYSTEM_NAMESPACE, "--reuse-values",
            "--set", f"watchNamespaces={{{watched}}}", "--set", "logFormat=text",
        )  # fmt: skip
        args = deployment_args(target)
        assert [a for a in args if a.startswith("--namespace=")] == [
            f"--namespace={ns}" for ns in SAMPLE_NAMESPACES
        ]
        assert "--all-namespaces" not in args and "--log-format=text" in args
        role = json.loads(target.run("get", "clusterrole", OPERATOR, "-o", "json").stdout)
        assert role["rules"] == rules("cluster")
        for ns in SAMPLE_NAMESPACES:
            got = target.run("-n", ns, "get", "role", OPERATOR, "-o", "json").stdout
            assert json.loads(got)["rules"] == rules("namespaced")
        # A namespace off the list: the operator neither may nor does touch it.
        target.run("create", "namespace", "not-watched")
        denied = kubectl(
            target.kubectl, identity, "-n", "not-watched", "get", "modelsyncs", check=False
        )
        assert denied.returncode != 0 and "forbidden" in denied.stderr, denied.stderr
        target.run(
            "apply", "-f", "-",
            stdin=json.dumps({
                "apiVersion": "model.samzong.dev/v1", "kind": "ModelSource",
                "metadata": {"name": "ignored", "namespace": "not-watched"},
                "spec": {"type": "PVC"},
            }),
        )  # fmt: skip

        # The operator as the upgraded Deployment runs it.
        with operator_as_deployed(target, identity, tmp_path / "operator-upgraded.log") as operator:
            assert operator.namespaces == SAMPLE_NAMESPACES and operator.log_format == "text"
            sync = modelsync(target, "qwen2-5-instruct-0.5b")
            trigger = int(sync["spec"].get("syncRound") or 1) + 1
            target.run(
                "-n", SAMPLE_NAMESPACES[0], "patch", "modelsync", "qwen2-5-instruct-0.5b",
                "--type=merge", "-p", json.dumps({"spec": {"syncRound": trigger}}),
            )  # fmt: skip
            deadline = time.monotonic() + 90
            status: dict[str, Any] = {}
            while time.monotonic() < deadline:
                status = modelsync(target, "qwen2-5-instruct-0.5b").get("status") or {}
                if status.get("observedSyncRound") == trigger and status.get("phase") == "READY":
                    break
                time.sleep(0.5)
            else:
                pytest.fail(f"no new round after the upgrade: {status}\n{operator.log_tail()}")
            wait_samples_ready(target, operator, within=60)
            text = operator.log_text()
            assert text and not text.lstrip().startswith("{"), "logFormat text after the upgrade"
            ignored = target.run("-n", "not-watched", "get", "modelsource", "ignored", "-o", "json")
            assert not json.loads(ignored.stdout).get("status"), "an unwatched namespace"
            # Deleted while the operator and the Dataset controller run (finalizers).
            target.run("delete", "-k", str(CONFIG / "samples"), "--wait=true", "--timeout=120s")
            assert f'forbidden: User "{OPERATOR_USER}"' not in text, operator.log_tail()

    # helm uninstall: everything but the CRDs.
    manifest = helm(target, "get", "manifest", RELEASE, "-n", SYSTEM_NAMESPACE).stdout
    installed = {key(d) for d in documents(manifest)}
    assert ("Role", SAMPLE_NAMESPACES[0], OPERATOR) in installed
    helm(target, "uninstall", RELEASE, "-n", SYSTEM_NAMESPACE, "--wait")
    for kind, ns, name in sorted(installed):
        left = target.run("get", kind, name, *(["-n", ns] if ns else []), check=False)
        assert left.returncode != 0 and "NotFound" in left.stderr, f"{kind} {ns}/{name} is left"
    crds = target.run("get", "crd", "-l", "app.kubernetes.io/part-of=modelfs", "-o", "name").stdout
    assert len(crds.split()) == 4, crds
    # The CRDs, and the objects in them, outlive the release.
    left = target.run("get", "modelfs", "-A", "-o", "name").stdout
    assert left.split() == ["modelsource.model.samzong.dev/ignored"], left
    assert target.control_plane is not None
    check_audit(target.control_plane)
    print(
        f"\nhelm: README install {install_seconds:.1f} s, samples READY {ready_seconds:.1f} s "
        f"after apply; registry requests: {len(registry.requests)}"
    )


# ----------------------------------------------------------------------------- watchNamespaces

WATCHED = ("rbac-a", "rbac-b")
UNWATCHED = "rbac-c"
CONSUMER = {"model.samzong.dev/consumer": "true"}


def tenant_objects(namespace: str, reference_to: str) -> list[dict[str, Any]]:
    """A Secret, an S3 ModelSource reading it, a Model shared with consumer namespaces, its
    ModelSync, and a ModelReference to the Model `m` of namespace `reference_to`."""
    meta = {"namespace": namespace}
    group = "model.samzong.dev/v1"
    return [
        {
            "apiVersion": "v1", "kind": "Secret", "metadata": {"name": "creds", **meta},
            "stringData": {"access-key": "FAKE", "secret-key": "FAKE-SECRET"},
        },
        {
            "apiVersion": group, "kind": "ModelSource", "metadata": {"name": "minio", **meta},
            "spec": {
                "type": "S3", "secretRef": "creds",
                "config": {"provider": "MINIO", "endpoint": "http://minio.example:9000"},
            },
        },
        {
            "apiVersion": group, "kind": "Model", "metadata": {"name": "m", **meta},
            "spec": {
                "sourceRef": "minio", "versionConfigs": {"v1": {"repo": "models/m"}},
                "share": {"namespaceSelector": {"matchLabels": CONSUMER}},
            },
        },
        {
            "apiVersion": group, "kind": "ModelSync", "metadata": {"name": "m-v1", **meta},
            "spec": {"modelRef": "m", "version": "v1"},
        },
        {
            "apiVersion": group, "kind": "ModelReference", "metadata": {"name": "ref", **meta},
            "spec": {"modelRef": {"namespace": reference_to, "name": "m"}, "version": "v1"},
        },
    ]  # fmt: skip


def get_json(target: Target, namespace: str, *what: str) -> dict[str, Any]:
    return dict(json.loads(target.run("-n", namespace, "get", *what, "-o", "json").stdout))


def test_helm_install_watching_a_namespace_list(
    target: Target, tmp_path: Path, dataset_controller: str, request: pytest.FixtureRequest
) -> None:
    a, b = WATCHED
    for ns in (*WATCHED, UNWATCHED):
        target.run("create", "namespace", ns)
    # b and c may read a's Model (its share selector matches them); c is not watched.
    target.run("label", "namespace", b, UNWATCHED, "model.samzong.dev/consumer=true")
    helm(
        target, "install", RELEASE, str(CHART), "-n", SYSTEM_NAMESPACE, "--create-namespace",
        "--set", f"watchNamespaces={{{a},{b}}}",
    )  # fmt: skip
    manifest = documents(helm(target, "get", "manifest", RELEASE, "-n", SYSTEM_NAMESPACE).stdout)
    rbac = {key(d): d for d in manifest if "Role" in d["kind"]}
    assert set(rbac) == {
        ("ClusterRole", "", OPERATOR), ("ClusterRoleBinding", "", OPERATOR),
        ("Role", a, OPERATOR), ("RoleBinding", a, OPERATOR),
        ("Role", b, OPERATOR), ("RoleBinding", b, OPERATOR),
        ("Role", SYSTEM_NAMESPACE, LEADER), ("RoleBinding", SYSTEM_NAMESPACE, LEADER),
    }  # fmt: skip
    assert rbac[("ClusterRole", "", OPERATOR)]["rules"] == rules("cluster")
    assert deployment_args(target)[:2] == [f"--namespace={a}", f"--namespace={b}"]

    apply_dataset_crd(target, dataset_controller)
    identity = asyncio.run(installed_identity(target.kubeconfig, tmp_path / "operator.kubeconfig"))
    # What the installed identity may do, as `kubectl auth can-i` says to the account itself.
    for ns, answer in ((a, "yes"), (b, "yes"), (UNWATCHED, "no")):
        for verb, what in (("get", "secrets"), ("create", "datasets.dataset.baizeai.io")):
            can = kubectl(
                target.kubectl, identity, "auth", "can-i", verb, what, "-n", ns, check=False
            )
            assert can.stdout.strip() == answer, (verb, what, ns, can.stdout, can.stderr)
    since = time.time()
    with (
        target_engine(target, dataset_controller, request, tmp_path / "dataset-engine"),
        operator_as_deployed(target, identity, tmp_path / "operator.log") as operator,
    ):
        assert operator.namespaces == WATCHED
        objects = (
            tenant_objects(a, reference_to=UNWATCHED)  # a reads c's Model: c is not watched
            + tenant_objects(b, reference_to=a)  # b reads a's Model: both watched
            + tenant_objects(UNWATCHED, reference_to=a)  # c is not watched
        )
        target.run("apply", "-f", "-", stdin=json.dumps({"apiVersion": "v1", "kind": "List",
                                                         "items": objects}))  # fmt: skip
        deadline = time.monotonic() + 120
        waiting: list[str] = ["nothing checked yet"]
        while waiting and time.monotonic() < deadline:
            time.sleep(0.5)
            waiting = []
            for ns in WATCHED:
                source = get_json(target, ns, "modelsource", "minio")
                if condition(source, "Ready").get("status") != "True":
                    waiting.append(f"ModelSource {ns}/minio: {condition(source, 'Ready')}")
                phase = (get_json(target, ns, "modelsync", "m-v1").get("status") or {}).get("phase")
                if phase != "READY":
                    waiting.append(f"ModelSync {ns}/m-v1: {phase}")
            ref = get_json(target, b, "modelreference", "ref")
            if (ref.get("status") or {}).get("phase") != "READY":
                waiting.append(f"ModelReference {b}/ref: {ref.get('status')}")
            lost = get_json(target, a, "modelreference", "ref")
            if condition(lost, "Allowed").get("reason") != "ModelNotFound":
                waiting.append(f"ModelReference {a}/ref: {lost.get('status')}")
        assert not waiting, "\n".join(waiting) + f"\noperator log:\n{operator.log_tail()}"

        # b's reference: a REFERENCE Dataset in b (the consumer namespace, watched) reading a's.
        ref = get_json(target, b, "modelreference", "ref")
        dataset = get_json(target, b, "dataset", ref["status"]["datasetName"])
        assert dataset["spec"]["source"]["type"] == "REFERENCE"
        assert dataset["spec"]["source"]["uri"].startswith(f"dataset://{a}/")
        # a's reference to a Model of c, which the operator can't see: "does not exist", and
        # nothing made for it.
        lost = get_json(target, a, "modelreference", "ref")
        assert condition(lost, "Allowed")["status"] == "False", lost["status"]
        assert f"Model {UNWATCHED}/m does not exist" in condition(lost, "Allowed")["message"]
        assert not lost["status"].get("datasetName")
        datasets_in_a = get_json(target, a, "datasets")["items"]
        assert len(datasets_in_a) == 1, [d["metadata"]["name"] for d in datasets_in_a]
        # c is not watched: no status (a ModelSync's is the CRD's default, PENDING), no
        # Dataset, no Event from the operator.
        for kind, name, default in (
            ("modelsource", "minio", None),
            ("modelsync", "m-v1", {"phase": "PENDING"}),
            ("modelreference", "ref", None),
        ):
            found = get_json(target, UNWATCHED, kind, name).get("status")
            assert found == default, f"{kind} {name}: {found}"
        assert get_json(target, UNWATCHED, "datasets")["items"] == []
        events = get_json(target, UNWATCHED, "events")["items"]
        about_ours = [
            e for e in events
            if e["involvedObject"].get("apiVersion", "").startswith("model.samzong.dev/")
        ]  # fmt: skip
        assert not about_ours, about_ours

        # Deleted while the operator and the Dataset controller run (the consumer first).
        for ns in (b, a):
            target.run(
                "-n", ns, "delete", "modelreferences,modelsyncs,models,modelsources", "--all",
                "--wait=true", "--timeout=120s",
            )  # fmt: skip
        # Their Datasets go by garbage collection, then the Dataset controller's finalizer.
        deadline = time.monotonic() + 90
        left: list[dict[str, Any]] = []
        while time.monotonic() < deadline:
            left = [d for ns in WATCHED for d in get_json(target, ns, "datasets")["items"]]
            if not left:
                break
            time.sleep(0.5)
        assert not left, [d["metadata"]["name"] for d in left]
        assert operator.alive(), operator.log_tail()
        text = operator.log_text()
    refused = [
        line for line in text.splitlines()
        if "forbidden" in line.lower() or "not enough permissions" in line.lower()
    ]  # fmt: skip
    assert not refused, "\n".join(refused)
    assert target.control_plane is not None
    check_audit(target.control_plane, watched=WATCHED, since=since)
    helm(target, "uninstall", RELEASE, "-n", SYSTEM_NAMESPACE, "--wait")
    target.run("delete", "namespace", *WATCHED, UNWATCHED, "--wait=true", "--timeout=120s")
