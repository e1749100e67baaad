"""The operator: kopf settings, the handler registration, and `modelfs run`.

Registration is kept here, in one place, so the controllers stay plain functions: importing
`controllers` registers nothing.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import os
from collections.abc import Awaitable, Callable, Coroutine, Mapping
from dataclasses import dataclass, field
from typing import Any, cast

import kopf
from aiohttp import web
from kubernetes.aio import config as aio_config
from kubernetes.aio.client import ApiClient, Configuration
from prometheus_client import start_http_server

from modelfs import __version__, kopf_internals
from modelfs.api.v1 import ModelSync
from modelfs.controllers import triggers
from modelfs.controllers.catalog import Catalog, ClaimLookup
from modelfs.controllers.descriptor import Descriptor, Watched
from modelfs.controllers.kinds import RECONCILED, WATCHED
from modelfs.controllers.leader import (
    LEADER,
    LEASE_NAME,
    Elector,
    Fence,
    LeaseClient,
    Timings,
    default_identity,
)
from modelfs.controllers.queue import WorkQueue
from modelfs.controllers.runner import run_reconciler
from modelfs.controllers.runtime import (
    Context,
    Indexes,
    Key,
    Runtime,
    Writer,
    body_key,
    resource_version,
)
from modelfs.memory import shrink_ssl_buffers, trim_memory
from modelfs.pkg.catalog.lookup import Catalog as Lookups
from modelfs.pkg.catalog.loop import OwnLoop
from modelfs.pkg.catalog.net import MODELSCOPE_ENDPOINT, NetSettings
from modelfs.pkg.dataset.types import DatasetType
from modelfs.pkg.kube.client import ObjectClient
from modelfs.pkg.kube.writer import KubeWriter

logger = logging.getLogger("modelfs.operator")

RESYNC_SECONDS = 30.0
"""Every key of every kind is enqueued this often: drift repair, schedules, Secret re-checks."""


QUIET_SECONDS = 3.0


class Operator:
    """The queues and the reconcilers, fed by kopf's watches through the trigger map.

    With leader election (`elected`), the watches and indexes run on every replica, the queues
    only while this one leads: `lead` and `stop_leading`, called by the elector."""

    def __init__(
        self, runtime: Runtime, kinds: tuple[Descriptor, ...] = RECONCILED, *, elected: bool = False
    ) -> None:
        self.runtime = runtime
        self.kinds = {kind.plural: kind for kind in kinds}
        self.queues: dict[str, WorkQueue[Key]] = {k: WorkQueue(k) for k in self.kinds}
        self.leading = not elected
        """Whether the queues run: without election, always; with it, while this replica leads
        (a standby enqueues nothing: on winning it enqueues every key of its warm indexes)."""
        self.ctx: Context | None = None
        self.indexes: asyncio.Future[Indexes] = asyncio.get_running_loop().create_future()
        self.tasks: list[asyncio.Task[None]] = []
        self.reads: dict[tuple[str, Key], tuple[Any, ...]] = {}
        """Per object of a kind with `Watched.reads`: what the reconcilers read of it, as last
        seen."""
        runtime.queues = self
        if runtime.catalog is not None and ModelSync.plural in self.queues:
            runtime.catalog.wake = self.answered

    def answered(self, key: Key) -> None:
        """A catalog answer came for the ModelSync `key`: onto the queue of now (`lead` makes
        new ones), unless this replica no longer leads."""
        if self.leading:
            self.queues[ModelSync.plural].add(key)

    def backlog(self, plural: str) -> int:
        return self.queues[plural].backlog()

    def add_low(self, plural: str, key: Key) -> None:
        if self.leading:
            self.queues[plural].add(key, low=True)

    def enqueue(self, affected: triggers.Affected, *, low: bool = False) -> None:
        """`low`: a pass over objects that did not change (the resync, the initial listing)."""
        if not self.leading:
            return
        for plural, key in affected:
            coalesce = self.kinds[plural].coalesce
            if coalesce and not low:
                self.queues[plural].add_after(key, coalesce)
            else:
                self.queues[plural].add(key, low=low)

    def on_event(
        self,
        kind: Watched,
        body: Mapping[str, Any],
        indexes: Indexes,
        *,
        listing: bool = False,
        deleted: bool = False,
    ) -> None:
        """A watch event of `body`: hand the indexes over (once), and enqueue what it affects.
        modelfs's own write coming back affects only what reads it (and a reconcile that waited
        for it)."""
        if not self.indexes.done():
            self.indexes.set_result(indexes)
        plural = kind.plural
        key = body_key(body)
        if deleted:
            uid = str(body.get("metadata", {}).get("uid") or "")
            self.runtime.forget_uid(uid)
            triggers.forget_reads(uid)
        if kind.reads is not None:
            # What is kept of the reads refers to the indexed copy (updated before this call),
            # whose strings are shared, rather than to this event's: see `runtime.snapshot`.
            indexed = indexes.object(plural, key)
            if indexed is not None and resource_version(indexed) == resource_version(body):
                body = indexed
            if not self.read_changed(kind, key, body, deleted):
                own = self.runtime.record_event(plural, key, body)
                if own and self.runtime.take_deferred(plural, key):
                    self.enqueue(kind.own_write(indexes, body, True))
                return
        if self.runtime.record_event(plural, key, body):
            self.enqueue(self.own_write(kind, key, body, indexes), low=listing)
        elif not self.runtime.hold(
            plural,
            key,
            resource_version(body),
            lambda own: self.enqueue(
                self.own_write(kind, key, body, indexes) if own else kind.triggers(indexes, body),
                low=listing,
            ),
        ):
            self.enqueue(kind.triggers(indexes, body), low=listing)

    def own_write(
        self, kind: Watched, key: Key, body: Mapping[str, Any], indexes: Indexes
    ) -> triggers.Affected:
        """What modelfs's own write of `key` coming back affects."""
        # taken whatever the kind: a Dataset has no queue, what waited for it is its owner
        waited = self.runtime.take_deferred(kind.plural, key)
        found = kind.own_write(indexes, body, waited)
        if waited and kind.plural in self.queues:
            found.add(kind.plural, key)
        return found

    def read_changed(self, kind: Watched, key: Key, body: Mapping[str, Any], deleted: bool) -> bool:
        """Whether this event changes what the reconcilers read of the object. The resync
        still visits every owner, whatever was skipped here."""
        if deleted:
            self.reads.pop((kind.plural, key), None)
            return True
        assert kind.reads is not None
        reads = kind.reads(body)
        unchanged = self.reads.get((kind.plural, key)) == reads
        self.reads[(kind.plural, key)] = reads
        return not unchanged

    async def start(self, elector: Elector | None = None) -> None:
        """Run until cancelled: the queues at once without `elector`, else whenever it wins."""
        indexes = await self.indexes
        self.ctx = Context(self.runtime, indexes)
        if self.leading:
            self.start_queues()
        self.tasks.append(asyncio.get_running_loop().create_task(self.trim_when_quiet()))
        if elector is not None:  # campaigns once the indexes are there: a winner starts warm
            self.tasks.append(asyncio.get_running_loop().create_task(elector.run()))
        while True:
            await asyncio.sleep(RESYNC_SECONDS)
            self.enqueue(triggers.everything(indexes, self.kinds), low=True)

    def start_queues(self) -> None:
        assert self.ctx is not None
        for plural, kind in self.kinds.items():
            self.queues[plural].start(run_reconciler(self.ctx, kind), kind.workers)

    async def lead(self) -> None:
        """This replica won the Lease: fresh queues, every key of the warm indexes enqueued
        (no new listing), the workers started."""
        self.queues = {k: WorkQueue(k) for k in self.kinds}
        self.leading = True
        self.enqueue(triggers.everything(self.indexes.result(), self.kinds), low=True)
        self.start_queues()

    async def stop_leading(self, reason: str = "") -> None:
        """This replica may no longer write: workers stop taking keys and the reconciles and
        Event posts in flight are cancelled (`Fence` refuses their writes already)."""
        self.leading = False
        for task in list(self.runtime.tasks):
            task.cancel()
        await asyncio.gather(*(queue.stop() for queue in self.queues.values()))

    async def trim_when_quiet(self) -> None:
        """Give the memory freed by a burst of work back to the system once the queues have
        been quiet for QUIET_SECONDS: glibc's malloc keeps freed memory in the process
        otherwise."""
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
        if self.runtime.catalog is not None:
            await self.runtime.catalog.close()
        await asyncio.gather(*self.tasks, return_exceptions=True)
        self.leading = False
        for queue in self.queues.values():
            await queue.stop()


