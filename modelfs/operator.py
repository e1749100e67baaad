"""The operator: kopf settings, the handler registration, and `modelfs run`.

Registration is kept here, in one place, so the controllers stay plain functions: importing
`controllers` registers nothing.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import gc
import logging
import os
from collections.abc import Awaitable, Callable, Iterable, Mapping
from typing import Any, cast

import kopf
from kopf._cogs.aiokits import aiotoggles
from kubernetes.aio import config as aio_config
from kubernetes.aio.client import ApiClient, Configuration
from prometheus_client import start_http_server

from modelfs import dispatch
from modelfs.api.v1 import GROUP, VERSION
from modelfs.controllers import model, modelreference, modelsource, modelsync, triggers
from modelfs.controllers.isolation import isolated
from modelfs.controllers.queue import WorkQueue
from modelfs.controllers.runtime import (
    BY_MODEL,
    BY_SOURCE,
    BY_VERSION,
    Context,
    Indexes,
    Key,
    Runtime,
    body_key,
    snapshot,
)
from modelfs.pkg.dataset import (
    DATASET_GROUP,
    DATASET_PLURAL,
    DATASET_VERSION,
    MANAGED_BY,
    MANAGED_BY_LABEL,
)
from modelfs.pkg.kube.writer import KubeWriter

Reconciler = Callable[[Context, Key], Awaitable[float | None]]


logger = logging.getLogger("modelfs.operator")

# ----------------------------------------------------------------------------- indexes


# The index functions are coroutines: kopf runs a plain function in its thread pool, one hop per
# watch event per index (a thread switch and a future each), for what is a dict lookup.


async def by_name(body: kopf.Body, **_: Any) -> dict[tuple[str, str], dict[str, Any]]:
    return {(body.metadata.namespace or "", body.metadata.name or ""): snapshot(body)}


async def namespace_summary(body: kopf.Body, **_: Any) -> dict[str, dict[str, Any]]:
    """Per namespace: its labels (for sharing) and whether it is being deleted."""
    terminating = bool(body.metadata.get("deletionTimestamp")) or (
        body.get("status", {}).get("phase") == "Terminating"
    )
    return {
        body.metadata.name or "": {
            "labels": dict(body.metadata.labels or {}),
            "terminating": terminating,
        }
    }


# One index per kind: kopf invokes each index function on every watch event of its kind, with
# the whole handler machinery around it, so a kind's secondary keys share its one function.
# By name: (namespace, name) -> the snapshot; secondary keys start with a tag
# (`controllers.runtime.TAGS`), which no namespace name can.


async def model_index(
    body: kopf.Body, spec: kopf.Spec, **_: Any
) -> dict[tuple[str, ...], dict[str, Any] | str]:
    """By name, and by (namespace, ModelSource)."""
    namespace, name = body.metadata.namespace or "", body.metadata.name or ""
    return {
        (namespace, name): snapshot(body),
        (BY_SOURCE, namespace, str(spec.get("sourceRef", ""))): name,
    }


async def modelreference_index(
    body: kopf.Body, spec: kopf.Spec, **_: Any
) -> dict[tuple[str, ...], dict[str, Any] | tuple[str, str]]:
    """By name, and by the Model it reads (namespace, name) -> (namespace, name)."""
    namespace, name = body.metadata.namespace or "", body.metadata.name or ""
    target = spec.get("modelRef") or {}
    model = (str(target.get("namespace", "")), str(target.get("name", "")))
    return {(namespace, name): snapshot(body), (BY_MODEL, *model): (namespace, name)}


async def modelsync_index(
    body: kopf.Body, spec: kopf.Spec, **_: Any
) -> dict[tuple[str, ...], dict[str, Any] | str]:
    """By name, by (namespace, Model) and by (namespace, Model, version)."""
    namespace, name = body.metadata.namespace or "", body.metadata.name or ""
    model = str(spec.get("modelRef", ""))
    return {
        (namespace, name): snapshot(body),
        (BY_MODEL, namespace, model): name,
        (BY_VERSION, namespace, model, str(spec.get("version", ""))): name,
    }


RECONCILERS: dict[str, Reconciler] = {
    "modelsources": modelsource.reconcile,
    "models": model.reconcile,
    "modelsyncs": modelsync.reconcile,
    "modelreferences": modelreference.reconcile,
}
#: Workers per queue: a key is reconciled by one worker at a time; these bound the parallelism.
WORKERS = {"modelsources": 2, "models": 2, "modelsyncs": 32, "modelreferences": 4}
RESYNC_SECONDS = 30.0
"""Every key of every kind is enqueued this often: drift repair, schedules, Secret re-checks."""


QUIET_SECONDS = 3.0


def trim_memory() -> None:
    """Collect garbage and return free heap memory to the system (glibc's `malloc_trim`; a
    no-op elsewhere)."""
    gc.collect()
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL("libc.so.6").malloc_trim(0)


class Operator:
    """The queues and the reconcilers, fed by kopf's watches through the trigger map."""

    def __init__(self, runtime: Runtime) -> None:
        self.runtime = runtime
        self.queues: dict[str, WorkQueue[Key]] = {k: WorkQueue(k) for k in RECONCILERS}
        self.indexes: asyncio.Future[Indexes] = asyncio.get_running_loop().create_future()
        self.tasks: list[asyncio.Task[None]] = []
        self.dataset_reads: dict[Key, tuple[Any, ...]] = {}
        """Per Dataset, what the reconcilers read of it as last seen (`triggers.dataset_reads`)."""
        runtime.queues = self

    def backlog(self, plural: str) -> int:
        return self.queues[plural].backlog()

    def add_low(self, plural: str, key: Key) -> None:
        self.queues[plural].add(key, low=True)

    def enqueue(self, affected: triggers.Affected, *, low: bool = False) -> None:
        """`low`: a pass over objects that did not change (the resync, the initial listing)."""
        for kind, key in affected:
            if kind == "models" and not low:  # fan-in: many ModelSyncs change at once
                self.queues[kind].add_after(key, model.MIN_WRITE_INTERVAL)
            else:
                self.queues[kind].add(key, low=low)

    def on_event(
        self,
        plural: str,
        body: Mapping[str, Any],
        indexes: Indexes,
        affected: Callable[[Indexes, Mapping[str, Any]], triggers.Affected],
        *,
        listing: bool = False,
        deleted: bool = False,
    ) -> None:
        """A watch event of `body`: hand the indexes over (once), and enqueue what it affects.
        modelfs's own write coming back affects only what reads it (and a reconcile that waited
        for it)."""
        if not self.indexes.done():
            self.indexes.set_result(indexes)
        key = body_key(body)
        if deleted:
            self.runtime.forget(str(body.get("metadata", {}).get("uid") or ""))
        if plural == "datasets" and not self.dataset_read_changed(key, body, deleted):
            if self.runtime.observed(plural, key, body) and self.runtime.take_deferred(plural, key):
                self.enqueue(triggers.after_own_write(plural, indexes, body, waited=True))
            return
        if self.runtime.observed(plural, key, body):
            # taken whatever the kind: a Dataset has no queue, what waited for it is its owner
            waited = self.runtime.take_deferred(plural, key)
            found = triggers.after_own_write(plural, indexes, body, waited=waited)
            if waited and plural in self.queues:
                found.add(plural, key)
        else:
            found = affected(indexes, body)
        self.enqueue(found, low=listing)

    def dataset_read_changed(self, key: Key, body: Mapping[str, Any], deleted: bool) -> bool:
        """Whether this event changes what the reconcilers read of Dataset `key`. The resync
        still visits every owner, whatever was skipped here."""
        if deleted:
            self.dataset_reads.pop(key, None)
            return True
        reads = triggers.dataset_reads(body)
        unchanged = self.dataset_reads.get(key) == reads
        self.dataset_reads[key] = reads
        return not unchanged

    async def start(self) -> None:
        indexes = await self.indexes
        ctx = Context(self.runtime, indexes)
        for kind, reconcile in RECONCILERS.items():
            self.queues[kind].start(isolated(ctx, kind, reconcile), WORKERS[kind])
        self.tasks.append(asyncio.get_running_loop().create_task(self.trim_when_quiet()))
        while True:
            await asyncio.sleep(RESYNC_SECONDS)
            self.enqueue(triggers.everything(indexes), low=True)

    async def trim_when_quiet(self) -> None:
        """Give the memory freed by a burst of work back to the system once the queues have
        been quiet for QUIET_SECONDS: glibc's malloc keeps freed memory in the process
        otherwise (a burst of 1,000 ModelSyncs left some 70 MiB of garbage in the RSS)."""
        quiet = 0.0
        worked = False
        while True:
            await asyncio.sleep(1.0)
            if any(queue.busy() for queue in self.queues.values()):
                quiet, worked = 0.0, True
                continue
            quiet += 1.0
            if worked and quiet >= QUIET_SECONDS:
                worked = False
                trim_memory()

    async def stop(self) -> None:
        for task in self.tasks:
            task.cancel()
        for queue in self.queues.values():
            await queue.stop()


