"""RBAC: a ServiceAccount kubeconfig gets what its Role grants and nothing else."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from kubernetes.aio import client
from kubernetes.aio.client.exceptions import ApiException

from modelfs.testing.controlplane import ControlPlane
from modelfs.testing.pytest_plugin import SaKubeconfigFactory, new_api_client

pytestmark = pytest.mark.e2e


async def grant_config_map_reader(api: client.ApiClient, namespace: str, account: str) -> None:
    rbac = client.RbacAuthorizationV1Api(api)
    await rbac.create_namespaced_role(
        namespace,
        {
            "metadata": {"name": "config-map-reader"},
            "rules": [
                {"apiGroups": [""], "resources": ["configmaps"], "verbs": ["get", "list", "watch"]}
            ],
        },
    )
    await rbac.create_namespaced_role_binding(
        namespace,
        {
            "metadata": {"name": "config-map-reader"},
            "roleRef": {
                "apiGroup": "rbac.authorization.k8s.io",
                "kind": "Role",
                "name": "config-map-reader",
            },
            "subjects": [{"kind": "ServiceAccount", "name": account, "namespace": namespace}],
        },
    )


async def assert_forbidden(call: Callable[[], Any]) -> None:
    with pytest.raises(ApiException) as raised:
        await call()
    assert raised.value.status == 403, raised.value.body


async def check_reader(kubeconfig: Path, namespace: str, account: str) -> None:
    sa_api = await new_api_client(kubeconfig)
    try:
        core = client.CoreV1Api(sa_api)
        review = await client.AuthenticationV1Api(sa_api).create_self_subject_review({})
        assert review.status.user_info.username == f"system:serviceaccount:{namespace}:{account}"
        listed = await core.list_namespaced_config_map(namespace)
        assert "kube-root-ca.crt" in {c.metadata.name for c in listed.items}
        body = {"metadata": {"name": "nope"}, "data": {}}
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
