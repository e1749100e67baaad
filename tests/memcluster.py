"""An in-memory cluster for the reconcilers, without kopf or an API server: dict-backed indexes
and a recording writer whose writes come back as watch events, through the same trigger map
and queues as in `modelfs run`.

    cluster = MemCluster()
    cluster.put(source_body(...)); ...
    async with cluster.running() as operator:   # queues and workers, as the operator runs them
        await cluster.settle()
    cluster.writes   # every API write, in order
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import dataclasses
import itertools
import time
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Callable, Iterator, Mapping
from typing import Any

from modelfs import operator as operator_module
from modelfs.api.v1 import API_VERSION
from modelfs.controllers import triggers
from modelfs.controllers.descriptor import Descriptor, Watched
from modelfs.controllers.kinds import RECONCILED, WATCHED
from modelfs.controllers.result import Result
from modelfs.controllers.runtime import Context, Indexes, Key, Runtime, body_key

API = API_VERSION


class View(Mapping[Any, Any]):
    """A kind's index as kopf keeps it, computed from what the watch has brought by the kind's
    own index function (`Watched.index`), afresh after every change."""

    def __init__(self, cluster: MemCluster, kind: Watched) -> None:
        self._cluster, self._kind = cluster, kind
        self._cache: tuple[int, dict[Any, list[Any]]] | None = None

    def _compute(self) -> dict[Any, list[Any]]:
        version = self._cluster.changes
        if self._cache is None or self._cache[0] != version:
            index: dict[Any, list[Any]] = {}
            for body in self._cluster.seen[self._kind.plural].values():
                for key, value in self._kind.index(body).items():
                    index.setdefault(key, []).append(value)
            self._cache = (version, index)
        return self._cache[1]

    def __getitem__(self, key: Any) -> Any:
        return self._compute()[key]

    def __iter__(self) -> Iterator[Any]:
        return iter(self._compute())

    def __len__(self) -> int:
        return len(self._compute())


class MemCluster:
    def __init__(self, lag: float = 0.0, extra: tuple[Descriptor, ...] = ()) -> None:
        """`extra`: kinds reconciled besides modelfs's own (a kind being added)."""
        self.reconciled = (*RECONCILED, *extra)
        self.watched = (*WATCHED, *extra)
        self.by_plural = {kind.plural: kind for kind in self.watched}
        self.kinds = {kind.kind: kind.plural for kind in self.reconciled} | {"Dataset": "datasets"}
        """Kind name -> plural, of what a test puts."""
        self.objects: dict[str, dict[Key, dict[str, Any]]] = {k.plural: {} for k in self.watched}
        """What the API server holds."""
        self.seen: dict[str, dict[Key, dict[str, Any]]] = {k.plural: {} for k in self.watched}
        """What the indexes hold: `objects` as the watch has brought it so far."""
        self.changes = 0
        """Bumped on every change of `seen`: the indexes are computed again."""
        self.lag = lag
        """Seconds between a write and its watch event (0: at once). With a lag, writes of one
        object within it come as ONE event, of the last version (kopf batches so): modelfs may
        never see the version it wrote."""
        self._emitted: dict[tuple[str, Key], int] = {}
        self.on_apply: Callable[[Key], None] | None = None
        """The Dataset controller's answer to an apply, written at once (e.g. its status)."""
        self.secrets: dict[Key, frozenset[str]] = {}
        self.writes: list[tuple[str, str, Key]] = []
        """(verb, plural, key) of every write."""
        self.events: list[tuple[Key, str, str]] = []
        """(involved key, type, reason) of every Event posted."""
        self.reconciles: Counter[tuple[str, Key]] = Counter()
        self._versions = itertools.count(1)
        self.operator: operator_module.Operator | None = None
        self.indexes = Indexes.build(self.watched, lambda kind: View(self, kind))
        self.runtime = Runtime(writer=self)

    @property
    def ctx(self) -> Context:
        return Context(self.runtime, self.indexes)

    # -- the user's side

    def namespace(self, name: str, **labels: str) -> None:
        body: dict[str, Any] = {"metadata": {"name": name, "labels": labels}}
        self.seen["namespaces"][("", name)] = self.objects["namespaces"][("", name)] = body
        self.changes += 1

    def terminate_namespace(self, name: str) -> None:
        """The namespace is being deleted (as the indexes see it)."""
        body = self.objects["namespaces"][("", name)]
        body["status"] = {"phase": "Terminating"}
        self.seen["namespaces"][("", name)] = body
        self.changes += 1

    def put(self, body: dict[str, Any]) -> dict[str, Any]:
        """Create or replace an object, as `kubectl apply` would; a watch event follows."""
        plural = self.kinds[body["kind"]]
        key = body_key(body)
        stored = copy.deepcopy(body)
        meta = stored["metadata"]
        old = self.objects[plural].get(key)
        # unique, as the API server's: modelfs remembers resolutions per uid and generation
        meta.setdefault(
            "uid", (old or {}).get("metadata", {}).get("uid") or f"uid-{key[1]}-{uuid.uuid4().hex}"
        )
        meta.setdefault("creationTimestamp", f"2026-11-27T00:00:{next(self._versions) % 60:02d}Z")
        meta["generation"] = int((old or {}).get("metadata", {}).get("generation") or 0) + 1
        if old is not None and "status" in old and "status" not in stored:
            stored["status"] = old["status"]
        return self._store(plural, key, stored)

    def delete(self, kind: str, key: Key) -> None:
        plural = self.kinds[kind]
        body = self.objects[plural].pop(key)
        self._emit(plural, body, deleted=True)

    def _store(self, plural: str, key: Key, body: dict[str, Any]) -> dict[str, Any]:
        body["metadata"]["resourceVersion"] = str(next(self._versions))
        self.objects[plural][key] = body
        self._emit(plural, body)
        return copy.deepcopy(body)

    def _emit(self, plural: str, body: dict[str, Any], *, deleted: bool = False) -> None:
        """A watch event, delivered as kopf would: after the write returned, the index updated
        first (`lag` seconds after the write)."""
        snapshot = copy.deepcopy(body)
        key = body_key(snapshot)

        def index() -> None:
            if deleted:
                self.seen[plural].pop(key, None)
            else:
                self.seen[plural][key] = snapshot
            self.changes += 1

        if self.operator is None:
            index()
            return
        operator = self.operator
        number = self._emitted[(plural, key)] = self._emitted.get((plural, key), 0) + 1

        def deliver() -> None:
            if self.lag:
                if self._emitted[(plural, key)] != number:
                    return  # a later write of it comes in its place
                index()
            operator.on_event(self.by_plural[plural], snapshot, self.indexes)

        if not self.lag:
            index()
            asyncio.get_running_loop().call_soon(deliver)
        else:
            asyncio.get_running_loop().call_later(self.lag, deliver)

    # -- the Writer protocol (what the reconcilers call)

    async def patch_status(
        self, plural: str, namespace: str, name: str, status: dict[str, Any]
    ) -> dict[str, Any] | None:
        body = self.objects[plural].get((namespace, name))
        if body is None:
            return None
        self.writes.append(("patch-status", plural, (namespace, name)))
        merged = {**(body.get("status") or {}), **status}
        body = {**body, "status": {k: v for k, v in merged.items() if v is not None}}
        return self._store(plural, (namespace, name), copy.deepcopy(body))

    async def patch_metadata(
        self, plural: str, namespace: str, name: str, patch: dict[str, Any]
    ) -> dict[str, Any] | None:
        body = self.objects[plural].get((namespace, name))
        if body is None:
            return None
        self.writes.append(("patch", plural, (namespace, name)))
        meta = {**body["metadata"], **patch["metadata"]}
        meta.pop("resourceVersion", None)
        return self._store(plural, (namespace, name), {**body, "metadata": meta})

    async def secret_keys(self, namespace: str, name: str) -> frozenset[str] | None:
        return self.secrets.get((namespace, name))

    async def create_event(
        self, involved: Mapping[str, Any], type_: str, reason: str, message: str
    ) -> None:
        self.writes.append(("create", "events", body_key(involved)))
        self.events.append((body_key(involved), type_, reason))

    async def apply_dataset(self, manifest: dict[str, Any]) -> dict[str, Any]:
        key = body_key(manifest)
        self.writes.append(("apply", "datasets", key))
        old = self.objects["datasets"].get(key) or {}
        body = copy.deepcopy(manifest)
        body["metadata"]["uid"] = old.get("metadata", {}).get("uid") or f"ds-{uuid.uuid4().hex}"
        body["status"] = old.get("status") or {}
        stored = self._store("datasets", key, body)
        if self.on_apply is not None:
            self.on_apply(key)
        return stored

    async def patch_dataset(
        self, namespace: str, name: str, patch: dict[str, Any]
    ) -> dict[str, Any]:
        self.writes.append(("patch", "datasets", (namespace, name)))
        body = merge_patched(copy.deepcopy(self.objects["datasets"][(namespace, name)]), patch)
        return self._store("datasets", (namespace, name), body)

    async def delete_dataset(self, namespace: str, name: str) -> bool:
        self.writes.append(("delete", "datasets", (namespace, name)))
        if (namespace, name) not in self.objects["datasets"]:
            return False
        self.delete("Dataset", (namespace, name))
        return True

    async def orphan_dataset(self, namespace: str, name: str, owner_uid: str) -> bool:
        body = self.objects["datasets"].get((namespace, name))
        if body is None:
            return False
        self.writes.append(("orphan", "datasets", (namespace, name)))
        body = copy.deepcopy(body)
        body["metadata"]["ownerReferences"] = []
        self._store("datasets", (namespace, name), body)
        return True

    # -- the Dataset controller's side

    def dataset_status(self, key: Key, **status: Any) -> None:
        body = copy.deepcopy(self.objects["datasets"][key])
        body["status"] = {**(body.get("status") or {}), **status}
        self._store("datasets", key, body)

    def ready_all_datasets(self) -> None:
        for key, body in list(self.objects["datasets"].items()):
            round_ = body["spec"].get("dataSyncRound", 1)
            self.dataset_status(
                key,
                phase="READY",
                lastSucceedRound=round_,
                pvcName=key[1],
                syncRoundStatuses=[
                    {
                        "round": round_,
                        "startTime": "2026-11-27T00:00:00Z",
                        "endTime": "2026-11-27T00:00:05Z",
                        "succeed": True,
                    }
                ],
                lastSyncTime="2026-11-27T00:00:05Z",
            )

    # -- the operator's side

    @contextlib.asynccontextmanager
    async def running(self) -> AsyncIterator[operator_module.Operator]:
        """The operator's queues and workers on this cluster, every reconcile counted."""
        counted = tuple(
            dataclasses.replace(kind, reconcile=self._counting(kind.plural, kind.reconcile))
            for kind in self.reconciled
        )
        operator = operator_module.Operator(self.runtime, counted)
        operator.indexes.set_result(self.indexes)
        self.operator = operator
        main = asyncio.get_running_loop().create_task(operator.start())
        try:
            await asyncio.sleep(0)
            operator.enqueue(triggers.everything(self.indexes, operator.kinds))
            yield operator
        finally:
            main.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await main
            await operator.stop()
            self.operator = None

    def _counting(self, kind: str, reconcile: Any) -> Any:
        async def counted(ctx: Context, key: Key, body: dict[str, Any]) -> Result:
            self.reconciles[(kind, key)] += 1
            result: Result = await reconcile(ctx, key, body)
            return result

        return counted

    async def settle(self, quiet: float = 0.3, within: float = 20.0) -> None:
        """Until no queue has work and nothing was written for `quiet` seconds."""
        assert self.operator is not None
        deadline = time.monotonic() + within
        seen, since = len(self.writes), time.monotonic()
        while time.monotonic() < deadline:
            await asyncio.sleep(0.02)
            queues = self.operator.queues.values()
            due = [d for q in queues if (d := q.next_due()) is not None]
            busy = any(q.busy() for q in queues) or any(d < 1.5 for d in due)
            if busy or len(self.writes) != seen:
                seen, since = len(self.writes), time.monotonic()
            elif time.monotonic() - since >= quiet:
                return
        raise TimeoutError("the operator did not settle")


# ----------------------------------------------------------------------------- builders


def merge_patched(body: dict[str, Any], patch: dict[str, Any]) -> dict[str, Any]:
    """`body` after a JSON merge patch (RFC 7386): None deletes, maps merge."""
    for key, value in patch.items():
        if value is None:
            body.pop(key, None)
        elif isinstance(value, dict) and isinstance(body.get(key), dict):
            body[key] = merge_patched(body[key], value)
        else:
            body[key] = copy.deepcopy(value)
    return body


def obj(kind: str, namespace: str, name: str, spec: dict[str, Any]) -> dict[str, Any]:
    return {
        "apiVersion": API,
        "kind": kind,
        "metadata": {"name": name, "namespace": namespace},
        "spec": spec,
    }
