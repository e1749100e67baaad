"""podsim: a pod simulator for the local control plane, where no kubelet or scheduler runs.

It is what lets the REAL BaizeAI/dataset controller work on `modelfs.testing.controlplane`:
the Dataset controller creates a PVC and a loader Job, kube-controller-manager's Job controller
creates the Job's Pod, and podsim plays the scheduler and the kubelet for that Pod:

- registers one Node, `modelfs-sim-node` (Ready, a large capacity), and lifts the
  `node.kubernetes.io/not-ready` taint that admission puts on a new Node;
- binds every unscheduled Pod to it (the Binding subresource, as kube-scheduler does);
- marks the Pod Running, then after a delay Succeeded (exit 0) or Failed (exit 1), through the
  status subresource, with containerStatuses shaped like a kubelet's;
- force-deletes (grace 0) Pods that get a deletionTimestamp: no kubelet will confirm it;
- provisions a hostPath PV for every Pending PVC without `spec.volumeName` (capacity,
  accessModes, storageClassName and volumeMode copied from the claim, `claimRef` pre-bound),
  which kube-controller-manager's PV binder then binds, and deletes those PVs once Released.

Nothing runs: the pod runtime is not what the tests are about. The Job controller, the PV
binder and the Dataset controller are the real ones.

Fault injection, per Pod, read from the annotations of the Pod's owning Job (the Dataset
controller copies a Dataset's annotations onto its Jobs), else of the Pod's Namespace:

    fake.dataset.baizeai.io/fail-rounds: "all" | "1,3"    the loader exits 1 in these rounds
    fake.dataset.baizeai.io/round-duration: "2s"          how long the Pod runs (Go duration)

The round is N of the Job name `dataset-<name>-round-<N>`. A malformed value is logged as a
warning and ignored (the next source, then the default, applies). These are the names the fake
Dataset controller reads, so a test sets them once and runs on either engine.

    python -m modelfs.testing.podsim --kubeconfig PATH [--namespace NS ...]
        [--round-duration 1s] [--no-storage] [--log-level info]

prints `ready` on stdout once the Node is registered and its first lists are in, logs to
stderr, and stops on SIGINT or SIGTERM (exit code 0).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import datetime as dt
import hashlib
import logging
import re
import signal
import sys
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from kubernetes.aio.client import ApiClient
from kubernetes.aio.client.exceptions import ApiException

from modelfs.testing.fake_dataset.kube import MERGE, Kube, list_and_watch
from modelfs.testing.fake_dataset.logic import (
    ANN_FAIL_ROUNDS,
    ANN_ROUND_DURATION,
    FailRounds,
    InjectionError,
    parse_duration,
    parse_fail_rounds,
)
from modelfs.testing.kubeapi import new_api_client

log = logging.getLogger("modelfs.podsim")

READY_LINE = "ready"
NODE_NAME = "modelfs-sim-node"
NOT_READY_TAINT = "node.kubernetes.io/not-ready"
#: Label on the PVs podsim provisions (value: the node name); with the name prefix below it tells
#: podsim's own PVs from clones of them (a REFERENCE Dataset copies its source PV, labels too).
PV_LABEL = "podsim.modelfs.io/provisioned-by"
PV_PREFIX = "podsim-"
PV_ROOT = "/tmp/modelfs-podsim"
DEFAULT_ROUND_DURATION = 1.0
#: Labels the Job controller puts on its Pods (the first since 1.27, the second legacy).
JOB_NAME_LABELS = ("batch.kubernetes.io/job-name", "job-name")
_ROUND = re.compile(r"^dataset-.+-round-(\d+)$")
NODE_CAPACITY = {
    "cpu": "1000",
    "memory": "4Ti",
    "pods": "10000",
    "ephemeral-storage": "100Ti",
    "nvidia.com/gpu": "64",
}
NODE_IP = "172.31.0.1"
TERMINAL = frozenset({"Succeeded", "Failed"})


# --------------------------------------------------------------------------- pure parts


def utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def timestamp(moment: dt.datetime) -> str:
    """RFC 3339 in UTC to the second, as the API server stores metav1.Time."""
    return moment.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_timestamp(text: str | None) -> dt.datetime | None:
    if not text:
        return None
    try:
        return dt.datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None


def job_round(job_name: str | None) -> int | None:
    """N of a loader Job `dataset-<name>-round-<N>`, else None."""
    match = _ROUND.match(job_name or "")
    return int(match.group(1)) if match else None


def owning_job(pod: Mapping[str, Any]) -> str | None:
    """The name of the Job that owns `pod`: its controller owner reference of kind Job, else
    the Job controller's job-name labels."""
    metadata = pod.get("metadata") or {}
    for ref in metadata.get("ownerReferences") or []:
        if ref.get("kind") == "Job" and str(ref.get("apiVersion", "")).startswith("batch/"):
            return str(ref["name"])
    labels = metadata.get("labels") or {}
    for label in JOB_NAME_LABELS:
        if labels.get(label):
            return str(labels[label])
    return None