def kopf_index(kind: Watched) -> Callable[..., Coroutine[Any, Any, Mapping[Any, Any]]]:
    """`kind`'s index function as a kopf index handler: a coroutine, which kopf calls in the
    event loop (a plain function would cost a thread hop per watch event)."""
    index = kind.index

    async def on_index(body: kopf.Body, **_: Any) -> Mapping[Any, Any]:
        return index(body)

    on_index.__name__ = kind.index_id
    return on_index


def handler(kind: Watched) -> Callable[..., Awaitable[None]]:
    """A kopf event handler that only enqueues: the keys the event affects."""

    async def on_event(
        body: kopf.Body, event: kopf.RawEvent, memo: kopf.Memo, **kwargs: Any
    ) -> None:
        operator: Operator = memo.operator
        listing = event.get("type") is None  # the initial listing (a start, a re-watch)
        deleted = event.get("type") == "DELETED"
        # kopf's index objects live as long as the operator: their view is built once
        known = operator.indexes
        indexes = known.result() if known.done() else indexes_of(kwargs)
        # the event's own dict: `body` is kopf's view of it, which resolves every key read
        raw: Mapping[str, Any] = event["object"]
        operator.on_event(kind, raw, indexes, listing=listing, deleted=deleted)

    on_event.__name__ = f"{kind.plural}_event"
    return on_event


