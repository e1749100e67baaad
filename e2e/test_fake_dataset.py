"""The fake Dataset controller on a real API server: what a modelfs test can observe of it."""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
from kubernetes.aio import client
from kubernetes.aio.client.exceptions import ApiException

from e2e.helpers import DATASET_GROUP, DATASET_PLURAL, DATASET_VERSION, dataset, eventually
from modelfs.testing.fake_dataset import (
    ANN_FAIL_ROUNDS,
    ANN_PENDING_DURATION,
    ANN_ROUND_DURATION,
    EVENT_CONCURRENT_ROUNDS,
    FINALIZER,
    NAME_LABEL,
    FakeDatasetController,
)
from modelfs.testing.fake_dataset.kube import Kube

pytestmark = pytest.mark.e2e
DS = (DATASET_GROUP, DATASET_VERSION)


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


class Phases:
    """Every phase a Dataset shows, in order, from a watch (nothing is missed between polls)."""

    def __init__(self) -> None:
        self.seen: list[str | None] = []
        self.last: dict[str, Any] = {}

    def add(self, obj: dict[str, Any]) -> None:
        self.last = obj
        phase = (obj.get("status") or {}).get("phase")
        if not self.seen or self.seen[-1] != phase:
            self.seen.append(phase)

    def since(self, phase: str | None) -> list[str | None]:
        index = len(self.seen) - 1 - self.seen[::-1].index(phase)
        return self.seen[index:]


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
    found: dict[str, Any] = await client.CustomObjectsApi(api).get_namespaced_custom_object(
        *DS, namespace, DATASET_PLURAL, name
    )
    return found


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
    return (await get_ds(api, namespace, name)).get("status", {}).get("phase") == phase


async def annotate_namespace(api: client.ApiClient, namespace: str, **annotations: str) -> None:
    await client.CoreV1Api(api).patch_namespace(
        namespace, {"metadata": {"annotations": annotations}}
    )


@contextlib.asynccontextmanager
async def extra_namespace(api: client.ApiClient, labels: dict[str, str]) -> AsyncIterator[str]:
    core = client.CoreV1Api(api)
    name = f"t-fake-extra-{uuid.uuid4().hex[:6]}"
    await core.create_namespace({"metadata": {"name": name, "labels": labels}})
    try:
        yield name
    finally:
        with contextlib.suppress(ApiException):
            await core.delete_namespace(name)


def conditions(ds: dict[str, Any]) -> dict[str, tuple[str, str, str]]:
    return {c["type"]: (c["status"], c["reason"], c["message"]) for c in ds["status"]["conditions"]}


# --------------------------------------------------------------------------- rounds


async def test_a_round_runs_pending_failed_processing_ready(
    fake_dataset: FakeDatasetController, k8s_api: client.ApiClient, k8s_namespace: str
) -> None:
    core, batch = client.CoreV1Api(k8s_api), client.BatchV1Api(k8s_api)
    labels = {"app.kubernetes.io/managed-by": "modelfs", "model.samzong.dev/model": "qwen"}
    annotations = {"example.com/note": "copied"}
    body = dataset("qwen-v1")
    body["metadata"].update(labels=labels, annotations=annotations, finalizers=["modelfs/keep"])
    async with record(k8s_api, k8s_namespace, "qwen-v1") as phases:
        await create_ds(k8s_api, k8s_namespace, body)
        await eventually(lambda: phase_is(k8s_api, k8s_namespace, "qwen-v1", "READY"), 20, "READY")
    # FACTS.md: FAILED shows briefly before the round's first Job exists
    assert [p for p in phases.seen if p] == ["FAILED", "PROCESSING", "READY"]

    ds = await get_ds(k8s_api, k8s_namespace, "qwen-v1")
    assert ds["metadata"]["finalizers"] == [FINALIZER]  # replaced, not appended
    status = ds["status"]
    assert status["lastSucceedRound"] == 1
    assert status["pvcName"] == "qwen-v1"
    assert status["lastSyncTime"]
    assert "inProcessing" not in status
    (entry,) = status["syncRoundStatuses"]
    assert entry["round"] == 1 and entry["jobName"] == "dataset-qwen-v1-round-1"
    assert entry["succeed"] is True and entry["startTime"] and entry["endTime"]
    assert conditions(ds) == {
        t: ("True", f"{t}Ready", "") for t in ("Config", "PVC", "ConfigMap", "Job", "JobStatus")
    }

    pvc = await core.read_namespaced_persistent_volume_claim("qwen-v1", k8s_namespace)
    assert pvc.metadata.labels == {**labels, NAME_LABEL: "qwen-v1"}
    assert annotations.items() <= pvc.metadata.annotations.items()
    assert pvc.spec.access_modes == ["ReadWriteMany"]
    assert pvc.spec.resources.requests["storage"] == "100Ti"
    assert pvc.status.phase == "Bound"
    pv = await core.read_persistent_volume(pvc.spec.volume_name)
    assert pv.spec.claim_ref.uid == pvc.metadata.uid and pv.status.phase == "Bound"
    assert pvc.metadata.owner_references[0].uid == ds["metadata"]["uid"]

    job = await batch.read_namespaced_job("dataset-qwen-v1-round-1", k8s_namespace)
    assert job.metadata.labels == {**labels, NAME_LABEL: "qwen-v1"}
    assert job.metadata.annotations == annotations
    assert {c.type for c in job.status.conditions} >= {"Complete"}
    assert job.status.succeeded == 1


