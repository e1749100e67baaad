"""Install modelfs as its users do: `kubectl apply -k config/default` on a real API server, the
operator running under the identity that install creates, the samples reaching Ready, and
`kubectl delete -k config/default` taking everything away again.

With `--k8s=local` (the default) this module starts a control plane of its own, because deleting
config/default deletes the modelfs CRDs (and so every modelfs object) that the rest of the session
relies on; its audit log also shows every request the operator made. With `--k8s=kind` or
`existing` it uses the session's cluster: run it in a pytest session of its own there
(`make test-kind` does). There is no kubelet on the local control plane, so the Deployment is
accepted but runs no pod; the operator runs as a process with a token of the installed
ServiceAccount instead (on kind, with $MODELFS_OPERATOR_IMAGE, the Deployment runs too). The
Dataset controller is the one `--dataset-controller` chooses (the real one by default, its pod
simulator running the loader Jobs on the local control plane).
"""

from __future__ import annotations

import asyncio
import json
import os
import time
from collections.abc import Collection, Iterator
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

from e2e.kustomize import CONFIG, build, kubectl
from modelfs.controllers.rbac import LEADER_ELECTION_RULES, RULES
from modelfs.testing.controlplane import ControlPlane
from modelfs.testing.dataset_engine import DatasetEngine, DatasetEngineError
from modelfs.testing.fake_dataset.process import FakeDatasetController
from modelfs.testing.operator import OperatorProcess
from modelfs.testing.pytest_plugin import (
    Cluster,
    dataset_crd_file,
    new_api_client,
    running_control_plane,
    running_dataset_engine,
    service_account_kubeconfig,
)

pytestmark = pytest.mark.e2e

SYSTEM_NAMESPACE = "modelfs-system"
OPERATOR = "modelfs-operator"
OPERATOR_USER = f"system:serviceaccount:{SYSTEM_NAMESPACE}:{OPERATOR}"
LEADER = "modelfs-leader-election"
"""The leader election Role and RoleBinding, in the operator's namespace."""
SAMPLE_NAMESPACES = ("modelfs-samples", "modelfs-samples-team")
IMAGE_ENV = "MODELFS_OPERATOR_IMAGE"


@dataclass
class Target:
    kubeconfig: Path
    kubectl: str
    control_plane: ControlPlane | None
    kind_cluster: Any = None
    notes: dict[str, float] = field(default_factory=dict)

    def run(self, *args: str, stdin: str | None = None, check: bool = True) -> Any:
        return kubectl(self.kubectl, self.kubeconfig, *args, stdin=stdin, check=check)


@pytest.fixture(scope="module")
def target(request: pytest.FixtureRequest, kubectl: str) -> Iterator[Target]:
    mode = request.config.getoption("--k8s")
    if mode != "local":
        kind = request.getfixturevalue("kind_cluster") if mode == "kind" else None
        yield Target(request.getfixturevalue("k8s_kubeconfig"), kubectl, None, kind)
        return
    with running_control_plane(request.config, "the install tests' control plane") as cp:
        yield Target(cp.kubeconfig, kubectl, cp)


def apply_dataset_crd(target: Target, dataset_controller: str) -> None:
    """BaizeAI/dataset's CRD, applied with kubectl and Established: its module's for the real
    controller, the test CRD for the fake."""
    try:
        crd = str(dataset_crd_file(dataset_controller))
    except DatasetEngineError as error:
        pytest.fail(f"--dataset-controller={dataset_controller}: {error}", pytrace=False)
    target.run("apply", "--server-side", "-f", crd)
    target.run("wait", "--for=condition=Established", "--timeout=60s", "-f", crd)


def target_engine(
    target: Target, dataset_controller: str, request: pytest.FixtureRequest, log_dir: Path
) -> AbstractContextManager[DatasetEngine | FakeDatasetController]:
    """The Dataset controller of `--dataset-controller` on `target`, for a `with` block."""
    cluster = Cluster(request.config.getoption("--k8s"), target.kubeconfig, target.control_plane)
    return running_dataset_engine(dataset_controller, cluster, log_dir)


def default_objects(target: Target) -> list[tuple[str, str, str]]:
    """(kind, namespace, name) of every object config/default creates."""
    return [
        (d["kind"], d["metadata"].get("namespace", ""), d["metadata"]["name"])
        for d in build(target.kubectl, CONFIG / "default")
    ]


