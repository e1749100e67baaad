"""What every reconciler shares at run time: the API clients, the in-memory view of the cluster
(kopf indexes, read-only here), the Secret key-name cache, and the expectations of modelfs's own
writes.

A reconciler reads the same way in every controller: observe (the indexes), decide (a pure
function returning a plan), act (API writes through this runtime).
"""

from __future__ import annotations

import asyncio
import logging
import sys
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol, TypeVar

from modelfs.api.v1 import KINDS, Model, ModelReference, ModelSource, ModelSync
from modelfs.memory import shared
from modelfs.pkg.dataset import DATASET_PLURAL, parse
from modelfs.pkg.kube import TRANSIENT_ERRORS

if TYPE_CHECKING:
    from modelfs.controllers.catalog import Catalog
    from modelfs.controllers.descriptor import Watched

Parsed = TypeVar("Parsed", ModelSource, Model, ModelSync, ModelReference)

logger = logging.getLogger("modelfs.runtime")

Key = tuple[str, str]
"""(namespace, name)"""

PARSED_SYNCS = 256
"""Parsed ModelSyncs kept (`Runtime.parsed`): enough for the reconciles of a burst, which read
each one several times in a row, without holding every ModelSync of a large cluster twice."""

RECENT_VERSIONS = 4096
"""Watch events remembered (`Runtime.recent`): a write's response comes milliseconds after its
watch event at worst, and thousands of events apart only in the largest bursts."""

YIELD_BACKLOG = 32
"""Keys of a kind waiting at high priority from which a status write yields to them
(`Runtime.yield_status`): a burst, not a user applying a few objects at once."""

YIELD_SECONDS = 5.0
"""How long a status write yields at most: it is written then, backlog or not."""

EXPECTATION_SECONDS = 5.0
"""How long a reconcile waits for the watch to bring back modelfs's own write before it goes on
without it (a relisting watch may skip that exact version)."""


def body_key(body: Mapping[str, Any]) -> Key:
    meta = body.get("metadata", {})
    return (str(meta.get("namespace", "")), str(meta.get("name", "")))


def resource_version(body: Mapping[str, Any] | None) -> str:
    return str((body or {}).get("metadata", {}).get("resourceVersion") or "")


def condition(status: Mapping[str, Any], type_: str) -> dict[str, Any]:
    """A condition of a raw status by type, or {}."""
    for found in status.get("conditions") or []:
        if found.get("type") == type_:
            return dict(found)
    return {}


UNREAD_ANNOTATIONS = ("kubectl.kubernetes.io/last-applied-configuration",)


def snapshot(body: Mapping[str, Any]) -> dict[str, Any]:
    """A kopf body as plain dicts to keep in an index, its keys and short strings shared with
    every other indexed object (`memory.shared`): the index holds thousands of objects, each
    decoded from its own watch event. modelfs never changes what it reads.

    Without what modelfs never reads and the index would keep for every object: of
    `metadata.managedFields` only who manages the object stays (`manager`: the field sets are a
    large part of a small object's body), and kubectl's last-applied copy of the whole object
    goes."""
    kept: dict[str, Any] = {}
    for key, value in body.items():
        if key == "metadata" and isinstance(value, Mapping):
            kept["metadata"] = {sys.intern(k): _metadata_field(k, v) for k, v in value.items()}
        else:
            kept[sys.intern(key)] = shared(value)
    return kept


def _metadata_field(key: str, value: Any) -> Any:
    if key == "managedFields" and isinstance(value, list):
        return [
            {"manager": shared(entry.get("manager"))}
            for entry in value
            if isinstance(entry, Mapping)
        ]
    if key == "annotations" and isinstance(value, Mapping):
        return {sys.intern(k): shared(v) for k, v in value.items() if k not in UNREAD_ANNOTATIONS}
    return shared(value)


