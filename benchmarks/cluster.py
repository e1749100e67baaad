"""The benchmark's cluster: the operator's ServiceAccount and role, and the CRDs."""

from __future__ import annotations

import yaml

from benchmarks.common import BINDING, REPO, SERVICE_ACCOUNT, SYSTEM_NAMESPACE
from modelfs.testing.controlplane import ControlPlane, ControlPlaneError
from modelfs.testing.pytest_plugin import DATASET_CRD, install_crds, new_api_client


def bind_operator(cp: ControlPlane, rbac: str) -> str:
    """Create the operator's ServiceAccount and bind it: the generated ClusterRole of
    config/rbac/role.yaml when there is one (and `rbac` is auto or config), else
    cluster-admin. Returns what was bound."""
    role_file = REPO / "config" / "rbac" / "role.yaml"
    role_name = "cluster-admin"
    if rbac != "cluster-admin" and role_file.is_file():
        roles = [
            d
            for d in yaml.safe_load_all(role_file.read_text())
            if d and d.get("kind") == "ClusterRole"
        ]
        if roles:
            role = roles[0]
            role_name = role["metadata"]["name"]
            path = f"/apis/rbac.authorization.k8s.io/v1/clusterroles/{role_name}"
            status, data = cp.request(
                "PATCH",
                f"{path}?fieldManager=modelfs-bench&force=true",
                yaml.safe_dump(role).encode(),
                content_type="application/apply-patch+yaml",
            )
            if status not in (200, 201):
                raise ControlPlaneError(f"apply {role_file}: {status} {data[:300]!r}")
    elif rbac == "config":
        raise SystemExit(f"--rbac config: no ClusterRole in {role_file}")
    for api_path, body in (
        ("/api/v1/namespaces", {"metadata": {"name": SYSTEM_NAMESPACE}}),
        (
            f"/api/v1/namespaces/{SYSTEM_NAMESPACE}/serviceaccounts",
            {"metadata": {"name": SERVICE_ACCOUNT}},
        ),
        (
            "/apis/rbac.authorization.k8s.io/v1/clusterrolebindings",
            {
                "metadata": {"name": BINDING},
                "roleRef": {
                    "apiGroup": "rbac.authorization.k8s.io",
                    "kind": "ClusterRole",
                    "name": role_name,
                },
                "subjects": [
                    {
                        "kind": "ServiceAccount",
                        "name": SERVICE_ACCOUNT,
                        "namespace": SYSTEM_NAMESPACE,
                    }
                ],
            },
        ),
    ):
        status, data = cp.request("POST", api_path, body)
        if status not in (201, 409):
            raise ControlPlaneError(f"POST {api_path}: {status} {data[:300]!r}")
    if role_name != "cluster-admin":
        bind_leader_election(cp)
    return role_name if role_name == "cluster-admin" else f"{role_name} ({role_file.name})"


async def install(cp: ControlPlane) -> list[str]:
    api = await new_api_client(cp.kubeconfig)
    try:
        crds = sorted((REPO / "config" / "crd" / "bases").glob("*.yaml"))
        return await install_crds(api, *crds, DATASET_CRD)
    finally:
        await api.close()  # type: ignore[no-untyped-call]


def bind_leader_election(cp: ControlPlane) -> None:
    """The leader election Role of config/rbac (Leases in the operator's namespace), for the
    failover phase's elected replicas."""
    from modelfs.manifests import leader_election_documents

    for document in leader_election_documents():
        document["metadata"]["namespace"] = SYSTEM_NAMESPACE
        if document["kind"] == "RoleBinding":
            document["subjects"] = [
                {"kind": "ServiceAccount", "name": SERVICE_ACCOUNT, "namespace": SYSTEM_NAMESPACE}
            ]
        plural = "roles" if document["kind"] == "Role" else "rolebindings"
        path = f"/apis/rbac.authorization.k8s.io/v1/namespaces/{SYSTEM_NAMESPACE}/{plural}"
        status, data = cp.request("POST", path, document)
        if status not in (201, 409):
            raise ControlPlaneError(f"POST {path}: {status} {data[:300]!r}")