@dataclass(frozen=True)
class Plan:
    """What a Pod does: run `duration` seconds, then exit with `exit_code`. `warnings` are the
    malformed annotations that were ignored."""

    duration: float
    exit_code: int
    round: int | None = None
    warnings: tuple[str, ...] = ()

    @property
    def fails(self) -> bool:
        return self.exit_code != 0


def plan_for(
    job_name: str | None,
    sources: Sequence[tuple[str, Mapping[str, str] | None]],
    default_duration: float = DEFAULT_ROUND_DURATION,
) -> Plan:
    """The Plan of a Pod of Job `job_name`, from the annotations of `sources` (first wins per
    annotation: the Job, then the Namespace). A malformed value is skipped with a warning."""
    warnings: list[str] = []
    fail_rounds: FailRounds | None = None
    duration: float | None = None
    for where, found in sources:
        annotations = found or {}
        if fail_rounds is None and ANN_FAIL_ROUNDS in annotations:
            try:
                fail_rounds = parse_fail_rounds(str(annotations[ANN_FAIL_ROUNDS]))
            except InjectionError as error:
                warnings.append(f"{where}: {ANN_FAIL_ROUNDS}: {error}; ignored")
        if duration is None and ANN_ROUND_DURATION in annotations:
            try:
                duration = parse_duration(str(annotations[ANN_ROUND_DURATION]))
            except InjectionError as error:
                warnings.append(f"{where}: {ANN_ROUND_DURATION}: {error}; ignored")
    round_ = job_round(job_name)
    fails = False
    if job_name is not None and fail_rounds is not None:
        fails = fail_rounds == "all" or (round_ is not None and round_ in fail_rounds)
    return Plan(
        duration=default_duration if duration is None else duration,
        exit_code=1 if fails else 0,
        round=round_,
        warnings=tuple(warnings),
    )


def needs_binding(pod: Mapping[str, Any]) -> bool:
    """An unscheduled, live, not yet finished Pod."""
    metadata, spec = pod.get("metadata") or {}, pod.get("spec") or {}
    phase = (pod.get("status") or {}).get("phase") or "Pending"
    return not spec.get("nodeName") and not metadata.get("deletionTimestamp") and phase == "Pending"


def node_body(name: str = NODE_NAME) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {
            "name": name,
            "labels": {
                "kubernetes.io/hostname": name,
                "kubernetes.io/os": "linux",
                "kubernetes.io/arch": "amd64",
                "node.kubernetes.io/instance-type": "podsim",
                "type": "podsim",
            },
            "annotations": {"node.alpha.kubernetes.io/ttl": "0"},
        },
        "spec": {},
    }


def without_taint(taints: Sequence[Mapping[str, Any]] | None, key: str) -> list[dict[str, Any]]:
    return [dict(t) for t in taints or () if t.get("key") != key]


