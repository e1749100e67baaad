"""The real BaizeAI/dataset controller at work on the local control plane (DatasetEngine: the
controller built by `make dataset-controller`, kube-controller-manager's Job controller and PV
binder, and the pod simulator in the scheduler's and kubelet's place). Plain Datasets, applied
by the tests; no modelfs operator.

Needs `--k8s=local` (the pod simulator has no place on a cluster with nodes) and
`--dataset-controller=real` (the default); skipped otherwise.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from kubernetes.aio.client import ApiClient
from kubernetes.aio.client.exceptions import ApiException

from e2e.helpers import eventually
from modelfs.testing import podsim
from modelfs.testing.controlplane import ControlPlane
from modelfs.testing.dataset_engine import DatasetEngine
from modelfs.testing.fake_dataset.kube import MERGE, Kube
from modelfs.testing.fake_dataset.logic import ANN_FAIL_ROUNDS, ANN_ROUND_DURATION
from modelfs.testing.pytest_plugin import Cluster, running_dataset_engine

pytestmark = pytest.mark.e2e
DATASETS = "/apis/dataset.baizeai.io/v1alpha1"
NAME_LABEL = "baize.io/dataset-name"  # what the real controller puts on its PVCs and Jobs
HTTP_DATASET = """
apiVersion: dataset.baizeai.io/v1alpha1
kind: Dataset
metadata:
  name: gpt2-train-data
spec:
  dataSyncRound: 1
  source:
    type: HTTP
    uri: http://baize-ai.daocloud.io/gpt2-train-data/