def test_server_dry_run_accepts_config_default(target: Target) -> None:
    default = str(CONFIG / "default")
    objects = default_objects(target)
    namespaced = [o for o in objects if o[1]]
    # On a fresh cluster a dry run creates no namespace, so what goes into it is NotFound: the
    # only errors allowed are those.
    fresh = target.run("apply", "-k", default, "--dry-run=server", check=False)
    errors = [line for line in fresh.stderr.splitlines() if line.strip()]
    assert len(errors) == len(namespaced), fresh.stderr
    assert all(f'namespaces "{SYSTEM_NAMESPACE}" not found' in e for e in errors), fresh.stderr
    # With the namespace there, the server accepts every object of config/default.
    (namespace,) = [d for d in build(target.kubectl, default) if d["kind"] == "Namespace"]
    target.run("apply", "-f", "-", stdin=json.dumps(namespace))
    out = target.run("apply", "-k", default, "--dry-run=server").stdout
    for kind, _, name in objects:
        assert f"/{name} " in out, f"{kind} {name} not in:\n{out}"
    assert out.count("(server dry run)") == len(objects), out


@pytest.fixture(scope="module")
def installed(target: Target) -> Target:
    started = time.monotonic()
    target.run("apply", "-k", str(CONFIG / "default"))
    target.run(
        "wait", "--for=condition=Established", "--timeout=60s", "crd", "-l",
        "app.kubernetes.io/name=modelfs",
    )  # fmt: skip
    target.notes["install_seconds"] = time.monotonic() - started
    return target


def test_apply_creates_every_object(installed: Target, tmp_path: Path) -> None:
    listed = installed.run("get", "-k", str(CONFIG / "default"), "-o", "json").stdout
    items = json.loads(listed)["items"]
    found = {(i["kind"], i["metadata"].get("namespace", ""), i["metadata"]["name"]) for i in items}
    assert found == set(default_objects(installed))
    deployment = next(i for i in items if i["kind"] == "Deployment")
    pod = deployment["spec"]["template"]["spec"]
    assert pod["serviceAccountName"] == OPERATOR
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    (container,) = pod["containers"]
    security = container["securityContext"]
    assert security["readOnlyRootFilesystem"] is True
    assert security["allowPrivilegeEscalation"] is False
    assert security["capabilities"]["drop"] == ["ALL"]
    assert container["resources"]["requests"] and container["resources"]["limits"]
    assert container["livenessProbe"]["httpGet"]["path"] == "/healthz"
    assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert "--all-namespaces" in container["args"]
    role = next(i for i in items if i["kind"] == "ClusterRole")
    assert role["metadata"]["name"] == OPERATOR
    # A fresh discovery cache, as a new shell would have: kubectl does not refresh a cached
    # discovery to resolve a category, so one cached before the CRDs existed does not know it.
    got = installed.run("get", "modelfs", "-A", f"--cache-dir={tmp_path}")
    assert "No resources found" in got.stderr  # the category resolves to the four kinds


def test_deployment_runs_from_the_image_on_kind(installed: Target) -> None:
    image = os.environ.get(IMAGE_ENV)
    if installed.kind_cluster is None or not image:
        pytest.skip(f"needs --k8s=kind and ${IMAGE_ENV} (no kubelet on the local control plane)")
    installed.kind_cluster.load_docker_image(image)
    installed.run(
        "-n", SYSTEM_NAMESPACE, "set", "image", f"deployment/{OPERATOR}", f"operator={image}"
    )
    installed.run(
        "-n", SYSTEM_NAMESPACE, "rollout", "status", f"deployment/{OPERATOR}", "--timeout=180s"
    )
    # Two replicas, one leader: the Lease names one of the Deployment's pods (README).
    holder, pods = "", [""]
    for _ in range(60):
        holder = installed.run(
            "-n", SYSTEM_NAMESPACE, "get", "lease", OPERATOR, "-o",
            "jsonpath={.spec.holderIdentity}", check=False,
        ).stdout.strip()  # fmt: skip
        pods = installed.run(
            "-n", SYSTEM_NAMESPACE, "get", "pods", "-l", "app.kubernetes.io/component=operator",
            "-o", "jsonpath={.items[*].metadata.name}",
        ).stdout.split()  # fmt: skip
        if len(pods) == 2 and holder.rsplit("_", 1)[0] in pods:
            break
        time.sleep(1)
    assert len(pods) == 2 and holder.rsplit("_", 1)[0] in pods, (holder, pods)
    # The in-cluster operator would race the process of the next test: scale it down again.
    installed.run("-n", SYSTEM_NAMESPACE, "scale", f"deployment/{OPERATOR}", "--replicas=0")