def node_status(now: dt.datetime) -> dict[str, Any]:
    """A Ready node's status, as a merge patch of the status subresource."""
    stamp = timestamp(now)

    def condition(kind: str, status: str, reason: str, message: str) -> dict[str, str]:
        return {
            "type": kind,
            "status": status,
            "reason": reason,
            "message": message,
            "lastHeartbeatTime": stamp,
            "lastTransitionTime": stamp,
        }

    return {
        "status": {
            "capacity": dict(NODE_CAPACITY),
            "allocatable": dict(NODE_CAPACITY),
            "conditions": [
                condition("MemoryPressure", "False", "KubeletHasSufficientMemory", "podsim"),
                condition("DiskPressure", "False", "KubeletHasNoDiskPressure", "podsim"),
                condition("PIDPressure", "False", "KubeletHasSufficientPID", "podsim"),
                condition("Ready", "True", "KubeletReady", "podsim is posting ready status"),
            ],
            "addresses": [
                {"type": "InternalIP", "address": NODE_IP},
                {"type": "Hostname", "address": NODE_NAME},
            ],
            "nodeInfo": {
                "architecture": "amd64",
                "operatingSystem": "linux",
                "osImage": "modelfs podsim",
                "kernelVersion": "",
                "kubeletVersion": "podsim",
                "kubeProxyVersion": "",
                "containerRuntimeVersion": "podsim://0",
                "machineID": "",
                "systemUUID": "",
                "bootID": "",
            },
        }
    }


def _container_id(uid: str, name: str) -> str:
    return "podsim://" + hashlib.sha256(f"{uid}/{name}".encode()).hexdigest()


def _pod_ip(uid: str) -> str:
    digest = hashlib.sha256(uid.encode()).digest()
    return f"10.244.{digest[0]}.{max(digest[1], 2)}"


def _image_id(image: str) -> str:
    return f"{image}@sha256:" + hashlib.sha256(image.encode()).hexdigest()


def _condition(kind: str, status: str, stamp: str, reason: str | None = None) -> dict[str, Any]:
    condition: dict[str, Any] = {
        "type": kind,
        "status": status,
        "lastProbeTime": None,
        "lastTransitionTime": stamp,
    }
    if reason:
        condition["reason"] = reason
    return condition


def _terminated_init(pod: Mapping[str, Any], started: str) -> list[dict[str, Any]]:
    uid = pod["metadata"]["uid"]
    return [
        {
            "name": c["name"],
            "image": c.get("image", ""),
            "imageID": _image_id(c.get("image", "")),
            "containerID": _container_id(uid, c["name"]),
            "ready": True,
            "started": False,
            "restartCount": 0,
            "state": {
                "terminated": {
                    "exitCode": 0,
                    "reason": "Completed",
                    "startedAt": started,
                    "finishedAt": started,
                    "containerID": _container_id(uid, c["name"]),
                }
            },
        }
        for c in (pod.get("spec") or {}).get("initContainers") or []
    ]


def running_status(pod: Mapping[str, Any], now: dt.datetime) -> dict[str, Any]:
    """A merge patch of the status subresource: the Pod Running, every container started."""
    uid, stamp = pod["metadata"]["uid"], timestamp(now)
    containers = (pod.get("spec") or {}).get("containers") or []
    ip = _pod_ip(uid)
    status: dict[str, Any] = {
        "phase": "Running",
        "hostIP": NODE_IP,
        "hostIPs": [{"ip": NODE_IP}],
        "podIP": ip,
        "podIPs": [{"ip": ip}],
        "startTime": stamp,
        "qosClass": (pod.get("status") or {}).get("qosClass") or "Burstable",
        "conditions": [
            _condition("PodReadyToStartContainers", "True", stamp),
            _condition("Initialized", "True", stamp),
            _condition("Ready", "True", stamp),
            _condition("ContainersReady", "True", stamp),
            _condition("PodScheduled", "True", stamp),
        ],
        "containerStatuses": [
            {
                "name": c["name"],
                "image": c.get("image", ""),
                "imageID": _image_id(c.get("image", "")),
                "containerID": _container_id(uid, c["name"]),
                "ready": True,
                "started": True,
                "restartCount": 0,
                "state": {"running": {"startedAt": stamp}},
                "lastState": {},
            }
            for c in containers
        ],
    }
    init = _terminated_init(pod, stamp)
    if init:
        status["initContainerStatuses"] = init
    return {"metadata": {"uid": uid}, "status": status}