"""
#: Timings seen, printed at the end of the module (the figures the report quotes).
TIMINGS: dict[str, float] = {}


@pytest.fixture(scope="module")
def engine(
    k8s_cluster: Cluster,
    k8s_control_plane: ControlPlane,  # skips unless --k8s=local: the pod simulator runs here
    dataset_controller: str,
    dataset_crd: str,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[DatasetEngine]:
    if dataset_controller != "real":
        pytest.skip("the real Dataset controller's tests (--dataset-controller=real)")
    log_dir = tmp_path_factory.mktemp("dataset-engine")
    try:
        with running_dataset_engine("real", k8s_cluster, log_dir) as engine:
            assert isinstance(engine, DatasetEngine) and engine.pod_simulator
            yield engine
            assert engine.alive(), f"the engine died:\n{engine.log_text()[-5000:]}"
    finally:
        print(f"\nreal engine timings (s): {TIMINGS}\nlogs: {log_dir}")


@pytest.fixture
def kube(engine: DatasetEngine, k8s_api: ApiClient) -> Kube:
    return Kube(k8s_api)


def dataset(
    name: str, type_: str = "HTTP", uri: str = "http://example.com/data/", **spec: Any
) -> dict[str, Any]:
    return {
        "apiVersion": "dataset.baizeai.io/v1alpha1",
        "kind": "Dataset",
        "metadata": {"name": name},
        "spec": {"source": {"type": type_, "uri": uri}, **spec},
    }


async def create(kube: Kube, namespace: str, body: dict[str, Any]) -> dict[str, Any]:
    return await kube.request("POST", f"{DATASETS}/namespaces/{namespace}/datasets", body=body)


async def phase_of(kube: Kube, namespace: str, name: str) -> str | None:
    found = await kube.get(f"{DATASETS}/namespaces/{namespace}/datasets/{name}")
    return None if found is None else (found.get("status") or {}).get("phase")


async def wait_phase(
    kube: Kube, namespace: str, name: str, phase: str, within: float = 60.0
) -> tuple[float, list[str | None]]:
    """Seconds until Dataset `name` shows `phase`, and the phases seen on the way."""
    started = time.monotonic()
    seen: list[str | None] = []

    async def reached() -> bool:
        current = await phase_of(kube, namespace, name)
        if not seen or seen[-1] != current:
            seen.append(current)
        return current == phase

    await eventually(reached, within, f"Dataset {namespace}/{name} {phase} (seen: {seen})")
    return time.monotonic() - started, seen


def condition(obj: dict[str, Any] | None, kind: str) -> str | None:
    for found in ((obj or {}).get("status") or {}).get("conditions") or []:
        if found.get("type") == kind:
            return str(found.get("status"))
    return None


async def job_pods(kube: Kube, namespace: str, job: str) -> list[dict[str, Any]]:
    listing = await kube.request(
        "GET",
        f"/api/v1/namespaces/{namespace}/pods",
        query={"labelSelector": f"batch.kubernetes.io/job-name={job}"},
    )
    return list(listing.get("items") or [])


async def test_the_simulated_node_is_ready_and_untainted(kube: Kube) -> None:
    node = await kube.get(f"/api/v1/nodes/{podsim.NODE_NAME}")
    assert node is not None
    assert condition(node, "Ready") == "True"
    taints = [t["key"] for t in (node.get("spec") or {}).get("taints") or []]
    assert podsim.NOT_READY_TAINT not in taints, taints


async def test_http_dataset_reaches_ready(kube: Kube, k8s_namespace: str) -> None:
    body = yaml.safe_load(HTTP_DATASET)
    await create(kube, k8s_namespace, body)
    seconds, seen = await wait_phase(kube, k8s_namespace, "gpt2-train-data", "READY")
    TIMINGS["created_to_ready"] = round(seconds, 1)
    assert "FAILED" not in seen and "PENDING" not in seen, seen  # dataset-controller.md#phases

    ns = k8s_namespace
    job = await kube.get(f"/apis/batch/v1/namespaces/{ns}/jobs/dataset-gpt2-train-data-round-1")
    assert job is not None
    assert condition(job, "Complete") == "True", job.get("status")
    assert job["metadata"]["labels"][NAME_LABEL] == "gpt2-train-data"
    assert job["spec"]["backoffLimit"] == 0  # DatasetEngine(backoff_limit=0)
    (pod,) = await job_pods(kube, ns, "dataset-gpt2-train-data-round-1")
    assert pod["spec"]["nodeName"] == podsim.NODE_NAME
    assert pod["status"]["phase"] == "Succeeded"
    (status,) = pod["status"]["containerStatuses"]
    assert status["state"]["terminated"]["exitCode"] == 0
    args = pod["spec"]["containers"][0]["args"]
    assert args[:2] == ["HTTP", "http://baize-ai.daocloud.io/gpt2-train-data/"]
    assert "--mount-root=/baize/dataset/data" in args

    pvc = await kube.get(f"/api/v1/namespaces/{ns}/persistentvolumeclaims/gpt2-train-data")
    assert pvc is not None
    assert pvc["status"]["phase"] == "Bound"
    assert pvc["spec"]["accessModes"] == ["ReadWriteMany"]  # the controller's default claim
    assert pvc["status"]["capacity"]["storage"] == "100Ti"
    pv = await kube.get(f"/api/v1/persistentvolumes/{pvc['spec']['volumeName']}")
    assert pv is not None and podsim.is_own_pv(pv)
    assert pv["status"]["phase"] == "Bound"

    found = await kube.get(f"{DATASETS}/namespaces/{ns}/datasets/gpt2-train-data")
    assert found is not None
    assert found["status"]["lastSucceedRound"] == 1
    assert found["status"]["pvcName"] == "gpt2-train-data"
    assert found["metadata"]["finalizers"] == ["dataset-controller"]


async def test_a_dataset_named_with_dots_reaches_ready(kube: Kube, k8s_namespace: str) -> None:
    name = "qwen-model-v2.5.0"
    body = dataset(name, "HUGGING_FACE", "huggingface://qwen/Qwen2.5-7B-Instruct")
    await create(kube, k8s_namespace, body)
    await wait_phase(kube, k8s_namespace, name, "READY")
    job = await kube.get(f"/apis/batch/v1/namespaces/{k8s_namespace}/jobs/dataset-{name}-round-1")
    assert job is not None and condition(job, "Complete") == "True"
    pvc = await kube.get(f"/api/v1/namespaces/{k8s_namespace}/persistentvolumeclaims/{name}")
    assert pvc is not None and pvc["status"]["phase"] == "Bound"


async def test_fail_rounds_on_the_namespace_fails_the_round_in_seconds(
    kube: Kube, k8s_namespace: str
) -> None:
    await kube.request(
        "PATCH",
        f"/api/v1/namespaces/{k8s_namespace}",
        body={"metadata": {"annotations": {ANN_FAIL_ROUNDS: "all"}}},
        content_type=MERGE,
    )
    await create(kube, k8s_namespace, dataset("broken"))
    seconds, seen = await wait_phase(kube, k8s_namespace, "broken", "FAILED", within=30)
    TIMINGS["created_to_failed"] = round(seconds, 1)
    assert "READY" not in seen, seen
    job = await kube.get(f"/apis/batch/v1/namespaces/{k8s_namespace}/jobs/dataset-broken-round-1")
    assert job is not None and condition(job, "Failed") == "True", job
    (pod,) = await job_pods(kube, k8s_namespace, "dataset-broken-round-1")  # backoffLimit 0
    assert pod["status"]["phase"] == "Failed"
    (status,) = pod["status"]["containerStatuses"]
    assert status["state"]["terminated"]["exitCode"] == 1
    # A failed round stays FAILED: nothing retries it (docs/dataset-controller.md#failed-round).
    found = await kube.get(f"{DATASETS}/namespaces/{k8s_namespace}/datasets/broken")
    assert found is not None
    assert found["status"].get("lastSucceedRound", 0) == 0
    assert not found["status"].get("inProcessing")


async def test_the_datasets_annotation_wins_over_the_namespaces(
    kube: Kube, k8s_namespace: str
) -> None:
    """The controller copies the Dataset's annotations onto its Job, where podsim reads them
    before the Namespace's: round 1 passes, round 2 fails, and it runs for its duration."""
    await kube.request(
        "PATCH",
        f"/api/v1/namespaces/{k8s_namespace}",
        body={"metadata": {"annotations": {ANN_FAIL_ROUNDS: "all"}}},
        content_type=MERGE,
    )
    body = dataset("picky")
    body["metadata"]["annotations"] = {ANN_FAIL_ROUNDS: "2", ANN_ROUND_DURATION: "3s"}
    await create(kube, k8s_namespace, body)
    await wait_phase(kube, k8s_namespace, "picky", "READY")
    (pod,) = await job_pods(kube, k8s_namespace, "dataset-picky-round-1")
    terminated = pod["status"]["containerStatuses"][0]["state"]["terminated"]
    started = podsim.parse_timestamp(terminated["startedAt"])
    finished = podsim.parse_timestamp(terminated["finishedAt"])
    assert started is not None and finished is not None
    assert (finished - started).total_seconds() >= 2  # 3 s, stored to the second

    path = f"{DATASETS}/namespaces/{k8s_namespace}/datasets/picky"
    await kube.request("PATCH", path, body={"spec": {"dataSyncRound": 2}}, content_type=MERGE)
    await wait_phase(kube, k8s_namespace, "picky", "FAILED")


