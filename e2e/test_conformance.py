"""Conformance: the fake Dataset controller does what the real one (BaizeAI/dataset v0.1.6 with
the pod simulator, `modelfs.testing.dataset_engine`) does, as far as an operator can observe it.

One scenario runs on each controller in turn, whatever `--dataset-controller` says: the fake
first, in a namespace of its own, then the real one in another, each started for its run and
stopped (after deleting its Datasets) before the other starts. Both run on the real CRD (the
one of the controller's Go module): the fake must work with it, and one schema means that the
spec write-back compares like with like. The session's Dataset CRD is put back afterwards.

The scenario: a Hugging Face Dataset with labels, annotations, a Secret, options (one with
whitespace), a claim template and `share: false`, raised to round 2; an S3 Dataset whose first
round fails; a CONDA Dataset (its ConfigMap); an NFS Dataset raised to round 2; a PVC Dataset
whose claim does not exist; a REFERENCE Dataset to a shared source, raised to round 2; then
every Dataset deleted. What is compared (`observe()` -> `Observation`, normalised: no
timestamps, uids or resourceVersions, `<ns>` for the namespace):

- the phases of each Dataset, in order, from a watch (no status -> PROCESSING -> READY, ...);
- the condition types, in order, when first PROCESSING and at the end; every condition's
  status, reason and message at the end;
- the brief `JobStatus=False` (`Job.batch "..." not found`, while PROCESSING) of a new round:
  the fake shows it for every Job it creates; the real controller only when its informer
  cache has not yet seen the Job it has just created (a race: 1 Job in 5 in a run here), so
  what the real one shows must be a subset of what the fake shows;
- the whole stored spec (the write-back of the finalizer's Update) and finalizers;
- the status at the end (round statuses, lastSucceedRound, pvcName, readOnly, ...);
- each loader Job: labels, annotations, owner, backoffLimit and the pod template (container,
  args as a set, volumes, mounts, resources, security context), whether it completed or failed;
- each PVC and ConfigMap the controllers made (labels, annotations, spec / data), the PVs
  labelled for this namespace's Datasets, and Events about Datasets (none);
- the polling: READY comes at least 4 s after the round's first PROCESSING (Jobs are not
  watched), on both;
- deletion: what is left afterwards (the REFERENCE's clone PV: an upstream bug).

Known differences that are not compared, because no operator can see them: the fake's loader
Jobs carry `spec.managedBy` (so that kube-controller-manager's Job controller leaves them to
the fake, which runs no Pods), and their status is written by the fake rather than by a Job
controller counting Pods.
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import json
import re
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
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
    eventually,
    wire,
)
from modelfs.testing.controlplane import ControlPlane
from modelfs.testing.dataset_engine import DatasetEngine, DatasetEngineError, dataset_crd_path
from modelfs.testing.fake_dataset import ANN_FAIL_ROUNDS, ANN_ROUND_DURATION, NAME_LABEL
from modelfs.testing.fake_dataset.kube import Kube
from modelfs.testing.fake_dataset.process import FakeDatasetController
from modelfs.testing.pytest_plugin import InstallCrds, dataset_crd_file

pytestmark = pytest.mark.e2e
DS = (DATASET_GROUP, DATASET_VERSION)
BACKOFF_LIMIT = 0  # a failing loader fails its round in seconds on the real controller
LABELS = {"app.kubernetes.io/managed-by": "modelfs", "model.samzong.dev/model": "qwen"}
ANNOTATIONS = {"example.com/note": "copied"}
NAMES = ("hf", "bad", "env", "share", "vol", "src", "ref")
Engine = DatasetEngine | FakeDatasetController


# --------------------------------------------------------------------------- the scenario


def body(name: str, type_: str, uri: str, **spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": f"{DATASET_GROUP}/{DATASET_VERSION}",
        "kind": "Dataset",
        "metadata": {"name": name},
        "spec": {"source": {"type": type_, "uri": uri}, **spec},
    }


def scenario_datasets() -> list[dict[str, Any]]:
    hf = body(
        "hf",
        "HUGGING_FACE",
        "huggingface://org/model",
        secretRef="hf-token",
        share=False,
        volumeClaimTemplate={
            "spec": {
                "accessModes": ["ReadWriteMany"],
                "resources": {"requests": {"storage": "1024Mi"}},
            }
        },
    )
    hf["metadata"].update(labels=dict(LABELS), annotations=dict(ANNOTATIONS))
    hf["spec"]["source"]["options"] = {
        "repoType": "MODEL",
        "include": "*.json",
        "revision": "a b",  # whitespace: Go's %q
    }
    bad = body("bad", "S3", "s3://bucket/dir")
    bad["spec"]["source"]["options"] = {"provider": "MINIO", "endpoint": "http://minio:9000"}
    bad["metadata"]["annotations"] = {ANN_FAIL_ROUNDS: "1"}
    env = body("env", "CONDA", "conda://env?python=3.11")
    env["spec"]["source"]["options"] = {"pipRequirementsTxt": "torch==2.5"}
    share = body("share", "NFS", "nfs://10.0.0.1/exports/models")
    vol = body("vol", "PVC", "pvc://claim/models")  # the claim never exists
    src = body("src", "HUGGING_FACE", "huggingface://org/source", share=True)
    return [hf, bad, env, share, vol, src]


# --------------------------------------------------------------------------- observing


@dataclass
class Version:
    at: float
    obj: dict[str, Any]

    @property
    def phase(self) -> str | None:
        phase = (self.obj.get("status") or {}).get("phase")
        return str(phase) if phase is not None else None

    @property
    def conditions(self) -> list[dict[str, Any]]:
        return list((self.obj.get("status") or {}).get("conditions") or [])


@dataclass
class Watched:
    """Every version of every Dataset of a namespace, in order, from one watch."""

    versions: dict[str, list[Version]] = field(default_factory=dict)

    def add(self, obj: dict[str, Any]) -> None:
        name = obj["metadata"]["name"]
        self.versions.setdefault(name, []).append(Version(time.monotonic(), obj))

    def phases(self, name: str, since: float = 0.0) -> list[str | None]:
        phases: list[str | None] = []
        for version in self.versions.get(name, []):
            if version.at >= since and (not phases or phases[-1] != version.phase):
                phases.append(version.phase)
        return phases


@contextlib.asynccontextmanager
async def watching(api: client.ApiClient, namespace: str) -> AsyncIterator[Watched]:
    kube, watched = Kube(api), Watched()
    path = f"/apis/{DATASET_GROUP}/{DATASET_VERSION}/namespaces/{namespace}/{DATASET_PLURAL}"
    version = (await kube.request("GET", path))["metadata"]["resourceVersion"]

    async def follow() -> None:
        nonlocal version
        while True:
            async for event in kube.watch(path, version):
                obj = event["object"]
                version = obj["metadata"]["resourceVersion"]
                if event["type"] in ("ADDED", "MODIFIED"):
                    watched.add(obj)

    task = asyncio.create_task(follow())
    try:
        yield watched
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


@dataclass
class Observation:
    """What an operator can observe of one run of the scenario, normalised."""

    controller: str
    facts: dict[str, Any] = field(default_factory=dict)
    #: (phase, message) of every JobStatus=False seen, any Dataset, any round: compared apart
    #: (the real controller shows it when its Job cache lags, a race; the fake always)
    job_status_false: set[tuple[str | None, str]] = field(default_factory=set)


_TIME = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$")
_VOLATILE_META = (
    "uid",
    "resourceVersion",
    "creationTimestamp",
    "generation",
    "managedFields",
    "deletionTimestamp",
    "deletionGracePeriodSeconds",
    "selfLink",
)


def normalise(value: Any, namespace: str) -> Any:
    """Timestamps -> `<time>`, the namespace -> `<ns>`, uids and resourceVersions gone."""
    if isinstance(value, dict):
        out = {}
        for key, item in value.items():
            if key in _VOLATILE_META or key == "uid":
                continue
            out[key] = normalise(item, namespace)
        return out
    if isinstance(value, list):
        return [normalise(item, namespace) for item in value]
    if isinstance(value, str):
        if _TIME.match(value):
            return "<time>"
        return value.replace(namespace, "<ns>")
    return value


def job_facts(job: dict[str, Any], namespace: str) -> dict[str, Any]:
    meta, spec = job["metadata"], copy.deepcopy(job["spec"])
    spec.pop("managedBy", None)  # the fake's own (see the module docstring)
    spec.pop("selector", None)  # uid-bearing, made by the API server
    template = spec.pop("template")
    pod = template["spec"]
    for container in pod["containers"]:
        container["args"] = sorted(container.get("args") or [])  # Go map order: a set
    conditions = {c["type"] for c in (job.get("status") or {}).get("conditions") or []}
    facts: dict[str, Any] = normalise(
        {
            "labels": meta.get("labels"),
            "annotations": meta.get("annotations"),
            "owners": [
                {k: o.get(k) for k in ("apiVersion", "kind", "name", "controller")}
                for o in meta.get("ownerReferences") or []
            ],
            "spec": spec,
            "pod": pod,
            "outcome": sorted(conditions & {"Complete", "Failed"}),
        },
        namespace,
    )
    return facts


def pvc_facts(pvc: dict[str, Any], namespace: str) -> dict[str, Any]:
    spec = {k: v for k, v in pvc["spec"].items() if k != "volumeName"}  # provisioner-made
    meta = pvc["metadata"]
    facts: dict[str, Any] = normalise(
        {
            "labels": meta.get("labels"),
            "annotations": {
                k: v for k, v in (meta.get("annotations") or {}).items() if "kubernetes.io" not in k
            },
            "owners": [o.get("name") for o in meta.get("ownerReferences") or []],
            "spec": spec,
            "phase": (pvc.get("status") or {}).get("phase"),
        },
        namespace,
    )
    return facts


async def list_items(api: client.ApiClient, path: str, **query: Any) -> list[dict[str, Any]]:
    listing = await Kube(api).request("GET", path, query=query)
    return list(listing.get("items") or [])


async def get_ds(api: client.ApiClient, namespace: str, name: str) -> dict[str, Any]:
    return custom_object(
        await client.CustomObjectsApi(api).get_namespaced_custom_object(
            *DS, namespace, DATASET_PLURAL, name
        )
    )


def status_of(ds: dict[str, Any]) -> dict[str, Any]:
    return dict(ds.get("status") or {})


async def raise_round(api: client.ApiClient, namespace: str, name: str, to: int) -> None:
    await client.CustomObjectsApi(api).patch_namespaced_custom_object(
        *DS,
        namespace,
        DATASET_PLURAL,
        name,
        {"spec": {"dataSyncRound": to}},
        _content_type="application/merge-patch+json",
    )


def at_phase(
    api: client.ApiClient,
    namespace: str,
    name: str,
    phase: str,
    round_: int | None = None,
    *,
    with_rounds: bool = False,
) -> Callable[[], Awaitable[bool]]:
    """Whether the Dataset is at `phase` (with lastSucceedRound `round_`, with round statuses)."""

    async def check() -> bool:
        status = status_of(await get_ds(api, namespace, name))
        return (
            status.get("phase") == phase
            and (round_ is None or status.get("lastSucceedRound") == round_)
            and (not with_rounds or bool(status.get("syncRoundStatuses")))
        )

    return check


_UID12 = re.compile(r"[0-9a-f]{8}-[0-9a-f]{3}$")


def pv_name(name: str, namespace: str) -> str:
    """A PV name of this namespace's Datasets, normalised (a clone's ends in its uid)."""
    return str(_UID12.sub("<uid12>", str(normalise(name, namespace))))


async def observe(api: client.ApiClient, namespace: str, controller: str) -> Observation:
    """Run the scenario in `namespace` (its controller running) and record what it shows."""
    seen = Observation(controller)
    facts = seen.facts
    custom, core = client.CustomObjectsApi(api), client.CoreV1Api(api)
    async with watching(api, namespace) as watched:
        for item in scenario_datasets():
            await custom.create_namespaced_custom_object(*DS, namespace, DATASET_PLURAL, item)
        await eventually(at_phase(api, namespace, "hf", "READY", 1), 60, f"{controller}: hf")
        await eventually(
            at_phase(api, namespace, "bad", "FAILED", with_rounds=True), 60, f"{controller}: bad"
        )
        await eventually(at_phase(api, namespace, "env", "READY", 1), 60, f"{controller}: env")
        await eventually(at_phase(api, namespace, "share", "READY", 1), 60, f"{controller}: nfs")
        await eventually(at_phase(api, namespace, "vol", "READY"), 60, f"{controller}: vol")
        await eventually(at_phase(api, namespace, "src", "READY", 1), 60, f"{controller}: src")

        async def source_bound() -> bool:
            pvc = wire(await core.read_namespaced_persistent_volume_claim("src", namespace))
            return bool(pvc["spec"].get("volumeName")) and pvc["status"].get("phase") == "Bound"

        await eventually(source_bound, 60, f"{controller}: the source PVC bound")
        ref = body("ref", "REFERENCE", f"dataset://{namespace}/src")
        await custom.create_namespaced_custom_object(*DS, namespace, DATASET_PLURAL, ref)
        await eventually(at_phase(api, namespace, "ref", "READY", 1), 60, f"{controller}: ref")

        raised_at = time.monotonic()
        for name in ("hf", "share", "ref"):
            await raise_round(api, namespace, name, 2)
        await eventually(at_phase(api, namespace, "hf", "READY", 2), 60, f"{controller}: hf 2")
        await eventually(at_phase(api, namespace, "share", "READY", 2), 60, f"{controller}: nfs 2")
        await eventually(at_phase(api, namespace, "ref", "FAILED", 1), 60, f"{controller}: ref 2")
        await asyncio.sleep(6)  # longer than a poll: nothing else is coming

        facts["phases"] = {name: watched.phases(name) for name in NAMES}
        facts["phases after the raise"] = {
            name: watched.phases(name, since=raised_at) for name in ("hf", "share", "ref")
        }
        hf = watched.versions["hf"]
        first_processing = next(v for v in hf if v.phase == "PROCESSING")
        facts["condition types when first PROCESSING"] = [
            c["type"] for c in first_processing.conditions
        ]
        seen.job_status_false = {
            (v.phase, c["message"])
            for versions in watched.versions.values()
            for v in versions
            for c in v.conditions
            if c["type"] == "JobStatus" and c["status"] == "False"
        }
        ready_at = next(v.at for v in hf if v.phase == "READY")
        facts["READY at least 4 s after PROCESSING (polled)"] = ready_at - first_processing.at >= 4

        datasets = {name: await get_ds(api, namespace, name) for name in NAMES}
        facts["condition types at the end"] = {
            name: [c["type"] for c in status_of(ds).get("conditions") or []]
            for name, ds in datasets.items()
        }
        facts["datasets"] = {
            name: normalise(
                {
                    "labels": ds["metadata"].get("labels"),
                    "annotations": ds["metadata"].get("annotations"),
                    "finalizers": ds["metadata"].get("finalizers"),
                    "spec": ds["spec"],
                    "status": status_of(ds),
                },
                namespace,
            )
            for name, ds in datasets.items()
        }
        jobs = await list_items(api, f"/apis/batch/v1/namespaces/{namespace}/jobs")
        facts["jobs"] = {j["metadata"]["name"]: job_facts(j, namespace) for j in jobs}
        pvcs = await list_items(api, f"/api/v1/namespaces/{namespace}/persistentvolumeclaims")
        facts["pvcs"] = {p["metadata"]["name"]: pvc_facts(p, namespace) for p in pvcs}
        configmaps = await list_items(
            api, f"/api/v1/namespaces/{namespace}/configmaps", labelSelector=NAME_LABEL
        )
        facts["configmaps"] = {
            c["metadata"]["name"]: normalise(
                {"labels": c["metadata"].get("labels"), "data": c.get("data")}, namespace
            )
            for c in configmaps
        }
        facts["pvs"] = sorted(
            pv_name(pv["metadata"]["name"], namespace)
            for pv in await list_items(api, "/api/v1/persistentvolumes", labelSelector=NAME_LABEL)
            if namespace in pv["metadata"]["name"]
        )
        events = await list_items(api, f"/api/v1/namespaces/{namespace}/events")
        facts["events about Datasets"] = sorted(
            e["reason"] for e in events if e["involvedObject"]["kind"] == "Dataset"
        )

        for name in NAMES:
            await custom.delete_namespaced_custom_object(*DS, namespace, DATASET_PLURAL, name)

        async def all_gone() -> bool:
            listed = await custom.list_namespaced_custom_object(*DS, namespace, DATASET_PLURAL)
            return not custom_object(listed)["items"]

        await eventually(all_gone, 60, f"{controller}: every Dataset deleted")

        async def claims_gone() -> bool:
            return not await list_items(
                api, f"/api/v1/namespaces/{namespace}/persistentvolumeclaims"
            )

        await eventually(claims_gone, 60, f"{controller}: the PVCs deleted")
        await asyncio.sleep(2)
        left = await list_items(api, "/api/v1/persistentvolumes", labelSelector=NAME_LABEL)
        mine = [pv["metadata"]["name"] for pv in left if namespace in pv["metadata"]["name"]]
        facts["PVs left after deletion"] = sorted(pv_name(n, namespace) for n in mine)
        for name in mine:  # the REFERENCE clone: nobody collects it (upstream)
            with contextlib.suppress(ApiException):
                await core.delete_persistent_volume(name)
    return seen


def differences(fake: Observation, real: Observation) -> list[str]:
    """Every fact that differs, with both values, as readable lines."""
    lines: list[str] = []

    def walk(path: str, a: Any, b: Any) -> None:
        if isinstance(a, dict) and isinstance(b, dict):
            for key in sorted(set(a) | set(b), key=str):
                walk(
                    f"{path}.{key}" if path else str(key),
                    a.get(key, "<absent>"),
                    b.get(key, "<absent>"),
                )
        elif a != b:
            fake_value, real_value = json.dumps(a, default=str), json.dumps(b, default=str)
            lines.append(f"{path}:\n    fake: {fake_value}\n    real: {real_value}")

    walk("", fake.facts, real.facts)
    return lines


# --------------------------------------------------------------------------- the test


@contextlib.asynccontextmanager
async def namespace_for(api: client.ApiClient, controller: str) -> AsyncIterator[str]:
    core = client.CoreV1Api(api)
    name = f"t-conformance-{controller}-{uuid.uuid4().hex[:6]}"
    await core.create_namespace(
        client.V1Namespace(
            metadata=client.V1ObjectMeta(name=name, annotations={ANN_ROUND_DURATION: "1s"})
        )
    )
    try:
        yield name
    finally:
        with contextlib.suppress(ApiException):
            await core.delete_namespace(name)


@pytest.fixture
async def real_crd(
    k8s_control_plane: ControlPlane, k8s_install_crds: InstallCrds, dataset_controller: str
) -> AsyncIterator[Path]:
    """The real controller's CRD, for both runs; the session's CRD put back afterwards."""
    try:
        path = dataset_crd_path()
    except DatasetEngineError as error:
        pytest.fail(str(error), pytrace=False)
    await k8s_install_crds(path)
    try:
        yield path
    finally:
        session_crd = dataset_crd_file(dataset_controller)
        if session_crd != path:
            await k8s_install_crds(session_crd)


async def run(api: client.ApiClient, engine: Engine, controller: str) -> tuple[Observation, str]:
    async with namespace_for(api, controller) as namespace:
        await asyncio.to_thread(engine.start)
        try:
            seen = await observe(api, namespace, controller)
            assert engine.alive(), f"{controller} died:\n{engine.log_text()[-3000:]}"
        finally:
            await asyncio.to_thread(engine.stop)
    return seen, engine.log_text()


async def test_the_fake_behaves_as_the_real_controller(
    real_crd: Path,
    k8s_kubeconfig: Path,
    k8s_api: client.ApiClient,
    tmp_path: Path,
) -> None:
    kubeconfig = k8s_kubeconfig
    fake = FakeDatasetController(
        kubeconfig, backoff_limit=BACKOFF_LIMIT, log_path=tmp_path / "fake-dataset.log"
    )
    real = DatasetEngine(
        kubeconfig,
        backoff_limit=BACKOFF_LIMIT,
        log_dir=tmp_path / "real",
        install_crd=False,
    )
    fake_seen, fake_log = await run(k8s_api, fake, "fake")
    real_seen, real_log = await run(k8s_api, real, "real")
    print(f"\nreal controller's log (tail):\n{real_log[-2000:]}")
    found = differences(fake_seen, real_seen)
    print("\n".join(f"{k}: {json.dumps(v, default=str)}" for k, v in real_seen.facts.items()))
    print(f"JobStatus=False on the real controller: {sorted(real_seen.job_status_false)}")
    assert not found, "the fake differs from the real controller:\n" + "\n".join(found)
    # the brief JobStatus=False of a new round: the fake shows it for every Job it creates, the
    # real controller for some (when its informer cache has not seen the Job it just created)
    every_job = {("PROCESSING", f'Job.batch "{job}" not found') for job in fake_seen.facts["jobs"]}
    assert fake_seen.job_status_false == every_job
    assert real_seen.job_status_false <= every_job
    # and what both showed, as docs/dataset-controller.md says
    facts = real_seen.facts
    assert facts["phases"]["hf"] == [None, "PROCESSING", "READY", "PROCESSING", "READY"]
    assert facts["phases"]["bad"] == [None, "PROCESSING", "FAILED"]
    assert facts["phases after the raise"]["ref"] == ["READY", "FAILED"]
    assert facts["READY at least 4 s after PROCESSING (polled)"] is True
    assert facts["events about Datasets"] == []
    assert "Traceback" not in fake_log