def by_name(body: Mapping[str, Any]) -> dict[Key, dict[str, Any]]:
    """An index function: the object by (namespace, name), as kept in the index."""
    return {body_key(body): snapshot(body)}


class Queues(Protocol):
    """What a reconciler may ask of the work queues (the operator's)."""

    def backlog(self, plural: str) -> int:
        """Keys of `plural` waiting at high priority."""
        ...

    def add_low(self, plural: str, key: Key) -> None:
        """Add `key` at low priority: after everything waiting at high priority."""
        ...


class Writer(Protocol):
    """The API calls the reconcilers make (the real client: `pkg.kube.ObjectClient` and
    `pkg.dataset.client.DatasetClient` together; in unit tests: a recording fake)."""

    async def patch_status(
        self, plural: str, namespace: str, name: str, status: dict[str, Any]
    ) -> dict[str, Any] | None: ...

    async def patch_metadata(
        self, plural: str, namespace: str, name: str, patch: dict[str, Any]
    ) -> dict[str, Any] | None: ...

    async def secret_keys(self, namespace: str, name: str) -> frozenset[str] | None: ...

    async def create_event(
        self, involved: Mapping[str, Any], type_: str, reason: str, message: str
    ) -> None: ...

    async def apply_dataset(self, manifest: dict[str, Any]) -> dict[str, Any]: ...

    async def patch_dataset(
        self, namespace: str, name: str, patch: dict[str, Any]
    ) -> dict[str, Any]: ...

    async def delete_dataset(self, namespace: str, name: str) -> bool: ...

    async def orphan_dataset(self, namespace: str, name: str, owner_uid: str) -> bool: ...


@dataclass
class InFlight:
    """The writes of one object waiting for their response, and the events held meanwhile."""

    writes: int = 0
    held: list[tuple[str, Callable[[bool], None]]] = field(default_factory=list)

    def take(self, version: str, *, everything: bool) -> list[tuple[str, Callable[[bool], None]]]:
        """The held events to hand on: the one of `version`, or all when no write is left."""
        taken = [h for h in self.held if everything or h[0] == version]
        self.held = [h for h in self.held if h not in taken]
        return taken