def finished_status(
    pod: Mapping[str, Any], started: dt.datetime, now: dt.datetime, exit_code: int
) -> dict[str, Any]:
    """A merge patch of the status subresource: every container terminated with `exit_code`,
    the Pod Succeeded (0) or Failed."""
    uid = pod["metadata"]["uid"]
    start, end = timestamp(started), timestamp(now)
    containers = (pod.get("spec") or {}).get("containers") or []
    ok = exit_code == 0
    reason = "PodCompleted" if ok else "PodFailed"
    ip = _pod_ip(uid)
    status: dict[str, Any] = {
        "phase": "Succeeded" if ok else "Failed",
        "hostIP": NODE_IP,
        "hostIPs": [{"ip": NODE_IP}],
        "podIP": ip,
        "podIPs": [{"ip": ip}],
        "startTime": start,
        "qosClass": (pod.get("status") or {}).get("qosClass") or "Burstable",
        "conditions": [
            _condition("PodReadyToStartContainers", "False", end),
            _condition("Initialized", "True", start, reason),
            _condition("Ready", "False", end, reason),
            _condition("ContainersReady", "False", end, reason),
            _condition("PodScheduled", "True", start),
        ],
        "containerStatuses": [
            {
                "name": c["name"],
                "image": c.get("image", ""),
                "imageID": _image_id(c.get("image", "")),
                "containerID": _container_id(uid, c["name"]),
                "ready": False,
                "started": False,
                "restartCount": 0,
                "state": {
                    "terminated": {
                        "exitCode": exit_code,
                        "reason": "Completed" if ok else "Error",
                        "startedAt": start,
                        "finishedAt": end,
                        "containerID": _container_id(uid, c["name"]),
                    }
                },
                "lastState": {},
            }
            for c in containers
        ],
    }
    init = _terminated_init(pod, start)
    if init:
        status["initContainerStatuses"] = init
    return {"metadata": {"uid": uid}, "status": status}


def pv_name(claim: Mapping[str, Any]) -> str:
    return PV_PREFIX + str(claim["metadata"]["uid"])


def needs_volume(claim: Mapping[str, Any]) -> bool:
    """A live, Pending PVC that names no volume: podsim provisions one for it."""
    metadata, spec = claim.get("metadata") or {}, claim.get("spec") or {}
    phase = (claim.get("status") or {}).get("phase") or "Pending"
    return (
        phase == "Pending" and not spec.get("volumeName") and not metadata.get("deletionTimestamp")
    )


def pv_for_claim(claim: Mapping[str, Any], node: str = NODE_NAME) -> dict[str, Any]:
    """A hostPath PV pre-bound to `claim` (so the PV binder binds the two), with the claim's
    capacity, access modes, storage class and volume mode; reclaim policy Retain (podsim
    deletes it once Released: the hostPath deleter would refuse)."""
    metadata, spec = claim["metadata"], claim.get("spec") or {}
    namespace, name = metadata["namespace"], metadata["name"]
    storage = ((spec.get("resources") or {}).get("requests") or {}).get("storage") or "1Gi"
    pv_spec: dict[str, Any] = {
        "capacity": {"storage": storage},
        "accessModes": list(spec.get("accessModes") or ["ReadWriteOnce"]),
        "persistentVolumeReclaimPolicy": "Retain",
        "volumeMode": spec.get("volumeMode") or "Filesystem",
        "hostPath": {"path": f"{PV_ROOT}/{namespace}/{name}", "type": "DirectoryOrCreate"},
        "claimRef": {
            "apiVersion": "v1",
            "kind": "PersistentVolumeClaim",
            "namespace": namespace,
            "name": name,
            "uid": metadata["uid"],
        },
    }
    if spec.get("storageClassName"):
        pv_spec["storageClassName"] = spec["storageClassName"]
    return {
        "apiVersion": "v1",
        "kind": "PersistentVolume",
        "metadata": {
            "name": pv_name(claim),
            "labels": {PV_LABEL: node},
            "annotations": {"pv.kubernetes.io/provisioned-by": "podsim.modelfs.io"},
        },
        "spec": pv_spec,
    }