async def test_raising_the_round_runs_another_round(
    fake_dataset: FakeDatasetController, k8s_api: client.ApiClient, k8s_namespace: str
) -> None:
    await create_ds(k8s_api, k8s_namespace, dataset("m"))
    await eventually(lambda: phase_is(k8s_api, k8s_namespace, "m", "READY"), 20, "READY")
    async with record(k8s_api, k8s_namespace, "m") as phases:
        await raise_round(k8s_api, k8s_namespace, "m", 2)

        async def round_two_ready() -> bool:
            status = (await get_ds(k8s_api, k8s_namespace, "m")).get("status", {})
            return status.get("phase") == "READY" and status.get("lastSucceedRound") == 2

        await eventually(round_two_ready, 20, "round 2 READY")
    assert phases.since("FAILED") == ["FAILED", "PROCESSING", "READY"]
    rounds = (await get_ds(k8s_api, k8s_namespace, "m"))["status"]["syncRoundStatuses"]
    assert [(r["round"], r["succeed"]) for r in rounds] == [(1, True), (2, True)]
    with pytest.raises(ApiException) as refused:  # the CRD: one round at a time
        await raise_round(k8s_api, k8s_namespace, "m", 4)
    assert refused.value.status == 422


async def test_a_failed_round_stays_failed_until_the_round_is_raised(
    fake_dataset: FakeDatasetController, k8s_api: client.ApiClient, k8s_namespace: str
) -> None:
    await annotate_namespace(k8s_api, k8s_namespace, **{ANN_FAIL_ROUNDS: "1"})
    await create_ds(k8s_api, k8s_namespace, dataset("m"))

    async def round_one_failed() -> bool:
        status = (await get_ds(k8s_api, k8s_namespace, "m")).get("status", {})
        rounds = status.get("syncRoundStatuses") or []
        return status.get("phase") == "FAILED" and [r["round"] for r in rounds] == [1]

    await eventually(round_one_failed, 20, "round 1 FAILED")
    failed = await get_ds(k8s_api, k8s_namespace, "m")
    (entry,) = failed["status"]["syncRoundStatuses"]
    assert "succeed" not in entry and "endTime" not in entry  # false / zero: omitted
    assert conditions(failed)["JobStatus"][0] == "True"  # the failure is in the round, not here
    await asyncio.sleep(1.5)  # nothing retries it
    again = await get_ds(k8s_api, k8s_namespace, "m")
    assert again["metadata"]["resourceVersion"] == failed["metadata"]["resourceVersion"]
    jobs = await client.BatchV1Api(k8s_api).list_namespaced_job(k8s_namespace)
    assert [j.metadata.name for j in jobs.items] == ["dataset-m-round-1"]
    failed_job = jobs.items[0]
    assert {c.type for c in failed_job.status.conditions} >= {"Failed"}

    await raise_round(k8s_api, k8s_namespace, "m", 2)
    await eventually(lambda: phase_is(k8s_api, k8s_namespace, "m", "READY"), 20, "round 2 READY")
    status = (await get_ds(k8s_api, k8s_namespace, "m"))["status"]
    assert status["lastSucceedRound"] == 2


