"""kopf's watch events handed straight to modelfs's index and event handlers.

kopf stays the watcher: it lists and watches every kind, reconnects, keeps one task per object
with its events in order, holds the indexes and tells when every listed object is indexed. What
this module replaces is how kopf calls the handlers on each event: its generic path builds a
cause, a progress state, three object loggers, a per-object memory and the keyword arguments,
once for the index and again for the event handler, and then applies an empty patch. That was
about 0.5 ms of CPU per watch event, some 5 ms per ModelSync (a third of the operator's CPU):
modelfs registers only indexes and `on.event` handlers that enqueue keys, and uses none of it.

`process_event` does what kopf's `process_resource_event` does for such handlers, and no more:
it replaces or discards the object's index entries, lets kopf know the object is indexed, waits
until every listed object is (kopf's own rule), and calls the event handlers whose label filter
matches. `install` refuses a registry with anything else in it (change handlers, daemons,
timers, webhooks, other filters), so a handler added later cannot be silently skipped, and
tests/test_dispatch.py runs kopf's own path and this one on the same events and compares what
the handlers were given and what the indexes hold (kopf is pinned to the minor version it checks).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from kopf._cogs.structs import bodies, references
from kopf._core.engines.indexing import OperatorIndexers
from kopf._core.intents import handlers as kopf_handlers
from kopf._core.intents import registries
from kopf._core.reactor import processing

logger = logging.getLogger("modelfs.dispatch")

KOPF_PROCESS = processing.process_resource_event
"""kopf's own processor, as imported (tests compare it with `process_event`)."""


class UnsupportedHandler(Exception):
    """The registry has a handler that `process_event` would not call as kopf does."""


@dataclass(frozen=True)
class Handlers:
    """The index and event handlers of one resource."""

    indexes: tuple[kopf_handlers.IndexingHandler, ...]
    events: tuple[kopf_handlers.WatchingHandler, ...]


def _plain_filters(handler: kopf_handlers.ResourceHandler) -> bool:
    """Only a label filter with plain values: what `_labels_match` checks as kopf would."""
    labels = handler.labels or {}
    return (
        all(isinstance(value, str) for value in labels.values())
        and not handler.annotations
        and handler.when is None
        and handler.field is None
        and handler.value is None
    )


def check(registry: registries.OperatorRegistry) -> None:
    """Raise UnsupportedHandler unless every resource handler is an index or an event handler
    with at most a plain label filter, and a coroutine."""
    others = [
        h.id
        for r in (registry._changing, registry._spawning, registry._webhooks)
        for h in r.get_all_handlers()
    ]
    if others:
        raise UnsupportedHandler(f"only indexes and event handlers are dispatched: {others}")
    for handler in [*registry._indexing.get_all_handlers(), *registry._watching.get_all_handlers()]:
        if not _plain_filters(handler):
            raise UnsupportedHandler(f"{handler.id}: only a label filter of plain values")
        if not asyncio.iscoroutinefunction(handler.fn):
            raise UnsupportedHandler(f"{handler.id}: handlers must be coroutines")


def install(registry: registries.OperatorRegistry) -> None:
    """From now on, kopf operators in this process hand their watch events to `process_event`."""
    check(registry)
    processing.process_resource_event = process_event  # type: ignore[assignment]


_handlers: dict[tuple[int, references.Resource], Handlers] = {}


def handlers_of(registry: registries.OperatorRegistry, resource: references.Resource) -> Handlers:
    key = (id(registry), resource)
    found = _handlers.get(key)
    if found is None:

        def matching(handler: Any) -> bool:
            return handler.selector is None or bool(handler.selector.check(resource))

        found = Handlers(
            tuple(h for h in registry._indexing.get_all_handlers() if matching(h)),
            tuple(h for h in registry._watching.get_all_handlers() if matching(h)),
        )
        _handlers[key] = found
    return found


def _labels_match(filter_: Mapping[str, Any] | None, body: Mapping[str, Any]) -> bool:
    if not filter_:
        return True
    labels = body.get("metadata", {}).get("labels") or {}
    return all(labels.get(key) == value for key, value in filter_.items())


async def process_event(
    *,
    registry: registries.OperatorRegistry,
    indexers: OperatorIndexers,
    resource: references.Resource,
    raw_event: bodies.RawEvent,
    memobase: Any,
    resource_indexed: Any = None,
    operator_indexed: Any = None,
    **_: Any,
) -> str | None:
    """One watch event of one object, as kopf's `process_resource_event` for indexes and event
    handlers. Returns the resourceVersion of a patch kopf made: never, here."""
    raw_type, raw_body = raw_event["type"], raw_event["object"]
    body = bodies.Body(raw_body)
    found = handlers_of(registry, resource)
    if found.indexes:
        if raw_type == "DELETED":
            indexers.discard(body=body)
        else:
            key = indexers.make_key(body)
            for index in found.indexes:
                if not _labels_match(index.labels, raw_body):
                    indexers[index.id].discard(key)
                    continue
                index_fn: Any = index.fn  # kopf types it with every keyword it could pass
                try:
                    entries = await index_fn(body=body, spec=body.spec, event=raw_event)
                except Exception:  # kopf logs it and drops the object's entries
                    logger.exception("Index failed", extra={"index": index.id, "object": key})
                    indexers[index.id].discard(key)
                    continue
                if entries is not None:
                    indexers[index.id].replace(key, entries)
    if operator_indexed is not None and resource_indexed is not None:
        await operator_indexed.drop_toggle(resource_indexed)
    if operator_indexed is not None:
        await operator_indexed.wait_for(True)  # every listed object of every kind is indexed
    for handler in found.events:
        if not _labels_match(handler.labels, raw_body):
            continue
        event_fn: Any = handler.fn
        try:
            await event_fn(body=body, event=raw_event, memo=memobase, **indexers.indices)
        except Exception:  # kopf logs it and goes on: an event handler is not retried
            logger.exception(
                "Event handler failed",
                extra={"handler": handler.id, "object": indexers.make_key(body)},
            )
    return None


__all__ = ["Handlers", "UnsupportedHandler", "check", "install", "process_event"]