def indexes_of(kwargs: Mapping[str, Any], kinds: tuple[Watched, ...] = WATCHED) -> Indexes:
    """The view of kopf's indexes, as handed to a handler (by index id)."""
    return Indexes.build(kinds, lambda kind: kwargs[kind.index_id])


def register(
    registry: kopf.OperatorRegistry, kinds: tuple[Watched, ...] = WATCHED
) -> kopf.OperatorRegistry:
    """Every index and handler of the operator, on `registry`: per kind, its index (every
    object) and its event handler (objects with its labels)."""
    for kind in kinds:
        where: dict[str, Any] = {
            "group": kind.group,
            "version": kind.version,
            "plural": kind.plural,
            "registry": registry,
        }
        kopf.index(id=kind.index_id, **where)(kopf_index(kind))
        kopf.on.event(id=f"{kind.plural}_event", labels=kind.labels, **where)(handler(kind))
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
    # The client's aiohttp session trusts the environment by default: it then looks for a proxy
    # in os.environ on every request, a costly scan. Without a proxy variable set at start,
    # there is nothing to find; with one, it is honoured as before.
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


def new_catalog(api: ApiClient, options: CatalogOptions) -> Catalog | None:
    """The catalog's lookups (None: `--catalog=off`): `pkg.catalog`'s per type (Hub,
    ModelScope, S3, HTTP, Git on their source's own endpoint, trusting `ca_bundle` besides the
    system's CAs; each client imported on first use), PVC claims on the API server, with the
    ModelSource's Secret."""
    if not options.enabled:
        return None
    objects = ObjectClient(api)
    lookups = Lookups(
        NetSettings(
            ca_bundle=options.ca_bundle,
            modelscope_endpoint=options.modelscope_endpoint or MODELSCOPE_ENDPOINT,
        ),
        lookups={DatasetType.PVC: ClaimLookup(objects.claim_exists)},
        own_loop=OwnLoop(),  # slow DNS or a hung catalog never reaches the operator's loop
    )
    return Catalog(
        lookup=lookups.lookup,
        read_secret=objects.secret_data,
        forget=lookups.forget,
        closing=lookups.close,
    )


@dataclass(frozen=True)
class CatalogOptions:
    """`modelfs run --catalog`, `--catalog-ca-bundle`, `--catalog-modelscope-endpoint`."""

    enabled: bool = True
    ca_bundle: str | None = None
    modelscope_endpoint: str | None = None
    """The ModelScope that MODEL_SCOPE lookups ask (None: www.modelscope.cn, the loader's)."""


@dataclass(frozen=True)
class Election:
    """Leader election settings (`modelfs run --leader-elect`)."""

    namespace: str
    name: str = LEASE_NAME
    identity: str = field(default_factory=default_identity)
    timings: Timings = field(default_factory=Timings)