@dataclass
class Runtime:
    """One per operator process."""

    writer: Writer
    secret_cache: dict[Key, tuple[frozenset[str] | None, float]] = field(default_factory=dict)
    """Key names (never values) of the Secrets that ModelSources name, and when they were read;
    None: no such Secret."""
    expected: dict[tuple[str, Key], tuple[str, float]] = field(default_factory=dict)
    """(plural, key) -> (resourceVersion of modelfs's own last write, deadline)."""
    deferred: set[tuple[str, Key]] = field(default_factory=set)
    """Keys whose reconcile waited for modelfs's own write to come back: run when it does."""
    status_written_at: dict[tuple[str, Key], float] = field(default_factory=dict)
    """(plural, key) -> when modelfs last wrote its status (monotonic)."""
    ready_written: dict[tuple[str, Key], tuple[str, str, str]] = field(default_factory=dict)
    """(plural, key) -> (uid, reason, message) of the Ready condition modelfs last wrote: an
    Event announces a change of Ready once, however far the index lags (`status.ready_changed`)."""
    datasets_created: dict[Key, str] = field(default_factory=dict)
    """The uid of each Dataset modelfs applied: DatasetCreated is announced once per Dataset."""
    tasks: set[asyncio.Task[None]] = field(default_factory=set)
    parsed: OrderedDict[tuple[str, str], tuple[str, Any]] = field(default_factory=OrderedDict)
    """The newest parsed version of each object, by (kind, uid): (resourceVersion, object). A
    version is validated once, however many reconciles read it (a Model of 50 versions is read
    by its 50 ModelSyncs); one entry per object, so memory does not grow with its versions.
    Read-only. ModelSyncs, each read by its own reconciles only, are kept for the
    PARSED_SYNCS most recently read (a parsed object is larger than its body)."""
    parsed_syncs: set[tuple[str, str]] = field(default_factory=set)
    recent: OrderedDict[tuple[str, Key, str], None] = field(default_factory=OrderedDict)
    """The versions the watches brought most recently, by (plural, key, resourceVersion)."""
    settled: dict[tuple[str, Key], tuple[Any, ...]] = field(default_factory=dict)
    """(plural, key) -> the inputs of its last reconcile that had nothing to do (`is_settled`)."""
    in_flight: dict[tuple[str, Key], InFlight] = field(default_factory=dict)
    """Writes of modelfs's own still waiting for their response, and the watch events of the
    same object that came meanwhile (`write`)."""
    queues: Queues | None = None
    """The work queues, once the operator runs them."""
    yielding: dict[tuple[str, Key], float] = field(default_factory=dict)
    """(plural, key) -> since when its status write yields to a backlog (`yield_status`)."""
    catalog: Catalog | None = None
    """The catalog's lookups and answers; None: lookups are off (`modelfs run --catalog=off`)."""

    def parse(self, kind: type[Parsed], body: Mapping[str, Any]) -> Parsed:
        """`pkg.dataset.parse`, once per object version. Raises ResolutionError."""
        meta = body.get("metadata", {})
        version, uid = str(meta.get("resourceVersion") or ""), str(meta.get("uid") or "")
        if not version or not uid:
            result: Parsed = parse(kind, body)
            return result
        key = (kind.kind_name, uid)
        found = self.parsed.get(key)
        if found is not None and found[0] == version:
            if kind is ModelSync:
                self.parsed.move_to_end(key)
            return found[1]  # type: ignore[no-any-return]
        parsed: Parsed = parse(kind, body)
        self.parsed[key] = (version, parsed)
        if kind is ModelSync:
            self.parsed.move_to_end(key)
            self.parsed_syncs.add(key)
            while len(self.parsed_syncs) > PARSED_SYNCS:  # the least recently read goes
                oldest = next(k for k in self.parsed if k in self.parsed_syncs)
                del self.parsed[oldest]
                self.parsed_syncs.discard(oldest)
        return parsed

    def forget_uid(self, uid: str) -> None:
        """An object is gone: drop its parsed versions (whatever its kind)."""
        for kind in KINDS:
            self.parsed.pop((kind.kind_name, uid), None)
            self.parsed_syncs.discard((kind.kind_name, uid))

    def forget_object(self, plural: str, key: Key) -> None:
        """The object `key` of `plural` is gone: drop what is kept about it by key."""
        self.settled.pop((plural, key), None)
        self.ready_written.pop((plural, key), None)
        self.yielding.pop((plural, key), None)
        self.status_written_at.pop((plural, key), None)

    def is_settled(self, plural: str, key: Key, inputs: tuple[Any, ...]) -> bool:
        """Whether the last reconcile of `key` read these very inputs and had nothing to do: a
        pure decide would find nothing again (the resync of a READY object, a wake-up by news
        that changed nothing it reads)."""
        return self.settled.get((plural, key)) == inputs

    def settle(self, plural: str, key: Key, inputs: tuple[Any, ...] | None) -> None:
        """Record the inputs of a reconcile that had nothing to do (None: it had something)."""
        if inputs is None:
            self.settled.pop((plural, key), None)
        else:
            self.settled[(plural, key)] = inputs

    def seconds_since_status_write(self, plural: str, key: Key) -> float:
        """How long ago modelfs last wrote the status of `key` (infinity: never)."""
        written = self.status_written_at.get((plural, key))
        return float("inf") if written is None else time.monotonic() - written

    # -- Secrets: read, never watched

    async def secret_keys(
        self, namespace: str, name: str, *, max_age: float | None = None
    ) -> frozenset[str] | None:
        """The key names of a Secret, from the cache unless never read or older than
        `max_age` seconds."""
        cached = self.secret_cache.get((namespace, name))
        now = time.monotonic()
        if cached is None or (max_age is not None and now - cached[1] >= max_age):
            keys = await self.writer.secret_keys(namespace, name)
            self.secret_cache[(namespace, name)] = (keys, now)
            return keys
        return cached[0]

    # -- expectations: wait for the watch to bring back what modelfs wrote

    async def write(
        self, plural: str, key: Key, request: Awaitable[dict[str, Any] | None]
    ) -> dict[str, Any] | None:
        """Send one write of `key` and expect it back from the watch (`expect`). The response
        and the watch event travel on two connections, so the event may come first: an event of
        `key` that arrives while the write is in flight is held (`hold`) until the response
        tells whether it is this write, and handed on as modelfs's own or as news then. Without
        this, the event of a status write that beat its response reached every reader of the
        object as news (a Model's status write woke each of its ModelSyncs)."""
        pending = self.in_flight.setdefault((plural, key), InFlight())
        pending.writes += 1
        written: dict[str, Any] | None = None
        try:
            written = await request
        finally:
            version = resource_version(written)
            self.expect(plural, key, written)
            pending.writes -= 1
            if pending.writes == 0:
                del self.in_flight[(plural, key)]
            for event_version, resume in pending.take(version, everything=pending.writes == 0):
                resume(event_version == version)
        return written

    def hold(self, plural: str, key: Key, version: str, resume: Callable[[bool], None]) -> bool:
        """Hold a watch event of `key` (of `version`) that came while modelfs writes it: True
        when held, `resume(own)` is then called once the write's response is in."""
        pending = self.in_flight.get((plural, key))
        if pending is None:
            return False
        pending.held.append((version, resume))
        return True

    def expect(self, plural: str, key: Key, written: Mapping[str, Any] | None) -> None:
        version = resource_version(written)
        if not version:
            return
        if (plural, key, version) in self.recent:
            # The watch brought it back before the write's own response came (they travel on
            # two connections): there is nothing left to wait for.
            return
        self.expected[(plural, key)] = (version, time.monotonic() + EXPECTATION_SECONDS)

    def record_event(self, plural: str, key: Key, body: Mapping[str, Any]) -> bool:
        """Record a watch event of `key`; True when it brings modelfs's own expected write
        (whose expectation it clears)."""
        version = resource_version(body)
        self.recent[(plural, key, version)] = None
        if len(self.recent) > RECENT_VERSIONS:
            self.recent.popitem(last=False)
        found = self.expected.get((plural, key))
        if found is not None and found[0] == version:
            del self.expected[(plural, key)]
            return True
        return False

    def take_deferred(self, plural: str, key: Key) -> bool:
        """Whether a reconcile of `key` waited for the write that just came back (the wait is
        taken: it is over)."""
        if (plural, key) in self.deferred:
            self.deferred.discard((plural, key))
            return True
        return False

    def expecting(self, plural: str, key: Key) -> bool:
        """Whether modelfs waits for its own write of `key` to come back."""
        return (plural, key) in self.expected

    def drop_expectation(self, plural: str, key: Key) -> None:
        """Wait no more for modelfs's own write of `key` (the object is being deleted)."""
        self.expected.pop((plural, key), None)

    def wait_for_own_write(self, plural: str, key: Key) -> float | None:
        """Seconds left to wait for modelfs's own write of `key` to come back, or None. A wait
        is recorded: the reconcile stops, and runs again when the write comes back (or the
        time is up)."""
        found = self.expected.get((plural, key))
        if found is None:
            return None
        left = found[1] - time.monotonic()
        if left <= 0:
            del self.expected[(plural, key)]
            return None
        self.deferred.add((plural, key))
        return left

    # -- a status write yields to a backlog of news

    def yield_status(self, plural: str, key: Key) -> bool:
        """Whether the status change of `key` waits for the news queued before it: while
        YIELD_BACKLOG or more keys of its kind wait at high priority, for YIELD_SECONDS at most.
        `key` is then added again at low priority, and its status is written once, saying
        what is true by then. In a burst of new ModelSyncs, their Datasets are created first,
        and the PENDING of a Dataset that started meanwhile is not written at all; on a
        cluster without a burst, every status change is written when it happens."""
        if self.queues is None or self.queues.backlog(plural) < YIELD_BACKLOG:
            self.yielding.pop((plural, key), None)
            return False
        now = time.monotonic()
        since = self.yielding.setdefault((plural, key), now)
        if now - since >= YIELD_SECONDS:
            del self.yielding[(plural, key)]
            return False
        self.queues.add_low(plural, key)
        return True

    # -- events

    def post_event(self, body: Mapping[str, Any], type_: str, reason: str, message: str) -> None:
        """Post an Event on `body` in the background, from any task. A failed post is logged,
        never raised: an Event is not worth a retry."""
        task = asyncio.get_running_loop().create_task(
            self._post_event(body, type_, reason, message)
        )
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)

    def post_events(self, body: Mapping[str, Any], events: Iterable[tuple[str, str, str]]) -> None:
        """`post_event` for each (type, reason, message) of `events`, in order."""
        for type_, reason, message in events:
            self.post_event(body, type_, reason, message)

    async def _post_event(
        self, body: Mapping[str, Any], type_: str, reason: str, message: str
    ) -> None:
        try:
            await self.writer.create_event(body, type_, reason, message)
        except TRANSIENT_ERRORS as error:
            logger.warning(
                "Event not posted",
                extra={"object": body_key(body), "reason": reason, "error": str(error)},
            )


