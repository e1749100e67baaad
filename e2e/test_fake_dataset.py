"""The fake Dataset controller on a real API server: what a modelfs test can observe of it,
as docs/dataset-controller.md says the real controller does. It runs on the session's Dataset CRD
(`--dataset-controller`: the real controller's own CRD by default, the bundled test CRD with
`fake`): the fake must behave the same on both. `e2e/test_conformance.py` runs one scenario on
the fake and on the real controller and compares them.

Where the fake still runs, and why (everything else in `make test` runs on the real controller):
- this module and `e2e/test_conformance.py`: the fake is what they test;
- `make test-kind` (`--dataset-controller=fake`): on kind, the real controller's loader pods would
  really try to download the scenarios' made-up repositories, and fail;
- `benchmarks/operator_bench.py` (not a test): a thousand loader Jobs and their pods would measure
  the Job controller and the pod simulator rather than the operator;
- `modelfs sandbox --dataset-controller=fake` and `pytest --dataset-controller=fake`, on request.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from kubernetes.aio import client
from kubernetes.aio.client.exceptions import ApiException

from e2e.helpers import (
    DATASET_GROUP,
    DATASET_PLURAL,
    DATASET_VERSION,
    custom_object,
    dataset,
    eventually,
    wire,
)
from modelfs.testing.fake_dataset import (
    ANN_FAIL_ROUNDS,
    ANN_ROUND_DURATION,
    FINALIZER,
    NAME_LABEL,
    FakeDatasetController,
)
from modelfs.testing.fake_dataset.kube import Kube

pytestmark = pytest.mark.e2e
DS = (DATASET_GROUP, DATASET_VERSION)
ORDER = ["PVC", "ConfigMap", "Job", "JobStatus", "Config"]


@pytest.fixture(scope="module")
def fake_dataset(
    dataset_crd: str, k8s_kubeconfig: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[FakeDatasetController]:
    """The fake Dataset controller, cluster-wide, with the near-instant test timings, as a child
    process for the module. Its log: `fake_dataset.log_text()`."""
    log = tmp_path_factory.mktemp("fake-dataset") / "fake-dataset.log"
    with FakeDatasetController(k8s_kubeconfig, log_path=log) as fake:
        yield fake
        assert fake.alive(), f"the fake died:\n{fake.log_text()[-3000:]}"
        assert "Traceback" not in fake.log_text(), fake.log_text()[-3000:]


@dataclass
class Seen:
    """One version of the Dataset, as a watch delivered it."""

    at: float
    phase: str | None
    conditions: list[dict[str, Any]]
    obj: dict[str, Any]


@dataclass
class Phases:
    """Every version of a Dataset, in order, from a watch (nothing is missed between polls)."""

    versions: list[Seen] = field(default_factory=list)

    def add(self, obj: dict[str, Any]) -> None:
        status = obj.get("status") or {}
        self.versions.append(
            Seen(time.monotonic(), status.get("phase"), list(status.get("conditions") or []), obj)
        )

    @property
    def seen(self) -> list[str | None]:
        """The phases, consecutive repeats merged."""
        phases: list[str | None] = []
        for version in self.versions:
            if not phases or phases[-1] != version.phase:
                phases.append(version.phase)
        return phases

    def since(self, phase: str | None) -> list[str | None]:
        index = len(self.seen) - 1 - self.seen[::-1].index(phase)
        return self.seen[index:]

    def first(self, phase: str) -> float:
        return next(v.at for v in self.versions if v.phase == phase)

    def job_status_false(self) -> list[tuple[str | None, str]]:
        """(phase, message) of every version whose JobStatus condition is False."""
        return [
            (v.phase, c["message"])
            for v in self.versions
            for c in v.conditions
            if c["type"] == "JobStatus" and c["status"] == "False"
        ]


@contextlib.asynccontextmanager
async def record(api: client.ApiClient, namespace: str, name: str) -> AsyncIterator[Phases]:
    kube, phases = Kube(api), Phases()
    path = f"/apis/{DATASET_GROUP}/{DATASET_VERSION}/namespaces/{namespace}/{DATASET_PLURAL}"
    version = (await kube.request("GET", path))["metadata"]["resourceVersion"]

    async def follow() -> None:
        nonlocal version
        while True:
            async for event in kube.watch(path, version):
                obj = event["object"]
                version = obj["metadata"]["resourceVersion"]
                if event["type"] in ("ADDED", "MODIFIED") and obj["metadata"]["name"] == name:
                    phases.add(obj)

    task = asyncio.create_task(follow())
    try:
        yield phases
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


async def get_ds(api: client.ApiClient, namespace: str, name: str) -> dict[str, Any]:
    return custom_object(
        await client.CustomObjectsApi(api).get_namespaced_custom_object(
            *DS, namespace, DATASET_PLURAL, name
        )
    )


async def create_ds(api: client.ApiClient, namespace: str, body: dict[str, Any]) -> None:
    await client.CustomObjectsApi(api).create_namespaced_custom_object(
        *DS, namespace, DATASET_PLURAL, body
    )


async def raise_round(api: client.ApiClient, namespace: str, name: str, to: int) -> None:
    await client.CustomObjectsApi(api).patch_namespaced_custom_object(
        *DS,
        namespace,
        DATASET_PLURAL,
        name,
        {"spec": {"dataSyncRound": to}},
        _content_type="application/merge-patch+json",
    )


async def phase_is(api: client.ApiClient, namespace: str, name: str, phase: str) -> bool:
    return bool((await get_ds(api, namespace, name)).get("status", {}).get("phase") == phase)


async def round_ready(api: client.ApiClient, namespace: str, name: str, round_: int) -> bool:
    status = (await get_ds(api, namespace, name)).get("status", {})
    return bool(status.get("phase") == "READY" and status.get("lastSucceedRound") == round_)


async def annotate_namespace(api: client.ApiClient, namespace: str, **annotations: str) -> None:
    await client.CoreV1Api(api).patch_namespace(
        namespace, {"metadata": {"annotations": annotations}}
    )


@contextlib.asynccontextmanager
async def extra_namespace(api: client.ApiClient, labels: dict[str, str]) -> AsyncIterator[str]:
    core = client.CoreV1Api(api)
    name = f"t-fake-extra-{uuid.uuid4().hex[:6]}"
    await core.create_namespace(
        client.V1Namespace(metadata=client.V1ObjectMeta(name=name, labels=labels))
    )
    try:
        yield name
    finally:
        with contextlib.suppress(ApiException):
            await core.delete_namespace(name)


def conditions(ds: dict[str, Any]) -> dict[str, tuple[str, str, str]]:
    return {c["type"]: (c["status"], c["reason"], c["message"]) for c in ds["status"]["conditions"]}


# --------------------------------------------------------------------------- rounds


async def test_a_round_runs_processing_then_ready_as_measured(
    fake_dataset: FakeDatasetController, k8s_api: client.ApiClient, k8s_namespace: str
) -> None:
    core, batch = client.CoreV1Api(k8s_api), client.BatchV1Api(k8s_api)
    labels = {"app.kubernetes.io/managed-by": "modelfs", "model.samzong.dev/model": "qwen"}
    annotations = {"example.com/note": "copied"}
    body = dataset("qwen-v1", secretRef="hf-token")
    body["spec"]["source"]["options"] = {"repoType": "MODEL", "include": "*.json"}
    body["metadata"].update(labels=labels, annotations=annotations, finalizers=["modelfs/keep"])
    async with record(k8s_api, k8s_namespace, "qwen-v1") as phases:
        await create_ds(k8s_api, k8s_namespace, body)
        await eventually(lambda: phase_is(k8s_api, k8s_namespace, "qwen-v1", "READY"), 30, "READY")
    # no status -> PROCESSING -> READY: never PENDING, never a transient FAILED
    assert phases.seen == [None, "PROCESSING", "READY"]
    # a Job of 0.3 s, but Jobs are not watched: READY at the next 5 s poll
    assert phases.first("READY") - phases.first("PROCESSING") > 4
    first = next(v for v in phases.versions if v.phase == "PROCESSING")
    assert [c["type"] for c in first.conditions] == ORDER[:4]  # Config lost by the Update
    assert phases.job_status_false()[0] == (
        "PROCESSING",
        'Job.batch "dataset-qwen-v1-round-1" not found',
    )

    ds = await get_ds(k8s_api, k8s_namespace, "qwen-v1")
    assert ds["metadata"]["finalizers"] == [FINALIZER]  # replaced, not appended
    # the spec write-back of the finalizer's full Update
    spec = ds["spec"]
    assert spec["volumeClaimTemplate"] == {"metadata": {}, "spec": {"resources": {}}, "status": {}}
    assert spec["mountOptions"] == {"path": "/", "mode": "0774", "uid": 1000, "gid": 1000}
    assert spec.get("resources", {}) == {}  # written; pruned by v0.1.6's CRD
    status = ds["status"]
    assert status["lastSucceedRound"] == 1
    assert status["pvcName"] == "qwen-v1"
    assert status["lastSyncTime"]
    assert "inProcessing" not in status
    (entry,) = status["syncRoundStatuses"]
    assert entry["round"] == 1 and entry["jobName"] == "dataset-qwen-v1-round-1"
    assert entry["succeed"] is True and entry["startTime"] and entry["endTime"]
    assert [c["type"] for c in status["conditions"]] == ORDER
    assert conditions(ds) == {t: ("True", f"{t}Ready", "") for t in ORDER}

    pvc = wire(await core.read_namespaced_persistent_volume_claim("qwen-v1", k8s_namespace))
    assert pvc["metadata"]["labels"] == {**labels, NAME_LABEL: "qwen-v1"}
    assert NAME_LABEL == "baize.io/dataset-name"
    assert annotations.items() <= pvc["metadata"]["annotations"].items()
    assert pvc["spec"]["accessModes"] == ["ReadWriteMany"]
    assert pvc["spec"]["resources"]["requests"]["storage"] == "100Ti"
    assert pvc["status"]["phase"] == "Bound"
    assert pvc["metadata"]["ownerReferences"][0]["uid"] == ds["metadata"]["uid"]

    job = wire(await batch.read_namespaced_job("dataset-qwen-v1-round-1", k8s_namespace))
    assert job["metadata"]["labels"] == {**labels, NAME_LABEL: "qwen-v1"}
    assert job["metadata"]["annotations"] == annotations
    assert job["spec"]["backoffLimit"] == 4
    assert job["spec"]["template"]["spec"]["securityContext"]["runAsUser"] == 0
    (container,) = job["spec"]["template"]["spec"]["containers"]
    assert container["image"] == "ghcr.io/baizeai/dataset-data-loader:0.1.0"
    assert container["command"] == ["/usr/local/bin/data-loader"]
    assert container["resources"]["requests"] == {"cpu": "2", "memory": "2Gi"}
    assert container["resources"]["limits"] == {"cpu": "4", "memory": "8Gi"}
    assert set(container["args"]) == {
        "HUGGING_FACE",
        "huggingface://org/model",
        "--options=repoType=MODEL",
        "--options=include=*.json",
        "--mount-path=/",
        "--mount-mode=0774",
        "--mount-uid=1000",
        "--mount-gid=1000",
        "--mount-root=/baize/dataset/data",
    }
    mounts = {
        m["name"]: (m["mountPath"], bool(m.get("readOnly"))) for m in container["volumeMounts"]
    }
    assert mounts == {
        "dataset-secret": ("/run/dataset/secrets", True),
        "dataset-pvc": ("/baize/dataset/data", False),
    }
    assert {c["type"] for c in job["status"]["conditions"]} >= {"Complete"}
    assert job["status"]["succeeded"] == 1
    # the real controller records no Events
    events = await core.list_namespaced_event(k8s_namespace)
    assert not [e for e in events.items if e.involved_object.kind == "Dataset"]


async def test_raising_the_round_runs_another_round_with_a_brief_false_jobstatus(
    fake_dataset: FakeDatasetController, k8s_api: client.ApiClient, k8s_namespace: str
) -> None:
    await create_ds(k8s_api, k8s_namespace, dataset("m"))
    await eventually(lambda: phase_is(k8s_api, k8s_namespace, "m", "READY"), 30, "READY")
    async with record(k8s_api, k8s_namespace, "m") as phases:
        await raise_round(k8s_api, k8s_namespace, "m", 2)
        await eventually(lambda: round_ready(k8s_api, k8s_namespace, "m", 2), 30, "round 2")
    assert phases.since("READY") == ["READY"]
    assert phases.seen[-3:] == ["READY", "PROCESSING", "READY"]
    assert "FAILED" not in phases.seen
    assert phases.job_status_false() == [("PROCESSING", 'Job.batch "dataset-m-round-2" not found')]
    ds = await get_ds(k8s_api, k8s_namespace, "m")
    assert [c["type"] for c in ds["status"]["conditions"]] == ORDER
    rounds = ds["status"]["syncRoundStatuses"]
    assert [(r["round"], r["succeed"]) for r in rounds] == [(1, True), (2, True)]
    with pytest.raises(ApiException) as refused:  # the CRD: one round at a time
        await raise_round(k8s_api, k8s_namespace, "m", 4)
    assert refused.value.status == 422


async def test_a_failed_round_stays_failed_with_no_reason_until_the_round_is_raised(
    fake_dataset: FakeDatasetController, k8s_api: client.ApiClient, k8s_namespace: str
) -> None:
    await annotate_namespace(k8s_api, k8s_namespace, **{ANN_FAIL_ROUNDS: "1"})
    async with record(k8s_api, k8s_namespace, "m") as phases:
        await create_ds(k8s_api, k8s_namespace, dataset("m"))
        await eventually(lambda: phase_is(k8s_api, k8s_namespace, "m", "FAILED"), 30, "FAILED")
    assert phases.seen == [None, "PROCESSING", "FAILED"]
    failed = await get_ds(k8s_api, k8s_namespace, "m")
    (entry,) = failed["status"]["syncRoundStatuses"]
    assert "succeed" not in entry and "endTime" not in entry  # false / zero: omitted
    # no False condition, no message: the Job's failure reason is copied nowhere
    assert conditions(failed) == {t: ("True", f"{t}Ready", "") for t in ORDER}
    await asyncio.sleep(6)  # longer than a poll: nothing retries it
    again = await get_ds(k8s_api, k8s_namespace, "m")
    assert again["metadata"]["resourceVersion"] == failed["metadata"]["resourceVersion"]
    jobs = await client.BatchV1Api(k8s_api).list_namespaced_job(k8s_namespace)
    assert [wire(j)["metadata"]["name"] for j in jobs.items] == ["dataset-m-round-1"]
    assert {c["type"] for c in wire(jobs.items[0])["status"]["conditions"]} >= {"Failed"}

    await raise_round(k8s_api, k8s_namespace, "m", 2)
    await eventually(lambda: round_ready(k8s_api, k8s_namespace, "m", 2), 30, "round 2 READY")


async def test_dataset_annotations_win_over_the_namespace(
    fake_dataset: FakeDatasetController, k8s_api: client.ApiClient, k8s_namespace: str
) -> None:
    await annotate_namespace(k8s_api, k8s_namespace, **{ANN_FAIL_ROUNDS: "all"})
    lucky = dataset("lucky")
    lucky["metadata"]["annotations"] = {ANN_FAIL_ROUNDS: ""}
    async with record(k8s_api, k8s_namespace, "lucky") as phases:
        await create_ds(k8s_api, k8s_namespace, lucky)
        await create_ds(k8s_api, k8s_namespace, dataset("unlucky"))
        await eventually(lambda: phase_is(k8s_api, k8s_namespace, "lucky", "READY"), 30, "READY")

        async def unlucky_failed() -> bool:
            status = (await get_ds(k8s_api, k8s_namespace, "unlucky")).get("status", {})
            return status.get("phase") == "FAILED" and bool(status.get("syncRoundStatuses"))

        await eventually(unlucky_failed, 30, "unlucky FAILED")
    assert phases.seen == [None, "PROCESSING", "READY"]
    # the real controller copies the Dataset's annotations, the injection ones too
    batch = client.BatchV1Api(k8s_api)
    job = wire(await batch.read_namespaced_job("dataset-lucky-round-1", k8s_namespace))
    assert job["metadata"]["annotations"][ANN_FAIL_ROUNDS] == ""


async def test_a_bad_injection_annotation_is_ignored_with_a_warning(
    fake_dataset: FakeDatasetController, k8s_api: client.ApiClient, k8s_namespace: str
) -> None:
    """As the pod simulator of the real engine does: the next source (here the Namespace's)
    applies, and the log says so."""
    await annotate_namespace(k8s_api, k8s_namespace, **{ANN_FAIL_ROUNDS: "all"})
    body = dataset("m")
    body["metadata"]["annotations"] = {ANN_FAIL_ROUNDS: "sometimes"}
    await create_ds(k8s_api, k8s_namespace, body)
    await eventually(lambda: phase_is(k8s_api, k8s_namespace, "m", "FAILED"), 30, "FAILED")
    assert f"annotation {ANN_FAIL_ROUNDS}" in fake_dataset.log_text()


async def test_concurrent_rounds_run_side_by_side_silently(
    fake_dataset: FakeDatasetController, k8s_api: client.ApiClient, k8s_namespace: str
) -> None:
    await annotate_namespace(k8s_api, k8s_namespace, **{ANN_ROUND_DURATION: "4s"})
    await create_ds(k8s_api, k8s_namespace, dataset("m"))

    async def raise_while_round_1_runs() -> bool:
        """Raise to round 2 once the Dataset shows round 1 recorded and still running, and
        only onto that very version (resourceVersion precondition). PROCESSING alone is not
        enough: the reconcile that creates round 1's Job writes PROCESSING with no
        syncRoundStatuses entry (the Job is not in the cache yet); the entry comes with the
        next reconcile, and a raise that lands first skips round 1's entry for good, as on the
        real controller (docs/dataset-controller.md#rounds)."""
        ds = await get_ds(k8s_api, k8s_namespace, "m")
        status = ds.get("status", {})
        rounds = {r["round"]: r for r in status.get("syncRoundStatuses") or []}
        in_round_1 = status.get("phase") == "PROCESSING" and status.get("inProcessingRound") == 1
        if not (in_round_1 and 1 in rounds and "endTime" not in rounds[1]):
            return False
        try:
            await client.CustomObjectsApi(k8s_api).patch_namespaced_custom_object(
                *DS,
                k8s_namespace,
                DATASET_PLURAL,
                "m",
                {
                    "metadata": {"resourceVersion": ds["metadata"]["resourceVersion"]},
                    "spec": {"dataSyncRound": 2},
                },
                _content_type="application/merge-patch+json",
            )
        except ApiException as error:
            if error.status == 409:  # the Dataset changed since: look again
                return False
            raise
        return True

    await eventually(raise_while_round_1_runs, 30, "round 2 raised while round 1 runs")

    async def two_jobs() -> bool:
        jobs = await client.BatchV1Api(k8s_api).list_namespaced_job(k8s_namespace)
        return len(jobs.items) == 2

    await eventually(two_jobs, 20, "a second Job")
    await eventually(lambda: round_ready(k8s_api, k8s_namespace, "m", 2), 30, "round 2 READY")
    rounds = (await get_ds(k8s_api, k8s_namespace, "m"))["status"]["syncRoundStatuses"]
    assert [r["round"] for r in rounds] == [1, 2]
    assert "endTime" not in rounds[0]  # round 1 was abandoned mid-way
    events = await client.CoreV1Api(k8s_api).list_namespaced_event(k8s_namespace)
    assert not [e for e in events.items if e.involved_object.kind == "Dataset"]


# --------------------------------------------------------------------------- types without a Job


def typed(name: str, type_: str, uri: str, **spec: Any) -> dict[str, Any]:
    body = dataset(name, uri=uri, **spec)
    body["spec"]["source"]["type"] = type_
    return body


async def test_a_pvc_dataset_is_ready_whatever_its_claim_and_round(
    fake_dataset: FakeDatasetController, k8s_api: client.ApiClient, k8s_namespace: str
) -> None:
    core = client.CoreV1Api(k8s_api)
    await create_ds(k8s_api, k8s_namespace, typed("vol", "PVC", "pvc://claim/models"))
    await eventually(lambda: phase_is(k8s_api, k8s_namespace, "vol", "READY"), 30, "READY")
    ds = await get_ds(k8s_api, k8s_namespace, "vol")
    assert conditions(ds)["PVC"] == ("False", "PVCReady", 'PersistentVolumeClaim "claim" not found')
    claim = client.V1PersistentVolumeClaim.model_validate(
        {
            "metadata": {"name": "claim"},
            "spec": {
                "accessModes": ["ReadWriteOnce"],
                "resources": {"requests": {"storage": "1Gi"}},
            },
        }
    )
    await core.create_namespaced_persistent_volume_claim(k8s_namespace, claim)
    await raise_round(k8s_api, k8s_namespace, "vol", 2)  # the controller watches no PVC

    async def adopted() -> bool:
        pvc = wire(await core.read_namespaced_persistent_volume_claim("claim", k8s_namespace))
        return bool(pvc["metadata"].get("labels", {}).get(NAME_LABEL) == "vol")

    await eventually(adopted, 30, "the claim labelled")
    await eventually(
        lambda: phase_is(k8s_api, k8s_namespace, "vol", "READY"), 30, "READY after the raise"
    )
    ds = await get_ds(k8s_api, k8s_namespace, "vol")
    assert ds["status"]["pvcName"] == "claim"
    assert "lastSucceedRound" not in ds["status"]  # never set for PVC: READY all the same
    jobs = await client.BatchV1Api(k8s_api).list_namespaced_job(k8s_namespace)
    assert jobs.items == []


async def test_an_nfs_dataset_succeeds_every_round_at_once(
    fake_dataset: FakeDatasetController, k8s_api: client.ApiClient, k8s_namespace: str
) -> None:
    core = client.CoreV1Api(k8s_api)
    await create_ds(k8s_api, k8s_namespace, typed("share", "NFS", "nfs://10.0.0.1/exports/m"))
    await eventually(lambda: round_ready(k8s_api, k8s_namespace, "share", 1), 30, "READY")
    pv_name = f"dataset-{k8s_namespace}-pvc-share"
    pv = wire(await core.read_persistent_volume(pv_name))
    assert pv["metadata"]["labels"] == {NAME_LABEL: "share"}
    assert pv["spec"]["csi"]["volumeAttributes"]["subdir"] == "/exports/m"
    pvc = wire(await core.read_namespaced_persistent_volume_claim("share", k8s_namespace))
    assert (pvc["spec"]["storageClassName"], pvc["spec"]["volumeName"]) == ("nfs-csi", pv_name)
    await raise_round(k8s_api, k8s_namespace, "share", 2)
    await eventually(lambda: round_ready(k8s_api, k8s_namespace, "share", 2), 30, "round 2")
    jobs = await client.BatchV1Api(k8s_api).list_namespaced_job(k8s_namespace)
    assert jobs.items == []
    await client.CustomObjectsApi(k8s_api).delete_namespaced_custom_object(
        *DS, k8s_namespace, DATASET_PLURAL, "share"
    )

    async def pv_gone() -> bool:
        pvs = (await core.list_persistent_volume()).items
        return pv_name not in {wire(p)["metadata"]["name"] for p in pvs}

    await eventually(pv_gone, 30, "the NFS PV deleted with its Dataset")


# --------------------------------------------------------------------------- deletion, idling


async def test_deleting_a_dataset_deletes_its_pvc_and_clears_the_finalizers(
    fake_dataset: FakeDatasetController, k8s_api: client.ApiClient, k8s_namespace: str
) -> None:
    core = client.CoreV1Api(k8s_api)
    await create_ds(k8s_api, k8s_namespace, dataset("m"))
    await eventually(lambda: phase_is(k8s_api, k8s_namespace, "m", "READY"), 30, "READY")
    custom = client.CustomObjectsApi(k8s_api)
    await custom.patch_namespaced_custom_object(
        *DS,
        k8s_namespace,
        DATASET_PLURAL,
        "m",
        {"metadata": {"finalizers": [FINALIZER, "modelfs/other"]}},
        _content_type="application/merge-patch+json",
    )
    pvc = wire(await core.read_namespaced_persistent_volume_claim("m", k8s_namespace))
    await custom.delete_namespaced_custom_object(*DS, k8s_namespace, DATASET_PLURAL, "m")

    async def gone() -> bool:
        names = await custom.list_namespaced_custom_object(*DS, k8s_namespace, DATASET_PLURAL)
        pvcs = await core.list_namespaced_persistent_volume_claim(k8s_namespace)
        pvs = await core.list_persistent_volume()
        return (
            not custom_object(names)["items"]
            and not pvcs.items
            and pvc["spec"]["volumeName"] not in {wire(pv)["metadata"]["name"] for pv in pvs.items}
        )

    await eventually(gone, 30, "Dataset, PVC and PV gone")  # every finalizer cleared


async def test_quiet_when_idle(
    fake_dataset: FakeDatasetController, k8s_api: client.ApiClient, k8s_namespace: str
) -> None:
    await create_ds(k8s_api, k8s_namespace, dataset("m"))
    await eventually(lambda: phase_is(k8s_api, k8s_namespace, "m", "READY"), 30, "READY")
    await asyncio.sleep(0.5)
    before = await get_ds(k8s_api, k8s_namespace, "m")
    core = client.CoreV1Api(k8s_api)
    pvc = wire(await core.read_namespaced_persistent_volume_claim("m", k8s_namespace))
    await asyncio.sleep(6)  # longer than a poll
    after = await get_ds(k8s_api, k8s_namespace, "m")
    pvc_after = wire(await core.read_namespaced_persistent_volume_claim("m", k8s_namespace))
    assert after["metadata"]["resourceVersion"] == before["metadata"]["resourceVersion"]
    assert pvc_after["metadata"]["resourceVersion"] == pvc["metadata"]["resourceVersion"]


# --------------------------------------------------------------------------- REFERENCE


def reference(name: str, source_ns: str, source: str = "model") -> dict[str, Any]:
    return typed(name, "REFERENCE", f"dataset://{source_ns}/{source}")


async def shared_source(
    api: client.ApiClient, namespace: str, selector: dict[str, Any] | None, share: bool = True
) -> None:
    spec: dict[str, Any] = {"share": share}
    if selector is not None:
        spec["shareToNamespaceSelector"] = selector
    await create_ds(api, namespace, dataset("model", **spec))

    async def pvc_bound() -> bool:
        status = (await get_ds(api, namespace, "model")).get("status", {})
        if not status.get("pvcName"):
            return False
        pvc = await client.CoreV1Api(api).read_namespaced_persistent_volume_claim(
            status["pvcName"], namespace
        )
        return bool(wire(pvc)["spec"].get("volumeName"))

    await eventually(pvc_bound, 30, "source PVC bound")


SELECTOR = {
    "matchLabels": {"modelfs.test/tier": "consumer"},
    "matchExpressions": [
        {"key": "modelfs.test/env", "operator": "In", "values": ["dev", "prod"]},
        {"key": "modelfs.test/blocked", "operator": "DoesNotExist"},
    ],
}


async def test_reference_is_ready_without_waiting_for_the_source(
    fake_dataset: FakeDatasetController, k8s_api: client.ApiClient, k8s_namespace: str
) -> None:
    core = client.CoreV1Api(k8s_api)
    await annotate_namespace(k8s_api, k8s_namespace, **{ANN_ROUND_DURATION: "20s"})
    await shared_source(k8s_api, k8s_namespace, SELECTOR)
    labels = {"modelfs.test/tier": "consumer", "modelfs.test/env": "dev"}
    async with extra_namespace(k8s_api, labels) as consumer:
        await create_ds(k8s_api, consumer, reference("ref", k8s_namespace))
        await eventually(lambda: phase_is(k8s_api, consumer, "ref", "READY"), 30, "ref READY")
        assert await phase_is(k8s_api, k8s_namespace, "model", "PROCESSING")  # the source
        ref = await get_ds(k8s_api, consumer, "ref")
        assert ref["status"]["readOnly"] is True
        assert ref["status"]["pvcName"] == "ref"
        assert conditions(ref)["Config"] == ("True", "ConfigReady", "")
        pvc = wire(await core.read_namespaced_persistent_volume_claim("ref", consumer))
        uid = ref["metadata"]["uid"]
        volume: str = pvc["spec"]["volumeName"]
        assert volume == f"dataset-{consumer}-ref-{uid[:12]}"

        async def bound() -> bool:
            claim = wire(await core.read_namespaced_persistent_volume_claim("ref", consumer))
            return bool(claim.get("status", {}).get("phase") == "Bound")

        await eventually(bound, 30, "the reference PVC Bound")  # READY comes before binding
        clone = wire(await core.read_persistent_volume(volume))
        assert clone["spec"]["persistentVolumeReclaimPolicy"] == "Retain"
        jobs = await client.BatchV1Api(k8s_api).list_namespaced_job(consumer)
        assert jobs.items == []  # no data is copied
        await client.CustomObjectsApi(k8s_api).delete_namespaced_custom_object(
            *DS, consumer, DATASET_PLURAL, "ref"
        )
        await core.delete_persistent_volume(volume)  # Retain: left behind


@pytest.mark.parametrize(
    ("share", "labels", "message"),
    [
        (False, {"modelfs.test/tier": "consumer", "modelfs.test/env": "dev"}, "is not shared"),
        (True, {"modelfs.test/tier": "consumer", "modelfs.test/env": "qa"}, "is not shared to"),
        (
            True,
            {
                "modelfs.test/tier": "consumer",
                "modelfs.test/env": "dev",
                "modelfs.test/blocked": "",
            },
            "is not shared to",
        ),
    ],
)
async def test_reference_refused(
    fake_dataset: FakeDatasetController,
    k8s_api: client.ApiClient,
    k8s_namespace: str,
    share: bool,
    labels: dict[str, str],
    message: str,
) -> None:
    await shared_source(k8s_api, k8s_namespace, SELECTOR, share=share)
    async with extra_namespace(k8s_api, labels) as consumer:
        await create_ds(k8s_api, consumer, reference("ref", k8s_namespace))
        await eventually(lambda: phase_is(k8s_api, consumer, "ref", "FAILED"), 30, "ref FAILED")
        ref = await get_ds(k8s_api, consumer, "ref")
        status, reason, text = conditions(ref)["Config"]
        assert (status, reason) == ("False", "ConfigReady")
        assert text == f"source dataset dataset://{k8s_namespace}/model {message}" + (
            " current namespace" if message.endswith("to") else ""
        )
        pvcs = await client.CoreV1Api(k8s_api).list_namespaced_persistent_volume_claim(consumer)
        assert pvcs.items == []
        await client.CustomObjectsApi(k8s_api).delete_namespaced_custom_object(
            *DS, consumer, DATASET_PLURAL, "ref"
        )


async def test_reference_to_a_missing_dataset_fails(
    fake_dataset: FakeDatasetController, k8s_api: client.ApiClient, k8s_namespace: str
) -> None:
    await create_ds(k8s_api, k8s_namespace, reference("ref", k8s_namespace, "nope"))
    await eventually(lambda: phase_is(k8s_api, k8s_namespace, "ref", "FAILED"), 30, "FAILED")
    message = conditions(await get_ds(k8s_api, k8s_namespace, "ref"))["Config"][2]
    assert message == (
        f"fetch source dataset dataset://{k8s_namespace}/nope error: "
        'Dataset.dataset.baizeai.io "nope" not found'
    )


async def test_a_raised_reference_turns_failed_for_good(
    fake_dataset: FakeDatasetController, k8s_api: client.ApiClient, k8s_namespace: str
) -> None:
    await shared_source(k8s_api, k8s_namespace, None)
    await create_ds(k8s_api, k8s_namespace, reference("ref", k8s_namespace))
    await eventually(lambda: round_ready(k8s_api, k8s_namespace, "ref", 1), 30, "ref READY")
    await raise_round(k8s_api, k8s_namespace, "ref", 2)
    await eventually(lambda: phase_is(k8s_api, k8s_namespace, "ref", "FAILED"), 30, "FAILED")
    await asyncio.sleep(6)  # longer than a poll: it stays so, and says nothing
    ref = await get_ds(k8s_api, k8s_namespace, "ref")
    assert ref["status"]["phase"] == "FAILED" and ref["status"]["lastSucceedRound"] == 1
    assert all(status == "True" for status, _, _ in conditions(ref).values())
    pvc = wire(
        await client.CoreV1Api(k8s_api).read_namespaced_persistent_volume_claim(
            "ref", k8s_namespace
        )
    )
    await client.CustomObjectsApi(k8s_api).delete_namespaced_custom_object(
        *DS, k8s_namespace, DATASET_PLURAL, "ref"
    )
    await eventually(
        lambda: _gone(k8s_api, k8s_namespace, "ref"), 30, "the reference Dataset deleted"
    )
    await client.CoreV1Api(k8s_api).delete_persistent_volume(pvc["spec"]["volumeName"])  # Retain


async def _gone(api: client.ApiClient, namespace: str, name: str) -> bool:
    listed = await client.CustomObjectsApi(api).list_namespaced_custom_object(
        *DS, namespace, DATASET_PLURAL
    )
    return name not in {d["metadata"]["name"] for d in custom_object(listed)["items"]}


# --------------------------------------------------------------------------- the process


async def test_the_process_stops_cleanly_on_sigterm(
    dataset_crd: str, k8s_kubeconfig: Path, tmp_path: Path, k8s_namespace: str
) -> None:
    fake = FakeDatasetController(
        k8s_kubeconfig, namespaces=[k8s_namespace], log_path=tmp_path / "fake.log"
    )
    started = time.monotonic()
    async with fake:
        assert fake.alive()
        process = fake.process
        assert process is not None
    assert time.monotonic() - started < 15
    assert process.returncode == 0
    assert "SIGTERM received: stopping" in fake.log_text()
    assert "fake Dataset controller stopped" in fake.log_text()
    assert f"namespaces {k8s_namespace}" in fake.log_text()