def handler(
    plural: str, affected: Callable[[Indexes, Mapping[str, Any]], triggers.Affected]
) -> Callable[..., Awaitable[None]]:
    """A kopf event handler that only enqueues: the keys the event affects."""

    async def on_event(
        body: kopf.Body, event: kopf.RawEvent, memo: kopf.Memo, **kwargs: Any
    ) -> None:
        operator: Operator = memo.operator
        listing = event.get("type") is None  # the initial listing (a start, a re-watch)
        deleted = event.get("type") == "DELETED"
        # kopf's index objects live as long as the operator: their view is built once
        known = operator.indexes
        indexes = known.result() if known.done() else Indexes.from_kwargs(kwargs)
        # the event's own dict: `body` is kopf's view of it, which resolves every key read
        raw: Mapping[str, Any] = event["object"]
        operator.on_event(plural, raw, indexes, affected, listing=listing, deleted=deleted)

    on_event.__name__ = f"{plural}_event"
    return on_event


def namespace_affected(indexes: Indexes, body: Mapping[str, Any]) -> triggers.Affected:
    return triggers.namespace_changed(indexes, str(body.get("metadata", {}).get("name", "")))


def register(registry: kopf.OperatorRegistry) -> kopf.OperatorRegistry:
    """Every index and handler of the operator, on `registry`."""
    ours: dict[str, Any] = {"group": GROUP, "version": VERSION, "registry": registry}
    datasets: dict[str, Any] = {
        "group": DATASET_GROUP,
        "version": DATASET_VERSION,
        "plural": DATASET_PLURAL,
        "registry": registry,
        "labels": {MANAGED_BY_LABEL: MANAGED_BY},
    }
    kopf.index("", "v1", "namespaces", id="namespace_index", registry=registry)(namespace_summary)
    kopf.index(plural="modelsources", id="modelsource_index", **ours)(by_name)
    kopf.index(plural="models", id="model_index", **ours)(model_index)
    kopf.index(plural="modelsyncs", id="modelsync_index", **ours)(modelsync_index)
    kopf.index(plural="modelreferences", id="modelreference_index", **ours)(modelreference_index)
    # Every Dataset, not only modelfs's: a name taken by someone else's Dataset must be seen.
    kopf.index(id="dataset_index", **{**datasets, "labels": None})(by_name)

    for plural, affected in (
        ("modelsources", triggers.source_changed),
        ("models", triggers.model_changed),
        ("modelsyncs", triggers.sync_changed),
        ("modelreferences", triggers.reference_changed),
    ):
        kopf.on.event(plural=plural, id=f"{plural}_event", **ours)(handler(plural, affected))
    kopf.on.event(id="datasets_event", **datasets)(handler("datasets", triggers.dataset_changed))
    kopf.on.event("", "v1", "namespaces", id="namespaces_event", registry=registry)(
        handler("namespaces", namespace_affected)
    )
    kopf.on.login(registry=registry)(login)
    kopf.on.startup(registry=registry)(startup)
    kopf.on.cleanup(registry=registry)(cleanup)
    return registry


