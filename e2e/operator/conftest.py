"""The operator under test: `modelfs run` as its own process and identity, the fake Dataset
controller beside it, on the cluster of the modelfs pytest plugin (`--k8s`)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from kubernetes.aio.client import ApiClient
from kubernetes.aio.client.exceptions import ApiException

from e2e.kustomize import dump, installed_rbac
from e2e.kustomize import kubectl as run_kubectl
from e2e.operator.kube import Kube
from modelfs.testing.fake_dataset.process import FakeDatasetController
from modelfs.testing.operator import OperatorProcess
from modelfs.testing.pytest_plugin import service_account_kubeconfig

REPO = Path(__file__).resolve().parents[2]
SYSTEM_NAMESPACE = "modelfs-system"
SERVICE_ACCOUNT = "modelfs-operator"
OPERATOR_USER = f"system:serviceaccount:{SYSTEM_NAMESPACE}:{SERVICE_ACCOUNT}"


@dataclass
class OperatorEnv:
    operator: OperatorProcess
    fake: FakeDatasetController
    user: str
    kubeconfig: Path


async def ignore_conflict(call: object) -> None:
    try:
        await call  # type: ignore[misc]
    except ApiException as error:
        if error.status != 409:
            raise


@pytest.fixture(scope="session")
async def operator_identity(
    k8s_api: ApiClient,
    k8s_kubeconfig: Path,
    kubectl: str,
    tmp_path_factory: pytest.TempPathFactory,
) -> Path:
    """A kubeconfig for the operator's own ServiceAccount, with exactly the RBAC that
    `kubectl apply -k config/default` installs (config/rbac: the ClusterRole generated from
    controllers/rbac.py, its binding, the ServiceAccount, named as installed). The scenarios
    passing under it is the proof that the role is enough."""
    rbac = installed_rbac(kubectl)
    accounts = {
        (d["metadata"]["namespace"], d["metadata"]["name"])
        for d in rbac
        if d["kind"] == "ServiceAccount"
    }
    assert accounts == {(SYSTEM_NAMESPACE, SERVICE_ACCOUNT)}, accounts
    await asyncio.to_thread(
        run_kubectl, kubectl, k8s_kubeconfig, "apply", "--server-side", "-f", "-", stdin=dump(rbac)
    )
    path = tmp_path_factory.mktemp("operator") / "kubeconfig"
    return await service_account_kubeconfig(
        k8s_api, SYSTEM_NAMESPACE, SERVICE_ACCOUNT, path, create=False, expiration_seconds=6 * 3600
    )


@pytest.fixture(scope="session")
async def modelfs_crds(k8s_install_crds: object, dataset_crd: str) -> list[str]:
    files = sorted((REPO / "config" / "crd" / "bases").glob("*.yaml"))
    return list(await k8s_install_crds(*files))  # type: ignore[operator]


# Package scope: the fake and the operator act cluster-wide, so they must be gone before other
# e2e modules (which set Dataset statuses by hand, or run a fake of their own) start.
@pytest.fixture(scope="package")
def fake_datasets(
    k8s_kubeconfig: Path, modelfs_crds: list[str], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[FakeDatasetController]:
    log = tmp_path_factory.mktemp("fake") / "fake-dataset.log"
    with FakeDatasetController(k8s_kubeconfig, log_path=log) as fake:
        yield fake


@pytest.fixture(scope="package")
def operator_env(
    operator_identity: Path,
    fake_datasets: FakeDatasetController,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[OperatorEnv]:
    log = tmp_path_factory.mktemp("operator") / "operator.log"
    operator = OperatorProcess(operator_identity, log_path=log, die_with_parent=True).start()
    try:
        yield OperatorEnv(operator, fake_datasets, OPERATOR_USER, operator_identity)
    finally:
        operator.stop()
        print(f"\noperator log: {log}\n{operator.log_tail(30)}")


@pytest.fixture
async def kube(
    operator_env: OperatorEnv, k8s_api: ApiClient, k8s_namespace: str
) -> AsyncIterator[Kube]:
    if not operator_env.operator.alive():
        operator_env.operator.start()
    yield Kube(k8s_api, k8s_namespace)
