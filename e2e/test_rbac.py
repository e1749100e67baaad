"""RBAC on a real API server: a ServiceAccount kubeconfig gets what its Role grants and nothing
else; the scope of each rule of controllers/rbac.py is the scope of its resource; and the chart's
RBAC, applied, lets the operator's ServiceAccount do what controllers/rbac.py declares where it
declares it (with watchNamespaces: in those namespaces only; cluster-wide: only namespaces and
CRDs), and nothing else, by the API server's own verdicts (SubjectAccessReview) and by real
requests under the account's token."""

from __future__ import annotations

import asyncio
import subprocess
import time
import uuid
from collections.abc import AsyncIterator, Callable, Iterable
from pathlib import Path
from typing import Any

import pytest
import yaml
from kubernetes.aio import client
from kubernetes.aio.client.exceptions import ApiException

from e2e.helpers import custom_object, wire
from e2e.kustomize import REPO, kubectl
from modelfs.controllers.rbac import LEADER_ELECTION_RULES, RULES
from modelfs.pkg.dataset import DATASET_GROUP, DATASET_PLURAL
from modelfs.testing.controlplane import ControlPlane
from modelfs.testing.pytest_plugin import (
    SaKubeconfigFactory,
    new_api_client,
    service_account_kubeconfig,
)
from tests import tools

pytestmark = pytest.mark.e2e

CHART = REPO / "charts" / "modelfs"
#: Every verb RBAC knows for a resource: each is checked, granted or not.
VERBS = ("get", "list", "watch", "create", "update", "patch", "delete", "deletecollection")
#: Resources the operator never needs, checked to be refused everywhere.
NOT_GRANTED = (("", "configmaps"), ("", "pods"), ("apps", "deployments"), ("", "serviceaccounts"))


async def grant_config_map_reader(api: client.ApiClient, namespace: str, account: str) -> None:
    rbac = client.RbacAuthorizationV1Api(api)
    await rbac.create_namespaced_role(
        namespace,
        client.V1Role.model_validate(
            {
                "metadata": {"name": "config-map-reader"},
                "rules": [
                    {
                        "apiGroups": [""],
                        "resources": ["configmaps"],
                        "verbs": ["get", "list", "watch"],
                    }
                ],
            }
        ),
    )
    await rbac.create_namespaced_role_binding(
        namespace,
        client.V1RoleBinding.model_validate(
            {
                "metadata": {"name": "config-map-reader"},
                "roleRef": {
                    "apiGroup": "rbac.authorization.k8s.io",
                    "kind": "Role",
                    "name": "config-map-reader",
                },
                "subjects": [{"kind": "ServiceAccount", "name": account, "namespace": namespace}],
            }
        ),
    )


async def assert_forbidden(call: Callable[[], Any]) -> None:
    with pytest.raises(ApiException) as raised:
        await call()
    assert raised.value.status == 403, raised.value.body


async def check_reader(kubeconfig: Path, namespace: str, account: str) -> None:
    sa_api = await new_api_client(kubeconfig)
    try:
        core = client.CoreV1Api(sa_api)
        authn = client.AuthenticationV1Api(sa_api)
        review = wire(await authn.create_self_subject_review(client.V1SelfSubjectReview()))
        user = review["status"]["userInfo"]["username"]
        assert user == f"system:serviceaccount:{namespace}:{account}"
        listed = await core.list_namespaced_config_map(namespace)
        assert "kube-root-ca.crt" in {wire(c)["metadata"]["name"] for c in listed.items}
        body = client.V1ConfigMap(metadata=client.V1ObjectMeta(name="nope"), data={})
        await assert_forbidden(lambda: core.create_namespaced_config_map(namespace, body))
        await assert_forbidden(lambda: core.list_namespaced_secret(namespace))
        await assert_forbidden(lambda: core.list_namespaced_config_map("default"))
        await assert_forbidden(lambda: core.list_namespace())
    finally:
        await sa_api.close()  # type: ignore[no-untyped-call]


async def test_service_account_kubeconfig_follows_its_role(
    k8s_api: client.ApiClient,
    k8s_namespace: str,
    k8s_service_account_kubeconfig: SaKubeconfigFactory,
) -> None:
    await grant_config_map_reader(k8s_api, k8s_namespace, "operator")
    kubeconfig = await k8s_service_account_kubeconfig(k8s_namespace, "operator")
    assert kubeconfig.stat().st_mode & 0o777 == 0o600
    await check_reader(kubeconfig, k8s_namespace, "operator")