def condition(body: dict[str, Any], kind: str) -> dict[str, Any]:
    for found in (body.get("status") or {}).get("conditions", []):
        if found["type"] == kind:
            return dict(found)
    return {}


def sample_objects(target: Target) -> list[dict[str, Any]]:
    got = target.run("get", "-k", str(CONFIG / "samples"), "-o", "json").stdout
    return list(json.loads(got)["items"])


def not_ready(items: list[dict[str, Any]]) -> list[str]:
    waiting = []
    for item in items:
        kind, name = (
            item["kind"],
            f"{item['metadata'].get('namespace', '')}/{item['metadata']['name']}",
        )
        if kind in ("ModelSource", "Model"):
            if condition(item, "Ready").get("status") != "True":
                waiting.append(f"{kind} {name}: {condition(item, 'Ready')}")
            # A Model lists its versions' phases, at most once a second: settled when it says
            # READY for every version that has a ModelSync, as its ModelSyncs do.
            rows = (item.get("status") or {}).get("versions") or []
            behind = [r["name"] for r in rows if r.get("sync") and r.get("phase") != "READY"]
            if kind == "Model" and behind:
                waiting.append(f"{kind} {name}: versions {behind} not READY in its status")
        elif (
            kind in ("ModelSync", "ModelReference")
            and (item.get("status") or {}).get("phase") != "READY"
        ):
            waiting.append(f"{kind} {name}: {(item.get('status') or {}).get('phase')}")
    return waiting


IDLE_SECONDS = 60
WRITE_VERBS = {"create", "update", "patch", "delete", "deletecollection"}


def source_type_of(items: list[dict[str, Any]]) -> dict[tuple[str, str], str]:
    """(namespace, name) of each sample object, and of each Dataset modelfs made for one, to the
    source type it belongs to (ModelReferences and their Datasets: "ModelReference")."""

    def key(item: dict[str, Any]) -> tuple[str, str]:
        return (item["metadata"].get("namespace", ""), item["metadata"]["name"])

    source_type = {key(i): i["spec"]["type"] for i in items if i["kind"] == "ModelSource"}
    types: dict[tuple[str, str], str] = dict(source_type)
    model_type = {}
    for item in (i for i in items if i["kind"] == "Model"):
        model_type[key(item)] = types[key(item)] = source_type[
            (key(item)[0], item["spec"]["sourceRef"])
        ]
    for item in items:
        status = item.get("status") or {}
        if item["kind"] == "ModelSync":
            found = model_type[(key(item)[0], item["spec"]["modelRef"])]
        elif item["kind"] == "ModelReference":
            found = "ModelReference"
        else:
            continue
        types[key(item)] = found
        if status.get("datasetName"):
            types[(key(item)[0], status["datasetName"])] = found
    return types


def operator_writes(
    control_plane: ControlPlane, since: float, until: float
) -> list[dict[str, Any]]:
    """The operator's write requests received between two `time.time()` stamps (audit log)."""
    found = []
    for event in control_plane.audit_events():
        received = event.get("requestReceivedTimestamp", "").replace("Z", "+00:00")
        if (
            event.get("stage") == "ResponseComplete"
            and event.get("user", {}).get("username") == OPERATOR_USER
            and event.get("verb") in WRITE_VERBS
            and since <= datetime.fromisoformat(received).timestamp() <= until
        ):
            found.append(event)
    return found


