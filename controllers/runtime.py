"""What every controller shares at run time: the API clients, the in-memory view of the cluster
(kopf indexes), per-object locks, and the memo of what modelfs last wrote.

Handlers stay small: they build a `Context` from kopf's keyword arguments and call plain async
functions that take it.
"""

from __future__ import annotations

import asyncio
import copy
import logging
from collections import defaultdict
from collections.abc import Callable, Coroutine, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

import kopf
from kubernetes.aio.client import ApiClient

from pkg.dataset.client import DatasetClient
from pkg.kube import ApiError, ObjectClient

logger = logging.getLogger("modelfs.runtime")

Key = tuple[str, str]
"""(namespace, name)"""


def body_key(body: Mapping[str, Any]) -> Key:
    meta = body.get("metadata", {})
    return (str(meta.get("namespace", "")), str(meta.get("name", "")))


def retry_later(error: Exception) -> kopf.TemporaryError:
    """How a handler reports an API failure to kopf: try again in a while."""
    return kopf.TemporaryError(f"API call failed, retrying: {error}", delay=10)


def condition(status: Mapping[str, Any], type_: str) -> dict[str, Any]:
    """A condition of a raw status by type, or {}."""
    for found in status.get("conditions") or []:
        if found.get("type") == type_:
            return dict(found)
    return {}


def snapshot(body: Mapping[str, Any]) -> dict[str, Any]:
    """A plain, detached copy of a kopf body, safe to keep in an index."""
    return copy.deepcopy(dict(body))


@dataclass
class Runtime:
    """One per operator process, kept in kopf's memo."""

    api: ApiClient
    datasets: DatasetClient
    objects: ObjectClient
    locks: defaultdict[tuple[str, Key], asyncio.Lock] = field(
        default_factory=lambda: defaultdict(asyncio.Lock)
    )
    written_status: dict[tuple[str, str], dict[str, Any]] = field(default_factory=dict)
    """The last status modelfs wrote, by (plural, uid): see `controllers.status.write_status`."""
    applied: dict[Key, dict[str, Any]] = field(default_factory=dict)
    """The Dataset as the last apply returned it, by (namespace, name), until its watch event."""
    secret_keys: dict[Key, frozenset[str] | None] = field(default_factory=dict)
    phases: dict[str, str] = field(default_factory=dict)
    """The phase of each ModelSync, by uid, for the per-phase gauge."""
    """Key names (never values) of the Secrets that ModelSources name; None: no such Secret."""

    wakeups: dict[tuple[str, Key], asyncio.TimerHandle] = field(default_factory=dict)
    """Reconciles due later (a retry backoff, a schedule), one per object: the earliest."""
    tasks: set[asyncio.Task[None]] = field(default_factory=set)

    first_context: asyncio.Future[Context] | None = None
    """Resolved by the first handler with kopf's (live) indexes, for work outside handlers."""

    def post_event(self, body: Mapping[str, Any], type_: str, reason: str, message: str) -> None:
        """Post an Event on `body` in the background, from any task (a handler, the resync, a
        wake-up). A failed post is logged, never raised: an Event is not worth a retry."""
        task = asyncio.get_running_loop().create_task(
            self._post_event(body, type_, reason, message)
        )
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)

    async def _post_event(
        self, body: Mapping[str, Any], type_: str, reason: str, message: str
    ) -> None:
        try:
            await self.objects.create_event(body, type_, reason, message)
        except ApiError as error:
            logger.warning(
                "Event not posted",
                extra={"object": body_key(body), "reason": reason, "error": str(error)},
            )

    def lock(self, kind: str, key: Key) -> asyncio.Lock:
        return self.locks[(kind, key)]

    def wake(
        self, kind: str, key: Key, delay: float, callback: Callable[[], Coroutine[Any, Any, None]]
    ) -> None:
        """Run `callback` in `delay` seconds, unless an earlier wake-up of `key` is set."""
        loop = asyncio.get_running_loop()
        when = loop.time() + max(delay, 0.0)
        current = self.wakeups.get((kind, key))
        if current is not None and not current.cancelled() and current.when() <= when:
            return
        if current is not None:
            current.cancel()

        def fire() -> None:
            self.wakeups.pop((kind, key), None)
            task = loop.create_task(callback())
            self.tasks.add(task)
            task.add_done_callback(self.tasks.discard)

        self.wakeups[(kind, key)] = loop.call_at(when, fire)


def first_value(store: Any) -> dict[str, Any] | None:
    """The newest value of a kopf Store (one object per key in our by-name indexes)."""
    if store is None:
        return None
    values = list(store)
    return values[-1] if values else None


@dataclass
class Indexes:
    """kopf's in-memory indexes, by the names the operator registers them under."""

    sources: Mapping[Key, Any]
    models: Mapping[Key, Any]
    models_by_source: Mapping[Key, Any]
    syncs: Mapping[Key, Any]
    syncs_by_model: Mapping[Key, Any]
    datasets: Mapping[Key, Any]
    namespaces: Mapping[str, Any]
    references: Mapping[Key, Any]
    references_by_model: Mapping[Key, Any]

    @classmethod
    def from_kwargs(cls, kwargs: Mapping[str, Any]) -> Indexes:
        return cls(
            namespaces=kwargs["namespace_index"],
            references=kwargs["modelreference_index"],
            references_by_model=kwargs["modelreference_by_model_index"],
            sources=kwargs["modelsource_index"],
            models=kwargs["model_index"],
            models_by_source=kwargs["model_by_source_index"],
            syncs=kwargs["modelsync_index"],
            syncs_by_model=kwargs["modelsync_by_model_index"],
            datasets=kwargs["dataset_index"],
        )

    def namespace(self, name: str) -> dict[str, Any] | None:
        return first_value(self.namespaces.get(name))

    def terminating(self, namespace: str) -> bool:
        """A namespace being deleted: its objects are going, so modelfs neither writes nor
        posts events there (the API server would refuse new objects anyway)."""
        found = self.namespace(namespace)
        return found is not None and bool(found.get("terminating"))

    def source(self, key: Key) -> dict[str, Any] | None:
        return first_value(self.sources.get(key))

    def model(self, key: Key) -> dict[str, Any] | None:
        return first_value(self.models.get(key))

    def sync(self, key: Key) -> dict[str, Any] | None:
        return first_value(self.syncs.get(key))

    def dataset(self, key: Key) -> dict[str, Any] | None:
        return first_value(self.datasets.get(key))

    def reference(self, key: Key) -> dict[str, Any] | None:
        return first_value(self.references.get(key))

    def references_of_model(self, key: Key) -> list[Key]:
        return sorted(set(self.references_by_model.get(key, ())))

    def model_names_of_source(self, key: Key) -> list[str]:
        return sorted(set(self.models_by_source.get(key, ())))

    def syncs_of_model(self, key: Key) -> Iterator[dict[str, Any]]:
        namespace = key[0]
        for name in sorted(set(self.syncs_by_model.get(key, ()))):
            body = self.sync((namespace, name))
            if body is not None:
                yield body


@dataclass
class Context:
    """What a reconcile needs: the runtime and the indexes."""

    runtime: Runtime
    indexes: Indexes

    @classmethod
    def from_kwargs(cls, memo: Any, kwargs: Mapping[str, Any]) -> Context:
        ctx = cls(runtime=memo.runtime, indexes=Indexes.from_kwargs(kwargs))
        handover = ctx.runtime.first_context
        if handover is not None and not handover.done():
            handover.set_result(ctx)
        return ctx