async def test_raising_the_round_runs_round_2(kube: Kube, k8s_namespace: str) -> None:
    await create(kube, k8s_namespace, dataset("rounds"))
    await wait_phase(kube, k8s_namespace, "rounds", "READY")
    path = f"{DATASETS}/namespaces/{k8s_namespace}/datasets/rounds"
    await kube.request("PATCH", path, body={"spec": {"dataSyncRound": 2}}, content_type=MERGE)

    async def round_2_done() -> bool:
        found = await kube.get(path)
        status = (found or {}).get("status") or {}
        return status.get("phase") == "READY" and status.get("lastSucceedRound") == 2

    started = time.monotonic()
    await eventually(round_2_done, 60, "round 2 READY")
    TIMINGS["round_2_to_ready"] = round(time.monotonic() - started, 1)
    job = await kube.get(f"/apis/batch/v1/namespaces/{k8s_namespace}/jobs/dataset-rounds-round-2")
    assert job is not None and condition(job, "Complete") == "True"
    found = await kube.get(path)
    assert found is not None
    rounds = {s["round"]: s for s in found["status"]["syncRoundStatuses"]}
    assert rounds[2]["succeed"] is True, rounds


async def test_deleting_the_dataset_removes_its_pvc_and_volume(
    kube: Kube, k8s_namespace: str
) -> None:
    await create(kube, k8s_namespace, dataset("short-lived"))
    await wait_phase(kube, k8s_namespace, "short-lived", "READY")
    claim_path = f"/api/v1/namespaces/{k8s_namespace}/persistentvolumeclaims/short-lived"
    claim = await kube.get(claim_path)
    assert claim is not None
    volume_path = f"/api/v1/persistentvolumes/{claim['spec']['volumeName']}"

    started = time.monotonic()
    await kube.request("DELETE", f"{DATASETS}/namespaces/{k8s_namespace}/datasets/short-lived")

    async def gone(path: str) -> bool:
        return await kube.get(path) is None

    await eventually(lambda: gone(claim_path), 60, "the PVC deleted")
    TIMINGS["delete_to_pvc_gone"] = round(time.monotonic() - started, 1)
    await eventually(
        lambda: gone(f"{DATASETS}/namespaces/{k8s_namespace}/datasets/short-lived"),
        30,
        "the Dataset gone (finalizer lifted)",
    )
    await eventually(lambda: gone(volume_path), 60, "the released PV deleted by podsim")
    await eventually(
        lambda: _no_pods(kube, k8s_namespace, "dataset-short-lived-round-1"),
        60,
        "the loader Job's pods collected",
    )