# ----------------------------------------------------------------------------- kopf's readiness


class CountingToggle(aiotoggles.Toggle):
    """A toggle of a `CountingToggleSet`: tells its set when it turns."""

    def __init__(self, state: bool, *, name: str | None, owner: CountingToggleSet) -> None:
        super().__init__(state, name=name, condition=owner._condition)
        self._owner = owner

    async def turn_to(self, __state: bool) -> None:
        async with self._condition:
            if self._state != bool(__state) and self in self._owner:
                self._owner._on += 1 if __state else -1
            self._state = bool(__state)
            self._condition.notify_all()
        self._owner._changed()


class CountingToggleSet(aiotoggles.ToggleSet):
    """kopf's ToggleSet, with its state kept as a count and its waiters woken only when that
    state flips.

    On start, kopf makes one "indexed" toggle per listed object and drops it once the object is
    indexed, and every object's worker waits for the whole set to be on. kopf's own set wakes
    every waiter on every change and each one re-checks every toggle: with 1,000 ModelSyncs and
    their Datasets listed, that was over half of a restart's CPU, and every event, a new
    object's included, waited behind it."""

    def __init__(self, fn: Callable[[Iterable[bool]], bool]) -> None:
        super().__init__(fn)
        self._on = 0
        self._reached = {True: asyncio.Event(), False: asyncio.Event()}
        self._changed()

    def is_on(self) -> bool:
        if self._fn is all:
            return self._on == len(self._toggles)
        if self._fn is any:
            return self._on > 0
        return super().is_on()

    def _changed(self) -> None:
        state = self.is_on()
        self._reached[state].set()
        self._reached[not state].clear()

    async def wait_for(self, __state: bool) -> None:
        while self.is_on() != bool(__state):
            await self._reached[bool(__state)].wait()

    async def make_toggle(
        self, __val: bool = False, *, name: str | None = None
    ) -> aiotoggles.Toggle:
        toggle = CountingToggle(bool(__val), name=name, owner=self)
        self._toggles.add(toggle)
        self._on += toggle.is_on()
        self._changed()
        return toggle

    async def drop_toggle(self, toggle: aiotoggles.Toggle) -> None:
        await self.drop_toggles([toggle])

    async def drop_toggles(self, toggles: Iterable[aiotoggles.Toggle]) -> None:
        for toggle in toggles:
            if toggle in self._toggles:
                self._toggles.discard(toggle)
                self._on -= toggle.is_on()
        self._changed()