async def test_dataset_annotations_win_over_the_namespace(
    fake_dataset: FakeDatasetController, k8s_api: client.ApiClient, k8s_namespace: str
) -> None:
    await annotate_namespace(
        k8s_api, k8s_namespace, **{ANN_FAIL_ROUNDS: "all", ANN_PENDING_DURATION: "1s"}
    )
    lucky = dataset("lucky")
    lucky["metadata"]["annotations"] = {ANN_FAIL_ROUNDS: ""}
    async with record(k8s_api, k8s_namespace, "lucky") as phases:
        await create_ds(k8s_api, k8s_namespace, lucky)
        await create_ds(k8s_api, k8s_namespace, dataset("unlucky"))
        await eventually(lambda: phase_is(k8s_api, k8s_namespace, "lucky", "READY"), 20, "READY")

        async def unlucky_failed() -> bool:
            status = (await get_ds(k8s_api, k8s_namespace, "unlucky")).get("status", {})
            return status.get("phase") == "FAILED" and bool(status.get("syncRoundStatuses"))

        await eventually(unlucky_failed, 20, "unlucky FAILED")
    assert [p for p in phases.seen if p] == ["PENDING", "FAILED", "PROCESSING", "READY"]
    # the real controller copies the Dataset's annotations, the fake's own ones too
    pvc = await client.CoreV1Api(k8s_api).read_namespaced_persistent_volume_claim(
        "lucky", k8s_namespace
    )
    assert pvc.metadata.annotations[ANN_FAIL_ROUNDS] == ""


async def test_a_bad_injection_annotation_is_a_config_condition(
    fake_dataset: FakeDatasetController, k8s_api: client.ApiClient, k8s_namespace: str
) -> None:
    body = dataset("m")
    body["metadata"]["annotations"] = {ANN_ROUND_DURATION: "soon"}
    await create_ds(k8s_api, k8s_namespace, body)
    await eventually(lambda: phase_is(k8s_api, k8s_namespace, "m", "FAILED"), 20, "FAILED")
    status, reason, message = conditions(await get_ds(k8s_api, k8s_namespace, "m"))["Config"]
    assert (status, reason) == ("False", "ConfigReady")
    assert ANN_ROUND_DURATION in message


async def test_concurrent_rounds_are_observable(
    fake_dataset: FakeDatasetController, k8s_api: client.ApiClient, k8s_namespace: str
) -> None:
    await annotate_namespace(k8s_api, k8s_namespace, **{ANN_ROUND_DURATION: "3s"})
    await create_ds(k8s_api, k8s_namespace, dataset("m"))
    await eventually(lambda: phase_is(k8s_api, k8s_namespace, "m", "PROCESSING"), 20, "PROCESSING")
    await raise_round(k8s_api, k8s_namespace, "m", 2)

    async def two_jobs() -> bool:
        jobs = await client.BatchV1Api(k8s_api).list_namespaced_job(k8s_namespace)
        return len(jobs.items) == 2

    await eventually(two_jobs, 20, "a second Job")

    async def concurrent_events() -> list[Any]:
        listed = await client.CoreV1Api(k8s_api).list_namespaced_event(
            k8s_namespace, field_selector=f"reason={EVENT_CONCURRENT_ROUNDS}"
        )
        return list(listed.items)

    async def posted() -> bool:  # the Event is written after the Job, not with it
        return bool(await concurrent_events())

    await eventually(posted, 20, "the ConcurrentRounds Event")
    (event,) = await concurrent_events()
    assert event.involved_object.name == "m" and event.type == "Warning"
    assert "dataset-m-round-1" in event.message

    async def round_two_ready() -> bool:
        status = (await get_ds(k8s_api, k8s_namespace, "m")).get("status", {})
        return status.get("phase") == "READY" and status.get("lastSucceedRound") == 2

    await eventually(round_two_ready, 20, "round 2 READY")
    rounds = (await get_ds(k8s_api, k8s_namespace, "m"))["status"]["syncRoundStatuses"]
    assert [r["round"] for r in rounds] == [1, 2]
    assert "endTime" not in rounds[0]  # round 1 was abandoned mid-way
    assert "CONCURRENT ROUNDS" in fake_dataset.log_text()


# --------------------------------------------------------------------------- deletion, idling