def check_idle(target: Target) -> None:
    """Once every sample is READY, the operator writes nothing for IDLE_SECONDS (longer than its
    30 s resync, two Secret re-checks' worth, and many 5 s polls of the Dataset controller, whose
    status writes it watches). Prints the writes per source type."""
    assert target.control_plane is not None
    types = source_type_of(sample_objects(target))
    since = time.time()
    time.sleep(IDLE_SECONDS)
    found = operator_writes(target.control_plane, since, time.time())
    # the leader renews its Lease every retry period (2 s): the cost of election, not of work
    renewals = [e for e in found if (e.get("objectRef") or {}).get("resource") == "leases"]
    writes = [e for e in found if e not in renewals]
    print(f"\nLease renewals in the {IDLE_SECONDS} s: {len(renewals)}")
    per_type = dict.fromkeys(sorted(set(types.values())), 0)
    for event in writes:
        ref = event.get("objectRef") or {}
        what = types.get((ref.get("namespace", ""), ref.get("name", "")), "other")
        per_type[what] = per_type.get(what, 0) + 1
    print(f"\noperator writes in the {IDLE_SECONDS} s after every sample was READY: {per_type}")
    target.notes["idle_writes"] = len(writes)
    assert writes == [], [f"{e['verb']} {e['requestURI']}" for e in writes]


async def installed_identity(kubeconfig: Path, path: Path) -> Path:
    """A TokenRequest kubeconfig of the ServiceAccount that config/default created."""
    api = await new_api_client(kubeconfig)
    try:
        return await service_account_kubeconfig(api, SYSTEM_NAMESPACE, OPERATOR, path, create=False)
    finally:
        await api.close()  # type: ignore[no-untyped-call]


def test_samples_reach_ready_under_the_installed_identity(
    installed: Target, tmp_path: Path, dataset_controller: str, request: pytest.FixtureRequest
) -> None:
    target = installed
    apply_dataset_crd(target, dataset_controller)
    identity = asyncio.run(installed_identity(target.kubeconfig, tmp_path / "operator.kubeconfig"))
    # elected, as installed: the leader election Role is used, and audited, too
    election = ["--leader-elect", f"--leader-election-namespace={SYSTEM_NAMESPACE}"]
    operator = OperatorProcess(identity, log_path=tmp_path / "operator.log", extra_args=election)
    with target_engine(target, dataset_controller, request, tmp_path / "dataset-engine"), operator:
        who = kubectl(target.kubectl, identity, "auth", "whoami", "-o", "json").stdout
        assert json.loads(who)["status"]["userInfo"]["username"] == OPERATOR_USER

        samples = build(target.kubectl, CONFIG / "samples")
        namespaces = [d for d in samples if d["kind"] == "Namespace"]
        target.run(
            "apply",
            "-f",
            "-",
            stdin=json.dumps({"kind": "List", "apiVersion": "v1", "items": namespaces}),
        )
        out = target.run("apply", "-k", str(CONFIG / "samples"), "--dry-run=server").stdout
        assert out.count("(server dry run)") == len(samples), out
        assert "modelreference.model.samzong.dev/qwen2-5-instruct" in out
        # Fixed namespaces: kubectl refuses to put them elsewhere (docs/development.md, "Samples").
        moved = target.run("apply", "-k", str(CONFIG / "samples"), "-n", "default", check=False)
        assert moved.returncode != 0 and "does not match" in moved.stderr, moved.stderr
        started = time.monotonic()
        target.run("apply", "-k", str(CONFIG / "samples"))
        waiting: list[str] = []
        while time.monotonic() - started < 120:
            waiting = not_ready(sample_objects(target))
            if not waiting:
                break
            time.sleep(0.5)
        assert not waiting, "\n".join(waiting) + f"\noperator log:\n{operator.log_tail()}"
        target.notes["samples_ready_seconds"] = time.monotonic() - started
        kinds = {i["kind"] for i in sample_objects(target)}
        assert {"ModelSource", "Model", "ModelSync", "ModelReference", "Secret"} <= kinds
        if target.control_plane is not None:  # the audit log says what the operator wrote
            check_idle(target)

        table = target.run("get", "modelfs", "-A", f"--cache-dir={tmp_path}/cache").stdout
        for column in ("TYPE", "READY", "REASON", "MODELS", "SOURCE", "PHASE", "DATASET"):
            assert column in table, table
        for ns in SAMPLE_NAMESPACES:
            assert ns in table

        # Deleted while the operator and the Dataset controller run (they hold finalizers).
        target.run("delete", "-k", str(CONFIG / "samples"), "--wait=true", "--timeout=120s")
        assert operator.alive(), operator.log_tail()
    # RBAC denials only (a 403 for a namespace being terminated is no RBAC matter).
    assert f'forbidden: User "{OPERATOR_USER}"' not in operator.log_text(), operator.log_tail()
    if target.control_plane is not None:
        check_audit(target.control_plane)


