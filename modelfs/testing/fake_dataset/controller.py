"""The runtime of the fake Dataset controller: watches, a work queue, and the I/O that carries
out what `logic.reconcile()` plans. Plain asyncio + kubernetes.aio (no kopf, so it can share a
process or a cluster with the modelfs operator).

Three small controllers run side by side:
- datasets: the Dataset controller itself (logic.reconcile);
- jobs: the fake job controller, which ends each loader Job after the round's duration with the
  outcome `fail-rounds` asks for (no pods run on the local control plane);
- storage (optional, on by default): a stand-in for a provisioner + the PV binder + the PVC/PV
  protection controllers, which the local control plane lacks. It binds the Dataset PVCs (a PV
  `pvc-<uid>` made for each, or the PV named in `spec.volumeName`), lets a deleted PVC go, and
  deletes the PVs it provisioned when their PVC is gone.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import datetime as dt
import logging
import os
import socket
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field, replace
from typing import Any

from kubernetes.aio.client import ApiClient
from kubernetes.aio.client.exceptions import ApiException

from modelfs.testing.fake_dataset import logic
from modelfs.testing.fake_dataset.kube import JSON_PATCH, MERGE, Kube, list_and_watch

log = logging.getLogger("modelfs.fake_dataset")
COMPONENT = "fake-dataset-controller"
#: pv.kubernetes.io/provisioned-by of the PVs the storage stand-in makes.
PROVISIONER = "fake.dataset.baizeai.io/provisioner"
PVC_PROTECTION, PV_PROTECTION = "kubernetes.io/pvc-protection", "kubernetes.io/pv-protection"
DATASETS = f"/apis/{logic.GROUP}/{logic.VERSION}"
Key = tuple[str, str, str]  # ("dataset" | "pvc", namespace, name)


@dataclass(frozen=True)
class Settings:
    """How the fake runs. `defaults` are the timings when no annotation says otherwise."""

    namespaces: tuple[str, ...] = ()  # empty: every namespace
    defaults: logic.Timings = field(default_factory=logic.Timings)
    storage: bool = True
    resync: float | None = None  # re-reconcile every Dataset this often (upstream: 10 h)
    workers: int = 8
    events: bool = True


#: Timings that look like a real download, for `modelfs sandbox`.
SANDBOX_TIMINGS = logic.Timings(pending=1.0, transient_failed=1.0, round_duration=8.0)


def utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


class WorkQueue:
    """client-go's work queue, small: a key is never processed by two workers at once, a key
    added while it is processed is processed again afterwards, `add_after` keeps the earliest."""

    def __init__(self) -> None:
        self._queue: asyncio.Queue[Key] = asyncio.Queue()
        self._queued: set[Key] = set()
        self._active: set[Key] = set()
        self._dirty: set[Key] = set()
        self._timers: dict[Key, tuple[float, asyncio.TimerHandle]] = {}

    def add(self, key: Key) -> None:
        if key in self._active:
            self._dirty.add(key)
        elif key not in self._queued:
            self._queued.add(key)
            self._queue.put_nowait(key)

    def add_after(self, key: Key, delay: float) -> None:
        loop = asyncio.get_running_loop()
        when = loop.time() + max(delay, 0.0)
        existing = self._timers.get(key)
        if existing is not None:
            if existing[0] <= when:
                return
            existing[1].cancel()
        handle = loop.call_at(when, self._fire, key)
        self._timers[key] = (when, handle)

    def _fire(self, key: Key) -> None:
        self._timers.pop(key, None)
        self.add(key)

    async def get(self) -> Key:
        key = await self._queue.get()
        self._queued.discard(key)
        self._active.add(key)
        return key

    def done(self, key: Key) -> None:
        self._active.discard(key)
        if key in self._dirty:
            self._dirty.discard(key)
            self.add(key)

    def close(self) -> None:
        for _, handle in self._timers.values():
            handle.cancel()
        self._timers.clear()


class FakeDataset:
    """The fake Dataset controller, in-process:

        async with FakeDataset(api, Settings()) as fake:   # returns once the first lists are in
            ...
        # or: await FakeDataset(api).run()  until .stop()

    `stats` counts reconciles, writes and `concurrent_rounds` (rounds started while the previous
    round's Job still ran)."""

    def __init__(
        self,
        api: ApiClient,
        settings: Settings | None = None,
        *,
        clock: Callable[[], dt.datetime] = utcnow,
    ) -> None:
        self.kube = Kube(api)
        self.settings = settings or Settings()
        self.clock = clock
        self.queue = WorkQueue()
        self.stats: collections.Counter[str] = collections.Counter()
        self.ready = asyncio.Event()
        self._stopping = asyncio.Event()
        self._transient: dict[tuple[str, int], dt.datetime] = {}  # (uid, round) -> first shown
        self._job_started: dict[tuple[str, str], dt.datetime] = {}  # (ns, job) -> created
        self._known: set[tuple[str, str]] = set()
        self._task: asyncio.Task[None] | None = None
        self._instance = f"{socket.gethostname()}-{os.getpid()}"

    # -- lifecycle

    async def run(self) -> None:
        """Watch and reconcile until `stop()`."""
        scopes = self.settings.namespaces or (None,)
        syncs_left = len(scopes) * (2 if self.settings.storage else 1)

        def synced() -> None:
            nonlocal syncs_left
            syncs_left -= 1
            if syncs_left == 0:
                self.ready.set()
                log.info("fake Dataset controller ready (%s)", self._scope_text())

        tasks = []
        for namespace in scopes:
            base = f"{DATASETS}/namespaces/{namespace}" if namespace else DATASETS
            tasks.append(
                list_and_watch(
                    self.kube,
                    f"{base}/{logic.PLURAL}",
                    self._on_dataset,
                    on_synced=synced,
                    stopping=self._stopping,
                )
            )
            if self.settings.storage:
                core = f"/api/v1/namespaces/{namespace}" if namespace else "/api/v1"
                tasks.append(
                    list_and_watch(
                        self.kube,
                        f"{core}/persistentvolumeclaims",
                        self._on_pvc,
                        label_selector=logic.NAME_LABEL,
                        on_synced=synced,
                        stopping=self._stopping,
                    )
                )
        workers = [self._worker() for _ in range(max(self.settings.workers, 1))]
        if self.settings.resync:
            workers.append(self._resync(self.settings.resync))
        running = [asyncio.ensure_future(coro) for coro in (*tasks, *workers)]
        try:
            await self._stopping.wait()
        finally:
            for task in running:
                task.cancel()
            await asyncio.gather(*running, return_exceptions=True)
            self.queue.close()
            log.info("fake Dataset controller stopped: %s", dict(self.stats))

    def stop(self) -> None:
        self._stopping.set()

    async def __aenter__(self) -> FakeDataset:
        self._task = asyncio.create_task(self.run())
        ready = asyncio.ensure_future(self.ready.wait())
        done, _ = await asyncio.wait({ready, self._task}, return_when=asyncio.FIRST_COMPLETED)
        if self._task in done:
            ready.cancel()
            self._task.result()
            raise RuntimeError("the fake Dataset controller stopped while starting")
        return self

    async def __aexit__(self, *exc: object) -> None:
        self.stop()
        if self._task is not None:
            await self._task

    def _scope_text(self) -> str:
        return (
            "namespaces " + ",".join(self.settings.namespaces)
            if self.settings.namespaces
            else "all namespaces"
        )

    # -- event handlers

    def _on_dataset(self, kind: str, obj: dict[str, Any]) -> None:
        meta = obj.get("metadata") or {}
        key = (meta.get("namespace", ""), meta.get("name", ""))
        if kind == "DELETED":
            self._known.discard(key)
            uid = meta.get("uid", "")
            for remembered in [k for k in self._transient if k[0] == uid]:
                del self._transient[remembered]
            return
        self._known.add(key)
        self.queue.add(("dataset", *key))

    def _on_pvc(self, kind: str, obj: dict[str, Any]) -> None:
        meta = obj.get("metadata") or {}
        self.queue.add(("pvc", meta.get("namespace", ""), meta.get("name", "")))

    async def _resync(self, every: float) -> None:
        while True:
            await asyncio.sleep(every)
            for namespace, name in list(self._known):
                self.queue.add(("dataset", namespace, name))

    async def _worker(self) -> None:
        while True:
            key = await self.queue.get()
            try:
                kind, namespace, name = key
                if kind == "dataset":
                    await self.reconcile_dataset(namespace, name)
                else:
                    await self.reconcile_pvc(namespace, name)
            except asyncio.CancelledError:
                raise
            except ApiException as error:
                if error.status == 409:
                    log.debug("%s: conflict, again", key)
                    self.queue.add_after(key, 0.05)
                else:
                    log.warning("%s: %s %s %s", key, error.status, error.reason, _short(error.body))
                    self.queue.add_after(key, 1.0)
            except Exception:
                log.exception("%s: reconcile failed", key)
                self.queue.add_after(key, 1.0)
            finally:
                self.queue.done(key)

    # -- the Dataset controller

    async def reconcile_dataset(self, namespace: str, name: str) -> None:
        ds = await self.kube.get(_dataset_path(namespace, name))
        if ds is None:
            return
        self.stats["reconciles"] += 1
        key = ("dataset", namespace, name)
        now = self.clock()
        ns_obj = await self.kube.get(f"/api/v1/namespaces/{namespace}")
        ns_annotations = (ns_obj or {}).get("metadata", {}).get("annotations") or {}
        try:
            timings = logic.resolve_timings(
                ds["metadata"].get("annotations"), ns_annotations, self.settings.defaults
            )
        except logic.InjectionError as error:
            await self._write_status(ds, logic.malformed_status(ds, f"fake: {error}", now))
            return
        try:
            observed = await self._observe(ds, ns_obj, now)
            plan = logic.reconcile(ds, observed, timings)
        except (KeyError, TypeError, ValueError, AttributeError) as error:
            log.warning("%s/%s: malformed Dataset: %r", namespace, name, error)
            await self._write_status(
                ds, logic.malformed_status(ds, f"malformed Dataset: {error}", now)
            )
            return
        await self._carry_out(ds, plan, now)
        if plan.requeue_after is not None:
            self.queue.add_after(key, plan.requeue_after)

    async def _observe(
        self, ds: dict[str, Any], ns_obj: dict[str, Any] | None, now: dt.datetime
    ) -> logic.Observed:
        meta = ds["metadata"]
        namespace, uid = meta["namespace"], meta["uid"]
        pvc = await self.kube.get(
            f"/api/v1/namespaces/{namespace}/persistentvolumeclaims/{logic.pvc_name_for(ds)}"
        )
        jobs: dict[str, logic.JobView] = {}
        if logic.source_type(ds) in logic.PRELOAD_TYPES:
            jobs = await self._run_jobs(ds, ns_obj, now)
        source = None
        if logic.source_type(ds) == "REFERENCE":
            source = await self._observe_source(ds)
        nfs_pv = None
        if logic.source_type(ds) == "NFS":
            nfs_pv = await self.kube.get(f"/api/v1/persistentvolumes/{logic.nfs_pv_name(ds)}")
        round_ = logic.data_sync_round(ds)
        return logic.Observed(
            now=now,
            namespace=ns_obj,
            namespace_error=None if ns_obj else f'namespaces "{namespace}" not found',
            pvc=pvc,
            jobs=jobs,
            source=source,
            nfs_pv=nfs_pv,
            transient_since=self._transient.get((uid, round_)),
        )

    async def _observe_source(self, ds: dict[str, Any]) -> logic.SourceObservation:
        uri = logic.source_uri(ds)
        src_ns, src_name = logic.reference_target(ds)
        if not src_ns or not src_name:
            return logic.SourceObservation(
                dataset_error=f"fetch source dataset {uri} error: want dataset://<namespace>/<name>"
            )
        src = await self.kube.get(_dataset_path(src_ns, src_name))
        if src is None:
            return logic.SourceObservation(
                dataset_error=f"fetch source dataset {uri} error: "
                f'datasets.{logic.GROUP} "{src_name}" not found'
            )
        clone = await self.kube.get(f"/api/v1/persistentvolumes/{logic.clone_pv_name(ds)}")
        pvc_name = (src.get("status") or {}).get("pvcName")
        if not pvc_name:
            return logic.SourceObservation(dataset=src, clone_exists=clone is not None)
        pvc = await self.kube.get(f"/api/v1/namespaces/{src_ns}/persistentvolumeclaims/{pvc_name}")
        if pvc is None:
            return logic.SourceObservation(
                dataset=src,
                pvc_error=f'persistentvolumeclaims "{pvc_name}" not found',
                clone_exists=clone is not None,
            )
        volume = (pvc.get("spec") or {}).get("volumeName")
        pv = await self.kube.get(f"/api/v1/persistentvolumes/{volume}") if volume else None
        return logic.SourceObservation(
            dataset=src,
            pvc=pvc,
            pv=pv,
            pv_error=None if pv else f'persistentvolumes "{volume}" not found',
            clone_exists=clone is not None,
        )

    async def _run_jobs(
        self, ds: dict[str, Any], ns_obj: dict[str, Any] | None, now: dt.datetime
    ) -> dict[str, logic.JobView]:
        """The fake job controller: list this Dataset's loader Jobs and finish the ones whose
        time has come. Returns what the Dataset controller then reads of them."""
        meta = ds["metadata"]
        namespace = meta["namespace"]
        listing = await self.kube.request(
            "GET",
            f"/apis/batch/v1/namespaces/{namespace}/jobs",
            query={"labelSelector": f"{logic.NAME_LABEL}={meta['name']}"},
        )
        ns_annotations = (ns_obj or {}).get("metadata", {}).get("annotations") or {}
        views: dict[str, logic.JobView] = {}
        for job in listing.get("items") or []:
            job_name = job["metadata"]["name"]
            if logic.round_of_job(job_name) is None:
                continue
            view = logic.JobView.from_job(job)
            if view.running:
                started = (
                    self._job_started.get((namespace, job_name))
                    or logic.parse_time(job["metadata"].get("creationTimestamp"))
                    or now
                )
                try:
                    timings = logic.resolve_timings(
                        job["metadata"].get("annotations"), ns_annotations, self.settings.defaults
                    )
                except logic.InjectionError:
                    timings = self.settings.defaults
                verdict = logic.job_verdict(job, started, timings, now)
                if verdict.done:
                    patch = {"status": logic.job_status_patch(verdict, started, now)}
                    job = await self.kube.request(
                        "PATCH",
                        f"/apis/batch/v1/namespaces/{namespace}/jobs/{job_name}/status",
                        body=patch,
                        content_type=MERGE,
                    )
                    self.stats["jobs_succeeded" if verdict.succeeded else "jobs_failed"] += 1
                    self._job_started.pop((namespace, job_name), None)
                    log.info(
                        "%s/%s: Job %s %s",
                        namespace,
                        meta["name"],
                        job_name,
                        "succeeded" if verdict.succeeded else "failed",
                    )
                    view = logic.JobView.from_job(job)
                else:
                    self.queue.add_after(("dataset", namespace, meta["name"]), verdict.remaining)
            views[job_name] = view
        return views

    async def _carry_out(self, ds: dict[str, Any], plan: logic.Plan, now: dt.datetime) -> None:
        meta = ds["metadata"]
        namespace, name, uid = meta["namespace"], meta["name"], meta["uid"]
        for note in plan.notes:
            log.info("%s/%s: %s", namespace, name, note)
        latest = ds
        for api_version, kind, obj_ns, obj_name in plan.deletes:
            await self._delete(api_version, kind, obj_ns, obj_name)
        if plan.finalizers is not None:
            body = {
                "metadata": {
                    "finalizers": plan.finalizers or None,
                    "resourceVersion": meta["resourceVersion"],
                }
            }
            latest = await self.kube.request(
                "PATCH", _dataset_path(namespace, name), body=body, content_type=MERGE
            )
            self.stats["writes"] += 1
            if not plan.finalizers:
                for pvc_ns, pvc_name, labels in plan.label_patches:
                    await self._patch_labels(pvc_ns, pvc_name, labels)
                log.info("%s/%s: finalizers removed", namespace, name)
                return  # the Dataset is gone now: no status to write
        for obj in plan.creates:
            await self._create(obj)
            if obj["kind"] == "Job":
                self._job_started[(namespace, obj["metadata"]["name"])] = now
        for pvc_ns, pvc_name, labels in plan.label_patches:
            await self._patch_labels(pvc_ns, pvc_name, labels)
        if plan.transient_round is not None:
            self._transient.setdefault((uid, plan.transient_round), now)
        if plan.started_job is not None:
            self._transient.pop((uid, logic.data_sync_round(ds)), None)
        if plan.status_changed:
            await self._write_status(latest, plan.status)
        for type_, reason, message in plan.events:
            if reason == logic.EVENT_CONCURRENT_ROUNDS:
                self.stats["concurrent_rounds"] += 1
                log.warning("%s/%s: CONCURRENT ROUNDS: %s", namespace, name, message)
            if self.settings.events:
                await self._event(latest, type_, reason, message, now)

    async def _patch_labels(self, namespace: str, name: str, labels: dict[str, str | None]) -> None:
        try:
            await self.kube.request(
                "PATCH",
                f"/api/v1/namespaces/{namespace}/persistentvolumeclaims/{name}",
                body={"metadata": {"labels": labels}},
                content_type=MERGE,
            )
            self.stats["writes"] += 1
        except ApiException as error:
            if error.status != 404:
                raise

    async def _write_status(self, ds: dict[str, Any], status: dict[str, Any]) -> None:
        """Status().Update(): the whole status, guarded by the resourceVersion."""
        if _strip(ds.get("status") or {}) == _strip(status):
            return
        meta = ds["metadata"]
        body = {
            "apiVersion": logic.API_VERSION,
            "kind": logic.KIND,
            "metadata": {
                "name": meta["name"],
                "namespace": meta["namespace"],
                "resourceVersion": meta["resourceVersion"],
            },
            "spec": ds.get("spec"),
            "status": status,
        }
        await self.kube.request(
            "PUT", _dataset_path(meta["namespace"], meta["name"]) + "/status", body=body
        )
        self.stats["writes"] += 1
        log.info("%s/%s: phase %s", meta["namespace"], meta["name"], status.get("phase"))

    async def _create(self, obj: dict[str, Any]) -> None:
        meta = obj["metadata"]
        path = _collection_path(obj["apiVersion"], obj["kind"], meta.get("namespace"))
        try:
            await self.kube.request("POST", path, body=obj)
            self.stats["writes"] += 1
            log.info("created %s %s", obj["kind"], _where(meta.get("namespace"), meta["name"]))
        except ApiException as error:
            if error.status != 409:
                raise

    async def _delete(self, api_version: str, kind: str, namespace: str | None, name: str) -> None:
        path = _collection_path(api_version, kind, namespace) + f"/{name}"
        try:
            await self.kube.request("DELETE", path, body={"propagationPolicy": "Background"})
            self.stats["writes"] += 1
            log.info("deleted %s %s", kind, _where(namespace, name))
        except ApiException as error:
            if error.status != 404:
                raise

    async def _event(
        self, ds: dict[str, Any], type_: str, reason: str, message: str, now: dt.datetime
    ) -> None:
        meta = ds["metadata"]
        stamp = logic.rfc3339(now)
        body = {
            "apiVersion": "v1",
            "kind": "Event",
            "metadata": {"generateName": f"{meta['name']}.", "namespace": meta["namespace"]},
            "involvedObject": {
                "apiVersion": logic.API_VERSION,
                "kind": logic.KIND,
                "name": meta["name"],
                "namespace": meta["namespace"],
                "uid": meta["uid"],
                "resourceVersion": meta.get("resourceVersion"),
            },
            "type": type_,
            "reason": reason,
            "message": message,
            "source": {"component": COMPONENT},
            "reportingComponent": COMPONENT,
            "reportingInstance": self._instance,
            "firstTimestamp": stamp,
            "lastTimestamp": stamp,
            "count": 1,
        }
        try:
            await self.kube.request(
                "POST", f"/api/v1/namespaces/{meta['namespace']}/events", body=body
            )
        except ApiException as error:
            log.warning(
                "event %s on %s/%s: %s", reason, meta["namespace"], meta["name"], error.status
            )

    # -- the storage stand-in

    async def reconcile_pvc(self, namespace: str, name: str) -> None:
        path = f"/api/v1/namespaces/{namespace}/persistentvolumeclaims/{name}"
        pvc = await self.kube.get(path)
        if pvc is None:
            return
        meta, spec = pvc["metadata"], pvc.get("spec") or {}
        if meta.get("deletionTimestamp"):
            await self._release(pvc, path)
            return
        if (pvc.get("status") or {}).get("phase") == "Bound":
            return
        volume = spec.get("volumeName")
        if not volume:
            volume = f"pvc-{meta['uid']}"
            await self._create(_provisioned_pv(pvc, volume))
            pvc = await self.kube.request(
                "PATCH",
                path,
                body={
                    "metadata": {
                        "resourceVersion": meta["resourceVersion"],
                        "annotations": {
                            "pv.kubernetes.io/bind-completed": "yes",
                            "pv.kubernetes.io/bound-by-controller": "yes",
                            "volume.kubernetes.io/storage-provisioner": PROVISIONER,
                        },
                    },
                    "spec": {"volumeName": volume},
                },
                content_type=MERGE,
            )
            self.stats["writes"] += 1
        pv_path = f"/api/v1/persistentvolumes/{volume}"
        pv = await self.kube.get(pv_path)
        if pv is None:
            return  # Pending, as it would be: no such volume
        claim = (pv.get("spec") or {}).get("claimRef")
        if claim and (claim.get("namespace"), claim.get("name")) != (namespace, name):
            return  # the volume belongs to another claim: Pending
        if not claim or claim.get("uid") != meta["uid"]:
            claim_ref = {
                "apiVersion": "v1",
                "kind": "PersistentVolumeClaim",
                "namespace": namespace,
                "name": name,
                "uid": meta["uid"],
            }
            await self.kube.request(
                "PATCH", pv_path, body={"spec": {"claimRef": claim_ref}}, content_type=MERGE
            )
        await self.kube.request(
            "PATCH", pv_path + "/status", body={"status": {"phase": "Bound"}}, content_type=MERGE
        )
        capacity = (pv.get("spec") or {}).get("capacity") or (
            (spec.get("resources") or {}).get("requests") or {}
        )
        await self.kube.request(
            "PATCH",
            path + "/status",
            body={
                "status": {
                    "phase": "Bound",
                    "accessModes": spec.get("accessModes"),
                    "capacity": capacity,
                }
            },
            content_type=MERGE,
        )
        self.stats["writes"] += 3
        log.info("bound PVC %s/%s to PV %s", namespace, name, volume)

    async def _release(self, pvc: dict[str, Any], path: str) -> None:
        """A deleted PVC: no pod uses it (none runs), so the protection finalizer goes, and a PV
        this stand-in provisioned goes with its claim (reclaim policy Delete)."""
        meta = pvc["metadata"]
        finalizers = meta.get("finalizers") or []
        if PVC_PROTECTION in finalizers:
            index = finalizers.index(PVC_PROTECTION)
            await self.kube.request(
                "PATCH",
                path,
                body=[
                    {
                        "op": "test",
                        "path": f"/metadata/finalizers/{index}",
                        "value": PVC_PROTECTION,
                    },
                    {"op": "remove", "path": f"/metadata/finalizers/{index}"},
                ],
                content_type=JSON_PATCH,
            )
            self.stats["writes"] += 1
        volume = (pvc.get("spec") or {}).get("volumeName")
        if not volume:
            return
        pv_path = f"/api/v1/persistentvolumes/{volume}"
        pv = await self.kube.get(pv_path)
        if pv is None:
            return
        provisioned = (pv["metadata"].get("annotations") or {}).get(
            "pv.kubernetes.io/provisioned-by"
        )
        if provisioned != PROVISIONER:
            return  # Retain: left behind, Released, as a real cluster would
        if not pv["metadata"].get("deletionTimestamp"):
            await self._delete("v1", "PersistentVolume", None, volume)
            pv = await self.kube.get(pv_path)
        if pv is not None and PV_PROTECTION in (pv["metadata"].get("finalizers") or []):
            finalizers = [f for f in pv["metadata"]["finalizers"] if f != PV_PROTECTION]
            await self.kube.request(
                "PATCH",
                pv_path,
                body={
                    "metadata": {
                        "finalizers": finalizers or None,
                        "resourceVersion": pv["metadata"]["resourceVersion"],
                    }
                },
                content_type=MERGE,
            )
            self.stats["writes"] += 1


def _provisioned_pv(pvc: dict[str, Any], name: str) -> dict[str, Any]:
    meta, spec = pvc["metadata"], pvc.get("spec") or {}
    requests = (spec.get("resources") or {}).get("requests") or {}
    pv_spec: dict[str, Any] = {
        "capacity": {"storage": requests.get("storage", logic.DEFAULT_STORAGE)},
        "accessModes": spec.get("accessModes") or ["ReadWriteMany"],
        "persistentVolumeReclaimPolicy": "Delete",
        "volumeMode": spec.get("volumeMode", "Filesystem"),
        "claimRef": {
            "apiVersion": "v1",
            "kind": "PersistentVolumeClaim",
            "namespace": meta["namespace"],
            "name": meta["name"],
            "uid": meta["uid"],
        },
        "csi": {"driver": "fake.csi.dataset.baizeai.io", "volumeHandle": meta["uid"]},
    }
    if spec.get("storageClassName"):
        pv_spec["storageClassName"] = spec["storageClassName"]
    return {
        "apiVersion": "v1",
        "kind": "PersistentVolume",
        "metadata": {"name": name, "annotations": {"pv.kubernetes.io/provisioned-by": PROVISIONER}},
        "spec": pv_spec,
    }


def _strip(status: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in status.items() if v not in (None, "", 0, False, [])}


def _dataset_path(namespace: str, name: str) -> str:
    return f"{DATASETS}/namespaces/{namespace}/{logic.PLURAL}/{name}"


_PLURALS = {
    "PersistentVolumeClaim": "persistentvolumeclaims",
    "PersistentVolume": "persistentvolumes",
    "Job": "jobs",
    "ConfigMap": "configmaps",
    "Event": "events",
}


def _collection_path(api_version: str, kind: str, namespace: str | None) -> str:
    prefix = "/api/v1" if api_version == "v1" else f"/apis/{api_version}"
    where = f"/namespaces/{namespace}" if namespace else ""
    return f"{prefix}{where}/{_PLURALS[kind]}"


def _where(namespace: str | None, name: str) -> str:
    return f"{namespace}/{name}" if namespace else name


def _short(body: Any, limit: int = 300) -> str:
    text = body.decode(errors="replace") if isinstance(body, bytes) else str(body)
    return text[:limit]


@contextlib.asynccontextmanager
async def running(api: ApiClient, settings: Settings | None = None) -> AsyncIterator[FakeDataset]:
    """`async with running(api, settings) as fake:` the fake runs in this event loop."""
    async with FakeDataset(api, settings) as fake:
        yield fake


def with_defaults(settings: Settings, **timings: Any) -> Settings:
    return replace(settings, defaults=replace(settings.defaults, **timings))