async def test_control_plane_service_account_kubeconfig(
    k8s_control_plane: ControlPlane, k8s_api: client.ApiClient, k8s_namespace: str
) -> None:
    kubeconfig = k8s_control_plane.service_account_kubeconfig(k8s_namespace, "reader")
    await grant_config_map_reader(k8s_api, k8s_namespace, "reader")
    await check_reader(kubeconfig, k8s_namespace, "reader")


# ----------------------------------------------------------------------------- rule scopes


async def test_rule_scopes_are_the_scopes_of_their_resources(
    k8s_api: client.ApiClient, k8s_install_crds: Any, dataset_crd: str
) -> None:
    """A `namespaced` rule is on a namespaced resource (so a Role can grant it), a `cluster` rule
    on a cluster-scoped one (only a ClusterRole can), as the API server's discovery says."""
    await k8s_install_crds(*sorted((REPO / "config" / "crd" / "bases").glob("*.yaml")))
    groups = await client.ApisApi(k8s_api).get_api_versions()
    preferred = {g.name: wire(g)["preferredVersion"]["version"] for g in groups.groups}
    namespaced: dict[tuple[str, str], bool] = {}
    for group in {rule.group for rule in RULES}:
        if group:
            listed = await client.CustomObjectsApi(k8s_api).get_api_resources(
                group, preferred[group]
            )
        else:
            listed = await client.CoreV1Api(k8s_api).get_api_resources()
        for resource in listed.resources:
            namespaced[(group, resource.name)] = bool(resource.namespaced)
    for rule in RULES:
        for name in rule.resources:
            assert namespaced[(rule.group, name)] == (rule.scope == "namespaced"), (
                f"{rule.group}/{name}: scope {rule.scope} in controllers/rbac.py"
            )


# ----------------------------------------------------------------------------- the chart's RBAC


def helm_rbac(release: str, namespace: str, *values: str) -> list[dict[str, Any]]:
    """The ServiceAccount and RBAC objects of `helm template release charts/modelfs`."""
    rendered = subprocess.run(
        [tools.helm(), "template", release, str(CHART), "-n", namespace, *values],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    ).stdout
    kinds = {"ServiceAccount", "ClusterRole", "ClusterRoleBinding", "Role", "RoleBinding"}
    return [d for d in yaml.safe_load_all(rendered) if d and d["kind"] in kinds]


async def review(
    api: client.ApiClient, user: str, group: str, resource: str, verb: str, namespace: str
) -> bool:
    """The API server's verdict (SubjectAccessReview) on `user` doing `verb` on `resource`."""
    resource, _, subresource = resource.partition("/")
    attributes = {"group": group, "resource": resource, "verb": verb, "namespace": namespace}
    if subresource:
        attributes["subresource"] = subresource
    body = {
        "apiVersion": "authorization.k8s.io/v1",
        "kind": "SubjectAccessReview",
        "spec": {
            "user": user,
            "groups": ["system:serviceaccounts"],
            "resourceAttributes": attributes,
        },
    }
    review = client.V1SubjectAccessReview.model_validate(body)
    done = await client.AuthorizationV1Api(api).create_subject_access_review(review)
    return bool(wire(done)["status"].get("allowed"))


def expected(group: str, resource: str, verb: str, namespace: str, watched: Iterable[str]) -> bool:
    """What controllers/rbac.py grants, by scope: with `watched`, namespaced rules in those
    namespaces only (and never across all namespaces: ""), cluster rules anywhere; without, every
    rule anywhere."""
    watched = tuple(watched)
    for rule in RULES:
        if group == rule.group and resource in rule.resources and verb in rule.verbs:
            return rule.scope == "cluster" or not watched or namespace in watched
    return False


@pytest.fixture
async def namespaces(k8s_api: client.ApiClient) -> AsyncIterator[dict[str, str]]:
    """The chart's release namespace and three others: a and b watched, c not."""
    core = client.CoreV1Api(k8s_api)
    suffix = uuid.uuid4().hex[:6]
    names = {role: f"rbac-{role}-{suffix}" for role in ("system", "a", "b", "c")}
    for name in names.values():
        await core.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name=name)))
    try:
        yield names
    finally:
        for name in names.values():
            await core.delete_namespace(name)