async def startup(settings: kopf.OperatorSettings, memo: kopf.Memo, **_: Any) -> None:
    configure_settings(settings)
    election: Election | None = getattr(memo, "election", None)
    api = await new_api_client()
    options = getattr(memo, "catalog", None) or CatalogOptions()
    catalog = new_catalog(api, options)
    memo.api = api
    writer: Writer = KubeWriter(api)
    elector = None
    if election is not None:
        # The writes carry the holder identity: the audit log tells the replicas apart.
        api.user_agent = f"modelfs/{__version__} {election.identity}"
        # The Lease on a client of its own: a renew never waits behind a burst of writes.
        memo.lease_api = await new_api_client()
        memo.lease_api.user_agent = api.user_agent
        operator: Operator
        elector = Elector(
            LeaseClient(memo.lease_api, election.namespace, election.name),
            election.identity,
            election.timings,
            on_started=lambda: operator.lead(),
            on_stopped=lambda reason: operator.stop_leading(reason),
        )
        writer = Fence(writer, elector.leading)
    if elector is None:
        LEADER.set(1)  # no election: this process always reconciles
    operator = Operator(Runtime(writer=writer, catalog=catalog), elected=elector is not None)
    memo.operator = operator
    memo.elector = elector
    memo.main = asyncio.create_task(operator.start(elector))
    port = getattr(memo, "health_port", 0)
    if port:
        memo.health = await serve_health(memo, port)
    gc.freeze()  # what is loaded by now lives as long as the process: no collection scans it
    logger.info(
        "Started modelfs operator",
        extra={"leaderElection": election is not None, "catalog": catalog is not None}
        | ({"identity": election.identity} if election else {}),
    )


async def cleanup(memo: kopf.Memo, **_: Any) -> None:
    """Stop the work (the elector, the queues and their writes in flight), then give the Lease
    up: the standby takes over at once, with nothing of this replica still writing."""
    main = getattr(memo, "main", None)
    if main is not None:
        main.cancel()
    operator = getattr(memo, "operator", None)
    if operator is not None:
        await operator.stop()
    elector: Elector | None = getattr(memo, "elector", None)
    if elector is not None:
        await elector.release()
    health = getattr(memo, "health", None)
    if health is not None:
        await health.cleanup()
    for name in ("api", "lease_api"):
        api = getattr(memo, name, None)
        if api is not None:
            await api.close()
    logger.info("Stopped modelfs operator")


def liveness(memo: Any) -> tuple[int, dict[str, Any]]:
    """/healthz: 200 while the event loop answers, on a standby as on the leader; 500 only when
    the election loop is stuck (a wedged replica, which the kubelet then restarts)."""
    elector: Elector | None = getattr(memo, "elector", None)
    if elector is None:
        return 200, {"election": False}
    if elector.wedged():
        return 500, {"election": True, "error": "the election loop made no attempt for too long"}
    return 200, {"election": True, "leader": elector.leading()}


def readiness(memo: Any) -> tuple[int, dict[str, Any]]:
    """/readyz: 200 once every kind is listed and indexed (a synced standby is ready, so a
    rollout goes on with it; one still listing is not, so the rollout waits for it)."""
    operator: Operator | None = getattr(memo, "operator", None)
    synced = operator is not None and operator.indexes.done()
    return (200 if synced else 503), {"synced": synced}


async def serve_health(memo: Any, port: int) -> web.AppRunner:
    """/healthz and /readyz on `port` (kopf's own endpoint serves one path only)."""

    def route(check: Callable[[Any], tuple[int, dict[str, Any]]]) -> Any:
        async def handle(request: web.Request) -> web.Response:
            status, body = check(memo)
            return web.json_response(body, status=status)

        return handle

    app = web.Application()
    app.add_routes([web.get("/healthz", route(liveness)), web.get("/readyz", route(readiness))])
    runner = web.AppRunner(app, handle_signals=False, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "0.0.0.0", port).start()  # the kubelet probes it from outside
    return runner


def run(
    *,
    namespaces: list[str],
    clusterwide: bool,
    health_port: int,
    metrics_port: int,
    log_format: str,
    verbose: bool = False,
    catalog: bool = True,
    catalog_ca_bundle: str | None = None,
    catalog_modelscope_endpoint: str | None = None,
    election: Election | None = None,
) -> int:
    """Run the operator until SIGINT/SIGTERM; with `election`, lead only while holding the
    Lease."""
    from modelfs.logs import configure

    configure(log_format, verbose)
    if metrics_port:
        start_http_server(metrics_port)
    registry = register(kopf.OperatorRegistry())
    kopf_internals.install(registry)
    shrink_ssl_buffers()
    asyncio.run(
        kopf.operator(
            registry=registry,
            clusterwide=clusterwide,
            namespaces=namespaces,
            standalone=True,
            memo=kopf.Memo(
                election=election,
                health_port=health_port,
                catalog=CatalogOptions(catalog, catalog_ca_bundle, catalog_modelscope_endpoint),
            ),
        )
    )
    return 0