async def test_deleting_a_dataset_deletes_its_pvc_and_clears_the_finalizers(
    fake_dataset: FakeDatasetController, k8s_api: client.ApiClient, k8s_namespace: str
) -> None:
    core = client.CoreV1Api(k8s_api)
    await create_ds(k8s_api, k8s_namespace, dataset("m"))
    await eventually(lambda: phase_is(k8s_api, k8s_namespace, "m", "READY"), 20, "READY")
    custom = client.CustomObjectsApi(k8s_api)
    await custom.patch_namespaced_custom_object(
        *DS,
        k8s_namespace,
        DATASET_PLURAL,
        "m",
        {"metadata": {"finalizers": [FINALIZER, "modelfs/other"]}},
        _content_type="application/merge-patch+json",
    )
    volume = (await core.read_namespaced_persistent_volume_claim("m", k8s_namespace)).spec
    await custom.delete_namespaced_custom_object(*DS, k8s_namespace, DATASET_PLURAL, "m")

    async def gone() -> bool:
        names = await custom.list_namespaced_custom_object(*DS, k8s_namespace, DATASET_PLURAL)
        pvcs = await core.list_namespaced_persistent_volume_claim(k8s_namespace)
        pvs = await core.list_persistent_volume()
        return (
            not names["items"]
            and not pvcs.items
            and volume.volume_name not in {pv.metadata.name for pv in pvs.items}
        )

    await eventually(gone, 20, "Dataset, PVC and PV gone")  # every finalizer cleared


async def test_quiet_when_idle(
    fake_dataset: FakeDatasetController, k8s_api: client.ApiClient, k8s_namespace: str
) -> None:
    await create_ds(k8s_api, k8s_namespace, dataset("m"))
    await eventually(lambda: phase_is(k8s_api, k8s_namespace, "m", "READY"), 20, "READY")
    await asyncio.sleep(0.5)
    before = await get_ds(k8s_api, k8s_namespace, "m")
    pvc = await client.CoreV1Api(k8s_api).read_namespaced_persistent_volume_claim(
        "m", k8s_namespace
    )
    await asyncio.sleep(2)
    after = await get_ds(k8s_api, k8s_namespace, "m")
    pvc_after = await client.CoreV1Api(k8s_api).read_namespaced_persistent_volume_claim(
        "m", k8s_namespace
    )
    assert after["metadata"]["resourceVersion"] == before["metadata"]["resourceVersion"]
    assert pvc_after.metadata.resource_version == pvc.metadata.resource_version


# --------------------------------------------------------------------------- REFERENCE


def reference(name: str, source_ns: str, source: str = "model") -> dict[str, Any]:
    body = dataset(name, uri=f"dataset://{source_ns}/{source}")
    body["spec"]["source"]["type"] = "REFERENCE"
    return body


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
        return bool(pvc.spec.volume_name)

    await eventually(pvc_bound, 20, "source PVC bound")


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
        await eventually(lambda: phase_is(k8s_api, consumer, "ref", "READY"), 20, "ref READY")
        assert await phase_is(k8s_api, k8s_namespace, "model", "PROCESSING")  # the source
        ref = await get_ds(k8s_api, consumer, "ref")
        assert ref["status"]["readOnly"] is True
        assert ref["status"]["pvcName"] == "ref"
        assert conditions(ref)["Config"] == ("True", "ConfigReady", "")
        pvc = await core.read_namespaced_persistent_volume_claim("ref", consumer)
        uid = ref["metadata"]["uid"]
        assert pvc.spec.volume_name == f"dataset-{consumer}-ref-{uid[:12]}"

        async def bound() -> bool:
            claim = await core.read_namespaced_persistent_volume_claim("ref", consumer)
            return bool(claim.status.phase == "Bound")

        await eventually(bound, 20, "the reference PVC Bound")  # READY comes before binding
        clone = await core.read_persistent_volume(pvc.spec.volume_name)
        assert clone.spec.persistent_volume_reclaim_policy == "Retain"
        jobs = await client.BatchV1Api(k8s_api).list_namespaced_job(consumer)
        assert jobs.items == []  # no data is copied
        await client.CustomObjectsApi(k8s_api).delete_namespaced_custom_object(
            *DS, consumer, DATASET_PLURAL, "ref"
        )
        await core.delete_persistent_volume(pvc.spec.volume_name)  # Retain: left behind


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
        await eventually(lambda: phase_is(k8s_api, consumer, "ref", "FAILED"), 20, "ref FAILED")
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
    await eventually(lambda: phase_is(k8s_api, k8s_namespace, "ref", "FAILED"), 20, "FAILED")
    message = conditions(await get_ds(k8s_api, k8s_namespace, "ref"))["Config"][2]
    assert "nope" in message and "not found" in message


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