def apply_chart_rbac(kubectl_binary: str, kubeconfig: Path, docs: list[dict[str, Any]]) -> None:
    kubectl(
        kubectl_binary, kubeconfig, "apply", "--server-side", "-f", "-",
        stdin=yaml.safe_dump_all(docs),
    )  # fmt: skip


async def delete_cluster_objects(api: client.ApiClient, docs: list[dict[str, Any]]) -> None:
    rbac = client.RbacAuthorizationV1Api(api)
    for doc in docs:
        if doc["kind"] == "ClusterRole":
            await rbac.delete_cluster_role(doc["metadata"]["name"])
        elif doc["kind"] == "ClusterRoleBinding":
            await rbac.delete_cluster_role_binding(doc["metadata"]["name"])


async def wait_allowed(api: client.ApiClient, user: str, namespace: str) -> None:
    """RBAC's authorizer follows new Roles through a watch: wait until it has them."""
    deadline = time.monotonic() + 30
    while not await review(api, user, "", "secrets", "get", namespace):
        assert time.monotonic() < deadline, (
            f"{user} was never allowed to get secrets in {namespace}"
        )
        await asyncio.sleep(0.2)


async def test_chart_watch_namespaces_grant_only_the_watched_namespaces(
    k8s_api: client.ApiClient,
    k8s_kubeconfig: Path,
    kubectl: str,
    namespaces: dict[str, str],
    dataset_crd: str,
    tmp_path: Path,
) -> None:
    system, a, b, c = (namespaces[k] for k in ("system", "a", "b", "c"))
    release = f"rbac-{uuid.uuid4().hex[:6]}"
    docs = helm_rbac(release, system, "--set", f"watchNamespaces={{{a},{b}}}")
    # No ClusterRole grants anything namespaced; Roles only in a and b.
    cluster_roles = [d for d in docs if d["kind"] == "ClusterRole"]
    cluster_resources = {r for d in cluster_roles for rule in d["rules"] for r in rule["resources"]}
    assert cluster_resources == {"namespaces", "customresourcedefinitions"}
    roles = [d for d in docs if d["kind"] == "Role"]
    watched_roles = [d for d in roles if not d["metadata"]["name"].endswith("-leader-election")]
    assert sorted(d["metadata"]["namespace"] for d in watched_roles) == sorted([a, b])
    # and the leader election Role, in the release namespace only
    (leader_role,) = [d for d in roles if d["metadata"]["name"].endswith("-leader-election")]
    assert leader_role["metadata"]["namespace"] == system
    assert {r for rule in leader_role["rules"] for r in rule["resources"]} == {"leases"}
    account = next(d for d in docs if d["kind"] == "ServiceAccount")["metadata"]["name"]
    user = f"system:serviceaccount:{system}:{account}"
    apply_chart_rbac(kubectl, k8s_kubeconfig, docs)
    try:
        await wait_allowed(k8s_api, user, a)
        # The API server's verdict on every verb of every declared resource, and of a few
        # undeclared ones, in a, b, c and across all namespaces (""), is controllers/rbac.py's.
        resources = {(r.group, res) for r in RULES for res in r.resources} | set(NOT_GRANTED)
        wrong = []
        checked = 0
        for group, resource in sorted(resources):
            for verb in VERBS:
                for namespace in (a, b, c, ""):
                    allowed = await review(k8s_api, user, group, resource, verb, namespace)
                    checked += 1
                    if allowed != expected(group, resource, verb, namespace, (a, b)):
                        wrong.append(f"{verb} {group}/{resource} in {namespace!r}: {allowed}")
        # Leases: the leader election Role's verbs in the release namespace, nothing elsewhere.
        (leases,) = LEADER_ELECTION_RULES
        for verb in VERBS:
            for namespace in (system, a, c, ""):
                allowed = await review(k8s_api, user, leases.group, "leases", verb, namespace)
                checked += 1
                if allowed != (namespace == system and verb in leases.verbs):
                    wrong.append(f"{verb} leases in {namespace!r}: {allowed}")
        assert not wrong, "\n".join(wrong)
        print(f"\n{checked} access reviews, each as controllers/rbac.py's scopes say")

        # The same by real requests under the account's token.
        identity = await service_account_kubeconfig(
            k8s_api, system, account, tmp_path / "operator.kubeconfig", create=False
        )
        sa_api = await new_api_client(identity)
        try:
            core = client.CoreV1Api(sa_api)
            custom = client.CustomObjectsApi(sa_api)
            with pytest.raises(ApiException) as missing:
                await core.read_namespaced_secret("absent", a)
            assert missing.value.status == 404  # allowed: the Secret just isn't there
            await assert_forbidden(lambda: core.read_namespaced_secret("absent", c))
            await assert_forbidden(lambda: core.list_namespaced_secret(a))
            dataset = {
                "apiVersion": f"{DATASET_GROUP}/v1alpha1",
                "kind": "Dataset",
                "metadata": {"name": "rbac-check"},
                "spec": {"source": {"type": "HTTP", "uri": "https://example.com/x"}},
            }
            created = await custom.create_namespaced_custom_object(
                DATASET_GROUP, "v1alpha1", a, DATASET_PLURAL, dataset, dry_run="All"
            )
            assert custom_object(created)["metadata"]["namespace"] == a
            await assert_forbidden(
                lambda: custom.create_namespaced_custom_object(
                    DATASET_GROUP, "v1alpha1", c, DATASET_PLURAL, dataset, dry_run="All"
                )
            )
            await assert_forbidden(
                lambda: custom.list_cluster_custom_object(DATASET_GROUP, "v1alpha1", DATASET_PLURAL)
            )
            listed = await core.list_namespace()  # the share selector's namespaces: cluster-wide
            assert c in {wire(n)["metadata"]["name"] for n in listed.items}
            # kubectl's own check, as an administrator would run it.
            for namespace, answer in ((a, "yes"), (b, "yes"), (c, "no")):
                for what in (("get", "secrets"), ("create", "datasets.dataset.baizeai.io")):
                    got = kubectl_can_i(kubectl, identity, *what, namespace)
                    assert got == answer, (what, namespace, got)
        finally:
            await sa_api.close()  # type: ignore[no-untyped-call]
    finally:
        await delete_cluster_objects(k8s_api, docs)