def use_counting_toggles() -> None:
    """kopf builds its toggle sets (`operator_indexed`, `operator_paused`) from this module
    attribute when it starts."""
    aiotoggles.ToggleSet = CountingToggleSet  # type: ignore[misc]


# ----------------------------------------------------------------------------- lifecycle


def login(**kwargs: Any) -> kopf.ConnectionInfo | None:
    """kopf's credentials: the in-cluster ServiceAccount, else $KUBECONFIG / ~/.kube/config."""
    return kopf.login_with_service_account(**kwargs) or kopf.login_with_kubeconfig(**kwargs)


async def new_api_client() -> ApiClient:
    """A client from $KUBECONFIG (or ~/.kube/config), or the in-cluster ServiceAccount."""
    configuration = Configuration()
    loader: Any = aio_config  # the client's config loaders are untyped
    if os.environ.get("KUBERNETES_SERVICE_HOST") and not os.environ.get("KUBECONFIG"):
        loader.load_incluster_config(client_configuration=configuration)
    else:
        await loader.load_kube_config(
            config_file=os.environ.get("KUBECONFIG"), client_configuration=configuration
        )
    # The client's aiohttp session trusts the environment by default: it then looks for a proxy
    # in os.environ on every request (11% of a burst's CPU). Without a proxy variable set at
    # start, there is nothing to find; with one, it is honoured as before.
    if not any(name.lower().endswith("_proxy") for name in os.environ):
        configuration.client_session_kwargs = {"trust_env": False}
    return ApiClient(configuration)


class NoDiffBase(kopf.DiffBaseStorage):
    """No diff base: kopf builds one for every watch event (a deep copy of the body) for its
    change-detection handlers, and modelfs registers none."""

    def build(self, *, body: kopf.Body, extra_fields: Any = None) -> kopf.BodyEssence:
        return cast(kopf.BodyEssence, {})

    def fetch(self, *, body: kopf.Body) -> kopf.BodyEssence | None:
        return None

    def store(self, *, body: kopf.Body, patch: kopf.Patch, essence: kopf.BodyEssence) -> None:
        return None


def configure_settings(settings: kopf.OperatorSettings) -> None:
    # kopf only watches and indexes here: no change-detection handlers, so it writes no
    # annotations and no finalizers on any object, and needs no diff base.
    settings.persistence.diffbase_storage = NoDiffBase()
    # Only warnings and errors of kopf itself become Events; modelfs posts its own decisions.
    settings.posting.level = logging.WARNING
    settings.watching.server_timeout = 270
    settings.watching.client_timeout = 300
    settings.watching.connect_timeout = 30
    settings.watching.reconnect_backoff = 1.0
    settings.networking.request_timeout = 60
    settings.networking.connect_timeout = 30
    settings.execution.max_workers = 20


async def startup(settings: kopf.OperatorSettings, memo: kopf.Memo, **_: Any) -> None:
    configure_settings(settings)
    api = await new_api_client()
    operator = Operator(Runtime(writer=KubeWriter(api)))
    memo.api = api
    memo.operator = operator
    memo.main = asyncio.create_task(operator.start())
    gc.freeze()  # what is loaded by now lives as long as the process: no collection scans it
    logger.info("Started modelfs operator")


async def cleanup(memo: kopf.Memo, **_: Any) -> None:
    main = getattr(memo, "main", None)
    if main is not None:
        main.cancel()
    operator = getattr(memo, "operator", None)
    if operator is not None:
        await operator.stop()
    api = getattr(memo, "api", None)
    if api is not None:
        await api.close()
    logger.info("Stopped modelfs operator")


def run(
    *,
    namespaces: list[str],
    clusterwide: bool,
    health_port: int,
    metrics_port: int,
    log_format: str,
    verbose: bool = False,
) -> int:
    """Run the operator until SIGINT/SIGTERM."""
    from modelfs.logs import configure

    configure(log_format, verbose)
    if metrics_port:
        start_http_server(metrics_port)
    registry = register(kopf.OperatorRegistry())
    use_counting_toggles()
    dispatch.install(registry)
    liveness = f"http://0.0.0.0:{health_port}/healthz" if health_port else None
    asyncio.run(
        kopf.operator(
            registry=registry,
            clusterwide=clusterwide,
            namespaces=namespaces,
            standalone=True,
            liveness_endpoint=liveness,
            memo=kopf.Memo(),
        )
    )
    return 0
