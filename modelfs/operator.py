"""The operator: kopf settings, the handler registration, and `modelfs run`.

Registration is kept here, in one place, so the controllers stay plain functions: importing
`controllers` registers nothing.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import os
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

import kopf
from kubernetes.aio import config as aio_config
from kubernetes.aio.client import ApiClient, Configuration
from prometheus_client import start_http_server

from modelfs.api.v1 import GROUP, VERSION
from modelfs.controllers import model, modelreference, modelsource, modelsync, triggers
from modelfs.controllers.queue import WorkQueue
from modelfs.controllers.runtime import Context, Indexes, Key, Runtime, body_key, snapshot
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


def by_name(body: kopf.Body, **_: Any) -> dict[tuple[str, str], dict[str, Any]]:
    return {(body.metadata.namespace or "", body.metadata.name or ""): snapshot(body)}


def namespace_summary(body: kopf.Body, **_: Any) -> dict[str, dict[str, Any]]:
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


def model_by_source(body: kopf.Body, spec: kopf.Spec, **_: Any) -> dict[tuple[str, str], str]:
    return {
        (body.metadata.namespace or "", str(spec.get("sourceRef", ""))): body.metadata.name or ""
    }


def modelreference_by_model(
    body: kopf.Body, spec: kopf.Spec, **_: Any
) -> dict[tuple[str, str], tuple[str, str]]:
    target = spec.get("modelRef") or {}
    key = (str(target.get("namespace", "")), str(target.get("name", "")))
    return {key: (body.metadata.namespace or "", body.metadata.name or "")}


def modelsync_by_model(body: kopf.Body, spec: kopf.Spec, **_: Any) -> dict[tuple[str, str], str]:
    return {
        (body.metadata.namespace or "", str(spec.get("modelRef", ""))): body.metadata.name or ""
    }


RECONCILERS: dict[str, Reconciler] = {
    "modelsources": modelsource.reconcile,
    "models": model.reconcile,
    "modelsyncs": modelsync.reconcile,
    "modelreferences": modelreference.reconcile,
}
#: Workers per queue: a key is reconciled by one worker at a time; these bound the parallelism.
WORKERS = {"modelsources": 2, "models": 2, "modelsyncs": 8, "modelreferences": 4}
RESYNC_SECONDS = 30.0
"""Every key of every kind is enqueued this often: drift repair, schedules, Secret re-checks."""


class Operator:
    """The queues and the reconcilers, fed by kopf's watches through the trigger map."""

    def __init__(self, runtime: Runtime) -> None:
        self.runtime = runtime
        self.queues: dict[str, WorkQueue[Key]] = {k: WorkQueue(k) for k in RECONCILERS}
        self.indexes: asyncio.Future[Indexes] = asyncio.get_running_loop().create_future()
        self.tasks: list[asyncio.Task[None]] = []

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
        if self.runtime.observed(plural, key, body):
            found = triggers.after_own_write(plural, indexes, body)
            if plural in self.queues and self.runtime.take_deferred(plural, key):
                found.add(plural, key)
        else:
            found = affected(indexes, body)
        self.enqueue(found, low=listing)

    async def start(self) -> None:
        indexes = await self.indexes
        ctx = Context(self.runtime, indexes)
        for kind, reconcile in RECONCILERS.items():
            self.queues[kind].start(functools.partial(reconcile, ctx), WORKERS[kind])
        while True:
            await asyncio.sleep(RESYNC_SECONDS)
            self.enqueue(triggers.everything(indexes), low=True)

    async def stop(self) -> None:
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
        indexes = Indexes.from_kwargs(kwargs)
        operator.on_event(plural, body, indexes, affected, listing=listing, deleted=deleted)

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
    kopf.index(plural="models", id="model_index", **ours)(by_name)
    kopf.index(plural="models", id="model_by_source_index", **ours)(model_by_source)
    kopf.index(plural="modelsyncs", id="modelsync_index", **ours)(by_name)
    kopf.index(plural="modelsyncs", id="modelsync_by_model_index", **ours)(modelsync_by_model)
    kopf.index(plural="modelreferences", id="modelreference_index", **ours)(by_name)
    kopf.index(plural="modelreferences", id="modelreference_by_model_index", **ours)(
        modelreference_by_model
    )
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
    return ApiClient(configuration)


def configure_settings(settings: kopf.OperatorSettings) -> None:
    # kopf only watches and indexes here: no change-detection handlers, so it writes no
    # annotations and no finalizers on any object.
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
