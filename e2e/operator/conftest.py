"""The operator under test: `modelfs run` as its own process and identity, the Dataset
controller beside it (`--dataset-controller`: the real BaizeAI/dataset controller with the pod
simulator, by default, or the fake), on the cluster of the modelfs pytest plugin (`--k8s`)."""

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
from modelfs.testing.dataset_engine import DatasetEngine
from modelfs.testing.fake_dataset.process import FakeDatasetController
from modelfs.testing.operator import OperatorProcess
from modelfs.testing.pytest_plugin import (
    Cluster,
    running_dataset_engine,
    service_account_kubeconfig,
)

REPO = Path(__file__).resolve().parents[2]
SYSTEM_NAMESPACE = "modelfs-system"
SERVICE_ACCOUNT = "modelfs-operator"
OPERATOR_USER = f"system:serviceaccount:{SYSTEM_NAMESPACE}:{SERVICE_ACCOUNT}"


@dataclass
class OperatorEnv:
    operator: OperatorProcess
    engine: DatasetEngine | FakeDatasetController
    """The Dataset controller: the real one (DatasetEngine) or the fake, per
    `--dataset-controller`; both have `alive()` and `log_text()`."""
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


# Package scope: the Dataset controller and the operator act cluster-wide, so they must be gone
# before other e2e modules (which set Dataset statuses by hand, or run an engine of their own)
# start.
@pytest.fixture(scope="package")
def dataset_engine(
    k8s_cluster: Cluster,
    dataset_controller: str,
    modelfs_crds: list[str],
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[DatasetEngine | FakeDatasetController]:
    """The Dataset controller of `--dataset-controller` (loader Jobs with backoffLimit 0 on the
    real one, so that a failing round fails in seconds)."""
    log_dir = tmp_path_factory.mktemp("dataset-engine")
    with running_dataset_engine(dataset_controller, k8s_cluster, log_dir) as engine:
        yield engine


@pytest.fixture(scope="package")
def operator_env(
    operator_identity: Path,
    dataset_engine: DatasetEngine | FakeDatasetController,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[OperatorEnv]:
    log = tmp_path_factory.mktemp("operator") / "operator.log"
    operator = OperatorProcess(operator_identity, log_path=log, die_with_parent=True).start()
    try:
        yield OperatorEnv(operator, dataset_engine, OPERATOR_USER, operator_identity)
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
