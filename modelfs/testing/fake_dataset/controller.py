"""The runtime of the fake Dataset controller: watches, a work queue, and the I/O that carries
out what `logic.reconcile()` plans. Plain asyncio + kubernetes.aio (no kopf, so it can share a
process or a cluster with the modelfs operator).

Three small controllers run side by side:
- datasets: the Dataset controller itself (logic.reconcile). Like the real one it watches
  Datasets only: a PROCESSING Dataset is polled every 5 s, so a finished Job is seen 0-5 s
  later. Its writes are the real one's: a full Update of the Dataset when it adds its
  finalizer, PVCs, PVs, ConfigMaps, Jobs, and Status().Update (no Events).
- jobs: the fake job controller, which ends each of the fake's loader Jobs (`spec.managedBy`:
  a real job controller leaves them alone; no pods run) after the round's duration with the
  outcome `fail-rounds` asks for;
- storage (optional, on by default): a stand-in for a provisioner + the PV binder + the PVC/PV
  protection controllers, for control planes without them. It binds the Dataset PVCs (a PV
  `pvc-<uid>` made for each, or the PV named in `spec.volumeName`), lets a deleted PVC go, and
  deletes the PVs it provisioned when their PVC is gone.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import datetime as dt
import logging
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field, replace
from typing import Any

from kubernetes.aio.client import ApiClient
from kubernetes.aio.client.exceptions import ApiException

from modelfs.testing.fake_dataset import logic
from modelfs.testing.fake_dataset.kube import JSON_PATCH, MERGE, Kube, list_and_watch

log = logging.getLogger("modelfs.fake_dataset")
#: pv.kubernetes.io/provisioned-by of the PVs the storage stand-in makes.
PROVISIONER = "fake.dataset.baizeai.io/provisioner"
PVC_PROTECTION, PV_PROTECTION = "kubernetes.io/pvc-protection", "kubernetes.io/pv-protection"
DATASETS = f"/apis/{logic.GROUP}/{logic.VERSION}"
Key = tuple[str, str, str]  # ("dataset" | "job" | "pvc" | "volume", namespace, name)


@dataclass(frozen=True)
class Settings:
    """How the fake runs. `defaults` are the loader Jobs' timings when no annotation says
    otherwise; `backoff_limit` goes into the Jobs (the Helm chart's default: 4)."""

    namespaces: tuple[str, ...] = ()  # empty: every namespace
    defaults: logic.Timings = field(default_factory=logic.Timings)
    backoff_limit: int = logic.DEFAULT_BACKOFF_LIMIT
    storage: bool = True
    resync: float | None = None  # re-reconcile every Dataset this often (upstream: 10 h)
    workers: int = 8


#: Timings that look like a real download, for `modelfs sandbox`.
SANDBOX_TIMINGS = logic.Timings(round_duration=8.0)


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

    `stats` counts reconciles, writes and the loader Jobs it ended."""

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
        self._job_started: dict[tuple[str, str], dt.datetime] = {}  # (ns, job) -> created
        self._known: set[tuple[str, str]] = set()
        self._task: asyncio.Task[None] | None = None

    # -- lifecycle

    async def run(self) -> None:
        """Watch and reconcile until `stop()`."""
        scopes = self.settings.namespaces or (None,)
        syncs_left = len(scopes) * (3 if self.settings.storage else 2)

        def synced() -> None:
            nonlocal syncs_left
            syncs_left -= 1
            if syncs_left == 0:
                self.ready.set()
                log.info("fake Dataset controller ready (%s)", self._scope_text())

        tasks = []
        for namespace in scopes:
            base = f"{DATASETS}/namespaces/{namespace}" if namespace else DATASETS
            core = f"/api/v1/namespaces/{namespace}" if namespace else "/api/v1"
            batch = f"/apis/batch/v1/namespaces/{namespace}" if namespace else "/apis/batch/v1"
            watches = [
                (f"{base}/{logic.PLURAL}", self._on_dataset, None),
                (f"{batch}/jobs", self._on_job, logic.NAME_LABEL),
            ]
            if self.settings.storage:
                watches.append((f"{core}/persistentvolumeclaims", self._on_pvc, logic.NAME_LABEL))
            for path, handler, selector in watches:
                tasks.append(
                    list_and_watch(
                        self.kube,
                        path,
                        handler,
                        label_selector=selector,
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
            return
        self._known.add(key)
        self.queue.add(("dataset", *key))

    def _on_job(self, kind: str, obj: dict[str, Any]) -> None:
        meta = obj.get("metadata") or {}
        if kind == "DELETED":
            self._job_started.pop((meta.get("namespace", ""), meta.get("name", "")), None)
            return
        if (obj.get("spec") or {}).get("managedBy") != logic.JOB_MANAGED_BY:
            return  # not one of the fake's
        if logic.JobView.from_job(obj).running:
            self.queue.add(("job", meta.get("namespace", ""), meta.get("name", "")))

    def _on_pvc(self, kind: str, obj: dict[str, Any]) -> None:
        meta = obj.get("metadata") or {}
        if kind == "DELETED":  # gone before this stand-in saw it go: its volume may follow
            volume = (obj.get("spec") or {}).get("volumeName")
            if volume:
                self.queue.add(("volume", "", volume))
            return
        self.queue.add(("pvc", meta.get("namespace", ""), meta.get("name", "")))

    async def _resync(self, every: float) -> None:
        while True:
            await asyncio.sleep(every)
            for namespace, name in list(self._known):
                self.queue.add(("dataset", namespace, name))

    async def _worker(self) -> None:
        handlers = {
            "dataset": self.reconcile_dataset,
            "job": self.reconcile_job,
            "pvc": self.reconcile_pvc,
            "volume": self.reconcile_volume,
        }
        while True:
            key = await self.queue.get()
            try:
                kind, namespace, name = key
                await handlers[kind](namespace, name)
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
        backoff = self.settings.backoff_limit
        try:
            observed = await self._observe(ds, ns_obj, now)
            plan = logic.reconcile(ds, observed, backoff_limit=backoff)
        except (KeyError, TypeError, ValueError, AttributeError) as error:
            log.warning("%s/%s: malformed Dataset: %r", namespace, name, error)
            await self._write_status(
                ds, logic.malformed_status(ds, f"malformed Dataset: {error}", now)
            )
            return
        for note in plan.notes:
            log.info("%s/%s: %s", namespace, name, note)
        for api_version, kind, obj_ns, obj_name in plan.deletes:
            await self._delete(api_version, kind, obj_ns, obj_name)
        latest = ds
        if plan.update is not None:
            latest = await self.kube.request(
                "PUT", _dataset_path(namespace, name), body=plan.update
            )
            self.stats["writes"] += 1
            if logic.is_deleting(ds):
                for pvc_ns, pvc_name, labels in plan.label_patches:
                    await self._patch_labels(pvc_ns, pvc_name, labels)
                log.info("%s/%s: finalizers removed", namespace, name)
                return  # the Dataset is gone now: no status to write
            log.info("%s/%s: finalizer added (full Update)", namespace, name)
            if plan.resume:
                plan = logic.reconcile(latest, observed, backoff_limit=backoff, resumed=True)
                for note in plan.notes:
                    log.info("%s/%s: %s", namespace, name, note)
        for obj in plan.creates:
            await self._create(obj)
            if obj["kind"] == "Job":
                self._job_started[(namespace, obj["metadata"]["name"])] = now
        for obj in plan.updates:
            await self._put(obj)
        for pvc_ns, pvc_name, labels in plan.label_patches:
            await self._patch_labels(pvc_ns, pvc_name, labels)
        if plan.status_changed:
            await self._write_status(latest, plan.status)
        if plan.requeue_after is not None:
            self.queue.add_after(key, plan.requeue_after)

    async def _observe(
        self, ds: dict[str, Any], ns_obj: dict[str, Any] | None, now: dt.datetime
    ) -> logic.Observed:
        meta = ds["metadata"]
        namespace = meta["namespace"]
        kind = logic.source_type(ds)
        pvc = await self.kube.get(
            f"/api/v1/namespaces/{namespace}/persistentvolumeclaims/{logic.pvc_name_for(ds)}"
        )
        configmap = None
        if kind == "CONDA":
            configmap = await self.kube.get(
                f"/api/v1/namespaces/{namespace}/configmaps/{logic.configmap_name(meta['name'])}"
            )
        jobs: dict[str, logic.JobView] = {}
        if kind in logic.PRELOAD_TYPES:
            for job_name in logic.jobs_to_read(ds):
                job = await self.kube.get(f"/apis/batch/v1/namespaces/{namespace}/jobs/{job_name}")
                if job is not None:
                    jobs[job_name] = logic.JobView.from_job(job)
        source = await self._observe_source(ds) if kind == "REFERENCE" else None
        nfs_pv = None
        if kind == "NFS":
            nfs_pv = await self.kube.get(f"/api/v1/persistentvolumes/{logic.nfs_pv_name(ds)}")
        return logic.Observed(
            now=now,
            namespace=ns_obj,
            namespace_error=None if ns_obj else logic.go_not_found("Namespace", namespace),
            pvc=pvc,
            configmap=configmap,
            jobs=jobs,
            source=source,
            nfs_pv=nfs_pv,
        )

    async def _observe_source(self, ds: dict[str, Any]) -> logic.SourceObservation:
        uri = logic.source_uri(ds)
        src_ns, src_name = logic.reference_target(ds)
        src = await self.kube.get(_dataset_path(src_ns, src_name)) if src_ns and src_name else None
        if src is None:
            missing = logic.go_not_found(logic.KIND, src_name, logic.GROUP)
            return logic.SourceObservation(
                dataset_error=f"fetch source dataset {uri} error: {missing}"
            )
        clone = await self.kube.get(f"/api/v1/persistentvolumes/{logic.clone_pv_name(ds)}")
        pvc_name = (src.get("status") or {}).get("pvcName")
        if not pvc_name:
            return logic.SourceObservation(dataset=src, clone_exists=clone is not None)
        pvc = await self.kube.get(f"/api/v1/namespaces/{src_ns}/persistentvolumeclaims/{pvc_name}")
        if pvc is None:
            return logic.SourceObservation(
                dataset=src,
                pvc_error=logic.go_not_found("PersistentVolumeClaim", pvc_name),
                clone_exists=clone is not None,
            )
        volume = (pvc.get("spec") or {}).get("volumeName")
        pv = await self.kube.get(f"/api/v1/persistentvolumes/{volume}") if volume else None
        return logic.SourceObservation(
            dataset=src,
            pvc=pvc,
            pv=pv,
            pv_error=None if pv else logic.go_not_found("PersistentVolume", str(volume)),
            clone_exists=clone is not None,
        )

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

    async def _put(self, obj: dict[str, Any]) -> None:
        meta = obj["metadata"]
        path = _collection_path(obj["apiVersion"], obj["kind"], meta.get("namespace"))
        await self.kube.request("PUT", f"{path}/{meta['name']}", body=obj)
        self.stats["writes"] += 1
        log.info("updated %s %s", obj["kind"], _where(meta.get("namespace"), meta["name"]))

    async def _delete(self, api_version: str, kind: str, namespace: str | None, name: str) -> None:
        path = _collection_path(api_version, kind, namespace) + f"/{name}"
        try:
            await self.kube.request("DELETE", path, body={"propagationPolicy": "Background"})
            self.stats["writes"] += 1
            log.info("deleted %s %s", kind, _where(namespace, name))
        except ApiException as error:
            if error.status != 404:
                raise

    # -- the fake job controller

    async def reconcile_job(self, namespace: str, name: str) -> None:
        """End one of the fake's loader Jobs once its round's time has come."""
        path = f"/apis/batch/v1/namespaces/{namespace}/jobs/{name}"
        job = await self.kube.get(path)
        if job is None or (job.get("spec") or {}).get("managedBy") != logic.JOB_MANAGED_BY:
            return
        if not logic.JobView.from_job(job).running:
            self._job_started.pop((namespace, name), None)
            return
        now = self.clock()
        started = (
            self._job_started.get((namespace, name))
            or logic.parse_time(job["metadata"].get("creationTimestamp"))
            or now
        )
        ns_obj = await self.kube.get(f"/api/v1/namespaces/{namespace}")
        ns_annotations = (ns_obj or {}).get("metadata", {}).get("annotations") or {}
        warnings: list[str] = []
        timings = logic.resolve_timings(
            job["metadata"].get("annotations"), ns_annotations, self.settings.defaults, warnings
        )
        for warning in warnings:
            log.warning("%s/%s: %s", namespace, name, warning)
        verdict = logic.job_verdict(job, started, timings, now)
        if not verdict.done:
            self.queue.add_after(("job", namespace, name), verdict.remaining)
            return
        await self.kube.request(
            "PATCH",
            f"{path}/status",
            body={"status": logic.job_status_patch(verdict, started, now)},
            content_type=MERGE,
        )
        self.stats["jobs_succeeded" if verdict.succeeded else "jobs_failed"] += 1
        self._job_started.pop((namespace, name), None)
        log.info("%s/%s: Job %s", namespace, name, "succeeded" if verdict.succeeded else "failed")

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
        """A deleted PVC: no pod uses it (none runs), so the protection finalizer goes (unless
        the cluster's pvc-protection controller took it first), and a PV this stand-in
        provisioned goes with its claim (reclaim policy Delete)."""
        meta = pvc["metadata"]
        finalizers = meta.get("finalizers") or []
        if PVC_PROTECTION in finalizers:
            index = finalizers.index(PVC_PROTECTION)
            try:
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
            except ApiException as error:
                if error.status not in (404, 409, 422):
                    raise
        volume = (pvc.get("spec") or {}).get("volumeName")
        if volume:
            await self.reconcile_volume("", volume)

    async def reconcile_volume(self, _: str, name: str) -> None:
        """Delete a PV this stand-in provisioned (`pvc-<claim uid>`) once its claim is gone."""
        pv_path = f"/api/v1/persistentvolumes/{name}"
        pv = await self.kube.get(pv_path)
        if pv is None:
            return
        provisioned = (pv["metadata"].get("annotations") or {}).get(
            "pv.kubernetes.io/provisioned-by"
        )
        claim = (pv.get("spec") or {}).get("claimRef") or {}
        if provisioned != PROVISIONER or name != f"pvc-{claim.get('uid')}":
            # Retain: left behind, Released, as a real cluster would (a REFERENCE's clone of
            # a PV this stand-in made carries its annotation, but is not its own)
            return
        where = f"/api/v1/namespaces/{claim.get('namespace')}/persistentvolumeclaims"
        live = await self.kube.get(f"{where}/{claim.get('name')}")
        if (
            live is not None
            and live["metadata"]["uid"] == claim.get("uid")
            and not live["metadata"].get("deletionTimestamp")
        ):
            return  # still claimed
        if not pv["metadata"].get("deletionTimestamp"):
            await self._delete("v1", "PersistentVolume", None, name)
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