def is_own_pv(pv: Mapping[str, Any], node: str = NODE_NAME) -> bool:
    metadata = pv.get("metadata") or {}
    return (metadata.get("labels") or {}).get(PV_LABEL) == node and str(
        metadata.get("name", "")
    ).startswith(PV_PREFIX)


def pv_to_delete(pv: Mapping[str, Any], node: str = NODE_NAME) -> bool:
    """One of podsim's PVs whose claim is gone (Released, or Failed to reclaim)."""
    phase = (pv.get("status") or {}).get("phase")
    return (
        is_own_pv(pv, node)
        and phase in ("Released", "Failed")
        and not (pv.get("metadata") or {}).get("deletionTimestamp")
    )


# --------------------------------------------------------------------------- runtime


@dataclass(frozen=True)
class Settings:
    namespaces: tuple[str, ...] = ()  # empty: every namespace
    round_duration: float = DEFAULT_ROUND_DURATION
    storage: bool = True
    node: str = NODE_NAME


def _key(obj: Mapping[str, Any]) -> str:
    metadata = obj.get("metadata") or {}
    namespace = metadata.get("namespace")
    return f"{namespace}/{metadata.get('name')}" if namespace else str(metadata.get("name"))


@dataclass
class PodSimulator:
    """The simulator on an ApiClient; `run()` until `stop()`."""

    api: ApiClient
    settings: Settings = field(default_factory=Settings)

    def __post_init__(self) -> None:
        self.kube = Kube(self.api)
        self.ready = asyncio.Event()
        self.stopping = asyncio.Event()
        self._running: dict[str, asyncio.Task[None]] = {}  # pod uid -> its lifecycle
        self._deleting: set[str] = set()  # pod uids force-deleted
        self._provisioned: set[str] = set()  # claim uids
        self._released: set[str] = set()  # PV names deleted
        self._tasks: set[asyncio.Task[Any]] = set()

    def stop(self) -> None:
        self.stopping.set()

    # -- main

    async def run(self) -> None:
        await self.register_node()
        watches: list[tuple[str, Any, str | None]] = []
        for path in self._paths("pods"):
            watches.append((path, _guarded(self.on_pod), None))
        if self.settings.storage:
            for path in self._paths("persistentvolumeclaims"):
                watches.append((path, _guarded(self.on_claim), None))
            watches.append(
                (
                    "/api/v1/persistentvolumes",
                    _guarded(self.on_volume),
                    f"{PV_LABEL}={self.settings.node}",
                )
            )
        synced = [asyncio.Event() for _ in watches]
        loops = [
            asyncio.create_task(
                list_and_watch(
                    self.kube,
                    path,
                    handler,
                    label_selector=selector,
                    on_synced=event.set,
                    stopping=self.stopping,
                )
            )
            for (path, handler, selector), event in zip(watches, synced, strict=True)
        ]

        async def all_synced() -> None:
            for event in synced:
                await event.wait()

        waiting = asyncio.create_task(all_synced())
        stopped = asyncio.create_task(self.stopping.wait())
        try:
            await asyncio.wait({waiting, stopped}, return_when=asyncio.FIRST_COMPLETED)
            if not self.stopping.is_set():
                self.ready.set()
                log.info("ready: node %s registered, watching", self.settings.node)
            await self.stopping.wait()
        finally:
            waiting.cancel()
            stopped.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await waiting
            for task in [*loops, *self._running.values(), *self._tasks]:
                task.cancel()
            await asyncio.gather(
                *loops, *self._running.values(), *self._tasks, return_exceptions=True
            )

    def _paths(self, plural: str) -> list[str]:
        if not self.settings.namespaces:
            return [f"/api/v1/{plural}"]
        return [f"/api/v1/namespaces/{ns}/{plural}" for ns in self.settings.namespaces]

    def _spawn(self, coroutine: Any) -> None:
        task = asyncio.create_task(coroutine)
        self._tasks.add(task)
        task.add_done_callback(self._done)

    def _done(self, task: asyncio.Task[Any]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("unexpected error", exc_info=task.exception())

    # -- node

    async def register_node(self) -> None:
        name = self.settings.node
        path = f"/api/v1/nodes/{name}"
        while True:
            try:
                node = await self.kube.get(path)
                if node is None:
                    node = await self.kube.request("POST", "/api/v1/nodes", body=node_body(name))
                    log.info("registered node %s", name)
                taints = (node.get("spec") or {}).get("taints") or []
                if any(t.get("key") == NOT_READY_TAINT for t in taints):
                    await self.kube.request(
                        "PATCH",
                        path,
                        body={"spec": {"taints": without_taint(taints, NOT_READY_TAINT) or None}},
                        content_type=MERGE,
                    )
                    log.info("node %s: lifted the %s taint", name, NOT_READY_TAINT)
                await self.kube.request(
                    "PATCH", f"{path}/status", body=node_status(utcnow()), content_type=MERGE
                )
                return
            except ApiException as error:
                if error.status == 409:
                    continue  # created meanwhile: read it again
                log.warning(
                    "registering node %s: %s %s; retrying", name, error.status, error.reason
                )
            except (OSError, TimeoutError) as error:
                log.warning("registering node %s: %r; retrying", name, error)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.stopping.wait(), 1.0)
            if self.stopping.is_set():
                return

    # -- pods

    async def on_pod(self, kind: str, pod: dict[str, Any]) -> None:
        metadata = pod.get("metadata") or {}
        uid = str(metadata.get("uid", ""))
        if kind == "DELETED":
            task = self._running.pop(uid, None)
            if task is not None:
                task.cancel()
            self._deleting.discard(uid)
            return
        node = (pod.get("spec") or {}).get("nodeName")
        if node not in (None, "", self.settings.node):
            return  # another node's pod (not ours to run)
        if metadata.get("deletionTimestamp"):
            task = self._running.pop(uid, None)
            if task is not None:
                task.cancel()
            if uid not in self._deleting:
                self._deleting.add(uid)
                self._spawn(self.force_delete(pod))
            return
        phase = (pod.get("status") or {}).get("phase") or "Pending"
        if phase in TERMINAL or uid in self._running:
            return
        task = asyncio.create_task(self.live(pod))
        self._running[uid] = task
        task.add_done_callback(lambda _: self._forget(uid, task))

    def _forget(self, uid: str, task: asyncio.Task[None] | None) -> None:
        if task is not None and self._running.get(uid) is task:
            del self._running[uid]

    async def force_delete(self, pod: Mapping[str, Any]) -> None:
        metadata = pod["metadata"]
        path = f"/api/v1/namespaces/{metadata['namespace']}/pods/{metadata['name']}"
        body = {
            "apiVersion": "v1",
            "kind": "DeleteOptions",
            "gracePeriodSeconds": 0,
            "preconditions": {"uid": metadata["uid"]},
        }
        try:
            await self.kube.request("DELETE", path, query={"gracePeriodSeconds": 0}, body=body)
            log.info("pod %s: force-deleted (grace 0)", _key(pod))
        except ApiException as error:
            if error.status not in (404, 409):
                self._deleting.discard(metadata["uid"])  # try again on its next event
                log.warning("pod %s: delete failed: %s %s", _key(pod), error.status, error.reason)

    async def plan(self, pod: Mapping[str, Any]) -> Plan:
        namespace = pod["metadata"]["namespace"]
        job = owning_job(pod)
        sources: list[tuple[str, Mapping[str, str] | None]] = []
        if job is not None:
            found = await self.kube.get(f"/apis/batch/v1/namespaces/{namespace}/jobs/{job}")
            sources.append((f"Job {namespace}/{job}", _annotations(found)))
        found = await self.kube.get(f"/api/v1/namespaces/{namespace}")
        sources.append((f"Namespace {namespace}", _annotations(found)))
        plan = plan_for(job, sources, self.settings.round_duration)
        for warning in plan.warnings:
            log.warning("pod %s: %s", _key(pod), warning)
        if job is None and (pod.get("spec") or {}).get("restartPolicy", "Always") == "Always":
            # Not a Job's: a server, which runs until deleted.
            return Plan(duration=float("inf"), exit_code=0, warnings=plan.warnings)
        return plan

    async def live(self, pod: dict[str, Any]) -> None:
        """Bind (when unscheduled), run, finish: the whole life of one Pod."""
        metadata = pod["metadata"]
        path = f"/api/v1/namespaces/{metadata['namespace']}/pods/{metadata['name']}"
        try:
            plan = await self.plan(pod)
            if not (pod.get("spec") or {}).get("nodeName"):
                binding = {
                    "apiVersion": "v1",
                    "kind": "Binding",
                    "metadata": {"name": metadata["name"], "uid": metadata["uid"]},
                    "target": {"apiVersion": "v1", "kind": "Node", "name": self.settings.node},
                }
                await self.kube.request("POST", f"{path}/binding", body=binding)
                log.info("pod %s: bound to %s", _key(pod), self.settings.node)
            status = pod.get("status") or {}
            started = (
                parse_timestamp(status.get("startTime"))
                if status.get("phase") == "Running"
                else None
            )
            if started is None:
                started = utcnow()
                await self.kube.request(
                    "PATCH",
                    f"{path}/status",
                    body=running_status(pod, started),
                    content_type=MERGE,
                )
                log.info(
                    "pod %s: Running (round %s, %s, exit %d)",
                    _key(pod),
                    plan.round if plan.round is not None else "-",
                    "until deleted" if plan.duration == float("inf") else f"{plan.duration:g}s",
                    plan.exit_code,
                )
            if plan.duration == float("inf"):
                await self.stopping.wait()
                return
            left = plan.duration - (utcnow() - started).total_seconds()
            if left > 0:
                await asyncio.sleep(left)
            finished = finished_status(pod, started, utcnow(), plan.exit_code)
            await self.kube.request("PATCH", f"{path}/status", body=finished, content_type=MERGE)
            log.info("pod %s: %s (exit %d)", _key(pod), finished["status"]["phase"], plan.exit_code)
        except ApiException as error:
            if error.status == 404:
                log.info("pod %s: gone meanwhile", _key(pod))
                return
            log.warning("pod %s: %s %s; retrying", _key(pod), error.status, error.reason)
            self._spawn(self.retry(path, metadata["uid"]))
        except (OSError, TimeoutError, ValueError) as error:
            log.warning("pod %s: %r; retrying", _key(pod), error)
            self._spawn(self.retry(path, metadata["uid"]))
        except Exception:
            log.exception("pod %s: unexpected error; left alone", _key(pod))

    async def retry(self, path: str, uid: str, delay: float = 1.0) -> None:
        """Look at a Pod again after a failed step: its events may have passed meanwhile."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.stopping.wait(), delay)
        if self.stopping.is_set():
            return
        self._forget(uid, self._running.get(uid))  # this attempt is over
        try:
            pod = await self.kube.get(path)
        except (ApiException, OSError, TimeoutError, ValueError) as error:
            log.warning("GET %s: %r; retrying", path, error)
            self._spawn(self.retry(path, uid, min(delay * 2, 10.0)))
            return
        if pod is not None and pod["metadata"]["uid"] == uid:
            await self.on_pod("MODIFIED", pod)

    # -- storage

    async def on_claim(self, kind: str, claim: dict[str, Any]) -> None:
        uid = str((claim.get("metadata") or {}).get("uid", ""))
        if kind == "DELETED":
            self._provisioned.discard(uid)
            return
        if not needs_volume(claim) or uid in self._provisioned:
            return
        self._provisioned.add(uid)
        self._spawn(self.provision(claim))

    async def provision(self, claim: Mapping[str, Any]) -> None:
        volume = pv_for_claim(claim, self.settings.node)
        try:
            await self.kube.request("POST", "/api/v1/persistentvolumes", body=volume)
            log.info(
                "pvc %s: provisioned PV %s (%s)",
                _key(claim),
                volume["metadata"]["name"],
                volume["spec"]["capacity"]["storage"],
            )
        except ApiException as error:
            if error.status != 409:
                self._provisioned.discard(claim["metadata"]["uid"])
                log.warning(
                    "pvc %s: creating its PV failed: %s %s", _key(claim), error.status, error.reason
                )

    async def on_volume(self, kind: str, pv: dict[str, Any]) -> None:
        name = str((pv.get("metadata") or {}).get("name", ""))
        if kind == "DELETED":
            self._released.discard(name)
            return
        if pv_to_delete(pv, self.settings.node) and name not in self._released:
            self._released.add(name)
            self._spawn(self.delete_volume(name))

    async def delete_volume(self, name: str) -> None:
        try:
            await self.kube.request("DELETE", f"/api/v1/persistentvolumes/{name}")
            log.info("pv %s: released, deleted", name)
        except ApiException as error:
            if error.status != 404:
                self._released.discard(name)
                log.warning("pv %s: delete failed: %s %s", name, error.status, error.reason)


def _guarded(
    handler: Callable[[str, dict[str, Any]], Awaitable[None]],
) -> Callable[[str, dict[str, Any]], Awaitable[None]]:
    """`handler`, logging (not raising) what it did not expect: an exception would end the
    watch loop that calls it, and with it the simulation of every later object."""

    async def guarded(kind: str, obj: dict[str, Any]) -> None:
        try:
            await handler(kind, obj)
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("%s %s: unexpected error; skipped", kind, _key(obj))

    return guarded


def _annotations(obj: Mapping[str, Any] | None) -> dict[str, str] | None:
    if obj is None:
        return None
    return dict((obj.get("metadata") or {}).get("annotations") or {})


# --------------------------------------------------------------------------- command line


def _duration(text: str) -> float:
    try:
        return parse_duration(text)
    except InjectionError as error:
        raise argparse.ArgumentTypeError(str(error)) from None


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m modelfs.testing.podsim",
        description="Plays kube-scheduler and the kubelet of one fake Node on a cluster with "
        "neither: binds Pods, runs them for a while, completes or fails them "
        f"({ANN_FAIL_ROUNDS}, {ANN_ROUND_DURATION} on the Job or Namespace), and provisions "
        "hostPath PVs for Pending PVCs.",
    )
    parser.add_argument("--kubeconfig", required=True, help="kubeconfig of the cluster")
    parser.add_argument("--context", default=None, help="kubeconfig context (default: current)")
    parser.add_argument(
        "--namespace",
        action="append",
        default=[],
        dest="namespaces",
        metavar="NS",
        help="simulate only this namespace's Pods and PVCs (repeatable; default: all)",
    )
    parser.add_argument(
        "--round-duration",
        type=_duration,
        default=DEFAULT_ROUND_DURATION,
        help=f"how long a Pod runs unless annotated (default {DEFAULT_ROUND_DURATION:g}s)",
    )
    parser.add_argument(
        "--no-storage",
        dest="storage",
        action="store_false",
        help="do not provision PVs for Pending PVCs",
    )
    parser.add_argument("--node-name", default=NODE_NAME, help=f"default {NODE_NAME}")
    parser.add_argument(
        "--log-level", default="info", choices=["debug", "info", "warning", "error"]
    )
    return parser


async def serve(args: argparse.Namespace) -> int:
    settings = Settings(
        namespaces=tuple(args.namespaces),
        round_duration=args.round_duration,
        storage=args.storage,
        node=args.node_name,
    )
    api = await new_api_client(args.kubeconfig, args.context)
    simulator = PodSimulator(api, settings)
    loop = asyncio.get_running_loop()

    def on_signal(signum: signal.Signals) -> None:
        log.info("%s received: stopping", signum.name)
        simulator.stop()

    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, on_signal, signum)
    try:
        run = asyncio.create_task(simulator.run())
        ready = asyncio.create_task(simulator.ready.wait())
        await asyncio.wait({run, ready}, return_when=asyncio.FIRST_COMPLETED)
        if ready.done():
            print(READY_LINE, flush=True)
        else:
            ready.cancel()
        await run
    finally:
        await api.close()  # type: ignore[no-untyped-call]
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(
        level=getattr(logging, args.log_level.upper()),
        stream=sys.stderr,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    logging.getLogger("aiohttp").setLevel(logging.WARNING)
    return asyncio.run(serve(args))


if __name__ == "__main__":
    raise SystemExit(main())