def kubectl_can_i(binary: str, kubeconfig: Path, verb: str, resource: str, namespace: str) -> str:
    done = kubectl(
        binary, kubeconfig, "auth", "can-i", verb, resource, "-n", namespace, check=False
    )
    return done.stdout.strip()


async def test_chart_all_namespaces_grant_every_rule_everywhere(
    k8s_api: client.ApiClient, k8s_kubeconfig: Path, kubectl: str, namespaces: dict[str, str]
) -> None:
    """Without watchNamespaces (`-A`), one ClusterRole: the same rules, in any namespace."""
    system, c = namespaces["system"], namespaces["c"]
    release = f"rbac-{uuid.uuid4().hex[:6]}"
    docs = helm_rbac(release, system)
    local = [d for d in docs if d["kind"] in ("Role", "RoleBinding")]
    # only leader election's, in the release namespace
    assert {(d["metadata"]["namespace"], d["metadata"]["name"]) for d in local} == {
        (system, f"{release}-modelfs-leader-election")
    }
    account = next(d for d in docs if d["kind"] == "ServiceAccount")["metadata"]["name"]
    user = f"system:serviceaccount:{system}:{account}"
    apply_chart_rbac(kubectl, k8s_kubeconfig, docs)
    try:
        await wait_allowed(k8s_api, user, c)
        wrong = []
        for rule in RULES:
            for resource in rule.resources:
                for verb in VERBS:
                    for namespace in (c, ""):
                        allowed = await review(k8s_api, user, rule.group, resource, verb, namespace)
                        if allowed != expected(rule.group, resource, verb, namespace, ()):
                            wrong.append(f"{verb} {rule.group}/{resource} in {namespace!r}")
        assert not wrong, "\n".join(wrong)
        assert await review(k8s_api, user, "", "secrets", "get", "")  # any namespace's Secrets
        assert not await review(k8s_api, user, "", "secrets", "list", c)
    finally:
        await delete_cluster_objects(k8s_api, docs)