def first_value(store: Any) -> dict[str, Any] | None:
    """The newest value of a kopf Store (one object per key in our by-name indexes)."""
    if store is None:
        return None
    values = list(store)
    return values[-1] if values else None


BY_SOURCE, BY_MODEL, BY_VERSION = "@source", "@model", "@version"
"""The tags of secondary keys in a kind's one index: `@` is in no namespace name."""


class Tagged(Mapping[Any, Any]):
    """One view of a kind's index: its objects by (namespace, name) when `tag` is None, else its
    secondary keys of `tag`, looked up without the tag."""

    def __init__(self, index: Mapping[Any, Any], tag: str | None = None) -> None:
        self.index, self.tag = index, tag

    def __getitem__(self, key: Any) -> Any:
        if self.tag is None:
            if len(key) != 2:
                raise KeyError(key)
            return self.index[key]
        return self.index[(self.tag, *key)]

    def __iter__(self) -> Iterator[Any]:
        for key in self.index:
            if self.tag is None:
                if len(key) == 2:
                    yield key
            elif key[0] == self.tag:
                yield key[1:]

    def __len__(self) -> int:
        return sum(1 for _ in self)


RAW = ""
"""The view of an index as it is (the namespace index, whose keys are names)."""


class Indexes:
    """The operator's in-memory view of the cluster: kopf's indexes (in unit tests, the
    in-memory cluster's), read-only, one per watched kind (`controllers.descriptor.Watched`).
    Values are iterables of the indexed values.

    `object(plural, key)` and `view(name)` serve any kind; the named accessors below are the
    lookups the four controllers make."""

    def __init__(self, by_plural: Mapping[str, Mapping[Any, Any]], views: Mapping[str, Any]):
        self.by_plural = by_plural
        """plural -> its objects by (namespace, name) (by name, for namespaces)."""
        self.views = views
        """view name -> a view of an index (`Watched.views`)."""

    @classmethod
    def build(
        cls, kinds: Iterable[Watched], index_of: Callable[[Watched], Mapping[Any, Any]]
    ) -> Indexes:
        """The view of `kinds`, each kind's index found by `index_of`."""
        by_plural: dict[str, Mapping[Any, Any]] = {}
        views: dict[str, Mapping[Any, Any]] = {}
        for kind in kinds:
            index = index_of(kind)
            for name, tag in kind.views.items():
                views[name] = index if tag == RAW else Tagged(index, tag)
                if tag is None or tag == RAW:
                    by_plural[kind.plural] = views[name]
        return cls(by_plural, views)

    def view(self, name: str) -> Mapping[Any, Any]:
        return self.views[name]  # type: ignore[no-any-return]

    def object(self, plural: str, key: Any) -> dict[str, Any] | None:
        """The object `key` of kind `plural`, as last seen, or None."""
        return first_value(self.by_plural[plural].get(key))

    def keys(self, plural: str) -> Iterator[Any]:
        """Every key of kind `plural`."""
        return iter(self.by_plural[plural])

    # -- the lookups the controllers make

    @property
    def sources(self) -> Mapping[Key, Any]:
        return self.by_plural[ModelSource.plural]

    @property
    def models(self) -> Mapping[Key, Any]:
        return self.by_plural[Model.plural]

    @property
    def syncs(self) -> Mapping[Key, Any]:
        return self.by_plural[ModelSync.plural]

    @property
    def references(self) -> Mapping[Key, Any]:
        return self.by_plural[ModelReference.plural]

    @property
    def datasets(self) -> Mapping[Key, Any]:
        return self.by_plural[DATASET_PLURAL]

    def namespace(self, name: str) -> dict[str, Any] | None:
        return self.object("namespaces", name)

    def terminating(self, namespace: str) -> bool:
        """A namespace being deleted: its objects are going, so modelfs neither writes nor
        posts events there (the API server would refuse new objects anyway)."""
        found = self.namespace(namespace)
        return found is not None and bool(found.get("terminating"))

    def source(self, key: Key) -> dict[str, Any] | None:
        return self.object(ModelSource.plural, key)

    def model(self, key: Key) -> dict[str, Any] | None:
        return self.object(Model.plural, key)

    def sync(self, key: Key) -> dict[str, Any] | None:
        return self.object(ModelSync.plural, key)

    def dataset(self, key: Key) -> dict[str, Any] | None:
        return self.object(DATASET_PLURAL, key)

    def reference(self, key: Key) -> dict[str, Any] | None:
        return self.object(ModelReference.plural, key)

    def references_of_model(self, key: Key) -> list[Key]:
        return sorted(set(self.views[REFERENCES_BY_MODEL].get(key, ())))

    def model_names_of_source(self, key: Key) -> list[str]:
        return sorted(set(self.views[MODELS_BY_SOURCE].get(key, ())))

    def sync_names_of_model(self, key: Key) -> list[str]:
        return sorted(set(self.views[SYNCS_BY_MODEL].get(key, ())))

    def syncs_of_version(self, key: Key, version: str) -> Iterator[dict[str, Any]]:
        """The ModelSyncs of Model `key` for `version` (one, unless duplicated): a ModelSync's
        verdict reads only these, not the Model's every ModelSync."""
        namespace = key[0]
        by_version = self.views[SYNCS_BY_VERSION]
        for name in sorted(set(by_version.get((namespace, key[1], version), ()))):
            body = self.sync((namespace, name))
            if body is not None:
                yield body

    def syncs_of_model(self, key: Key) -> Iterator[dict[str, Any]]:
        namespace = key[0]
        for name in self.sync_names_of_model(key):
            body = self.sync((namespace, name))
            if body is not None:
                yield body


MODELS_BY_SOURCE = "models-by-source"
SYNCS_BY_MODEL = "modelsyncs-by-model"
SYNCS_BY_VERSION = "modelsyncs-by-version"
REFERENCES_BY_MODEL = "modelreferences-by-model"
"""The secondary views the controllers read (declared by their kinds' descriptors)."""


@dataclass
class Context:
    """What a reconcile needs: the runtime and the indexes."""

    runtime: Runtime
    indexes: Indexes