async def test_deleting_a_dataset_while_its_loader_runs(kube: Kube, k8s_namespace: str) -> None:
    """No kubelet confirms a running Pod's deletion: podsim force-deletes it, and then the PVC
    (held by the PVC protection finalizer while the Pod uses it) goes too."""
    body = dataset("slow")
    body["metadata"]["annotations"] = {ANN_ROUND_DURATION: "10m"}
    await create(kube, k8s_namespace, body)

    async def running() -> bool:
        pods = await job_pods(kube, k8s_namespace, "dataset-slow-round-1")
        return any((p.get("status") or {}).get("phase") == "Running" for p in pods)

    await eventually(running, 60, "the loader Pod Running")
    await wait_phase(kube, k8s_namespace, "slow", "PROCESSING")
    await kube.request("DELETE", f"{DATASETS}/namespaces/{k8s_namespace}/datasets/slow")
    await eventually(
        lambda: _no_pods(kube, k8s_namespace, "dataset-slow-round-1"), 60, "the Pod deleted"
    )
    claim_path = f"/api/v1/namespaces/{k8s_namespace}/persistentvolumeclaims/slow"

    async def claim_gone() -> bool:
        return await kube.get(claim_path) is None

    await eventually(claim_gone, 60, "the PVC deleted")


async def _no_pods(kube: Kube, namespace: str, job: str) -> bool:
    with contextlib.suppress(ApiException):
        return not await job_pods(kube, namespace, job)
    return False


def test_engine_logs_name_both_parts(engine: DatasetEngine) -> None:
    text = engine.log_text()
    assert "===== dataset-controller" in text and "Starting workers" in text
    assert "===== podsim" in text and "ready: node modelfs-sim-node registered" in text
    assert Path(engine.config_path).read_text().count("backoffLimit: 0") == 1