def covered(
    group: str, resource: str, verb: str, scope: str | None = None, rules: Any = RULES
) -> bool:
    return any(
        group == rule.group
        and resource in rule.resources
        and verb in rule.verbs
        and scope in (None, rule.scope)
        for rule in rules
    )


def leader_election(group: str, resource: str, verb: str, namespace: str) -> bool:
    """A request of leader election: in the operator's own namespace, by the Role there."""
    return namespace == SYSTEM_NAMESPACE and covered(
        group, resource, verb, rules=LEADER_ELECTION_RULES
    )


def check_audit(
    control_plane: ControlPlane, watched: Collection[str] = (), since: float = 0.0
) -> None:
    """Every request of the operator (received after `since`, a `time.time()` stamp) was allowed,
    and each is covered by controllers/rbac.py, in its scope: a request in a namespace by a
    `namespaced` rule, a request outside any by a `cluster` rule. With `watched` (the operator
    ran with `--namespace` for each), every namespaced request was in one of them: a Role per
    watched namespace is enough. Without, a `namespaced` rule may also list and watch across
    all namespaces (kopf's cluster-wide watches under `-A`)."""
    used: set[tuple[str, str, str, str]] = set()
    for event in control_plane.audit_events():
        if event.get("stage") != "ResponseComplete":
            continue
        if event.get("user", {}).get("username") != OPERATOR_USER:
            continue
        if event.get("userAgent", "").startswith("kubectl"):
            continue  # this test's own `kubectl auth whoami` with the operator's kubeconfig
        received = event.get("requestReceivedTimestamp", "").replace("Z", "+00:00")
        if datetime.fromisoformat(received).timestamp() < since:
            continue
        decision = event.get("annotations", {}).get("authorization.k8s.io/decision")
        assert decision != "forbid", f"RBAC forbade {event['verb']} {event['requestURI']}"
        ref = event.get("objectRef")
        if not ref:
            continue  # discovery (/apis, /version): allowed to every authenticated user
        resource = ref["resource"] + (f"/{ref['subresource']}" if ref.get("subresource") else "")
        used.add((ref.get("apiGroup", ""), resource, event["verb"], ref.get("namespace", "")))
    assert used, "the audit log shows no request of the operator"
    uncovered = sorted(u for u in used if not covered(*u[:3]) and not leader_election(*u))
    assert not uncovered, f"requests not declared in controllers/rbac.py: {uncovered}"
    # A cluster rule's resource is cluster-scoped: any request on it is in scope (the audit
    # log gives a Namespace's own name as its namespace).
    out_of_scope = sorted(
        (group, resource, verb, namespace)
        for group, resource, verb, namespace in used
        if not (
            leader_election(group, resource, verb, namespace)
            or covered(group, resource, verb, "cluster")
            or (namespace and covered(group, resource, verb, "namespaced"))
            or (not watched and verb in ("list", "watch") and covered(group, resource, verb))
        )
    )
    assert not out_of_scope, f"requests outside their rule's scope: {out_of_scope}"
    if watched:
        outside = sorted(u for u in used if covered(*u[:3], "namespaced") and u[3] not in watched)
        assert not outside, f"requests outside the watched namespaces {watched}: {outside}"
    print(f"\noperator requests (group, resource, verb, namespace): {sorted(used)}")


def test_delete_removes_everything(installed: Target) -> None:
    target = installed
    started = time.monotonic()
    target.run("delete", "-k", str(CONFIG / "default"), "--wait=true", "--timeout=180s")
    left = target.run("get", "-k", str(CONFIG / "default"), "--ignore-not-found", "-o", "name")
    assert left.stdout.strip() == ""
    assert target.run("get", "namespace", SYSTEM_NAMESPACE, check=False).returncode != 0
    rbac = target.run("get", "clusterrole,clusterrolebinding", "-o", "name").stdout
    assert OPERATOR not in rbac
    crds = target.run("get", "crd", "-o", "name").stdout
    assert "model.samzong.dev" not in crds
    target.notes["delete_seconds"] = time.monotonic() - started
    print(f"\ninstall timings: {target.notes}")
