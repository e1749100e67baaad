"""Every use of kopf's private modules (`kopf._*`), behind one door.

kopf stays the watcher: it lists and watches every kind, reconnects, keeps one task per object
with its events in order, holds the indexes and tells when every listed object is indexed. Two
of its internals are replaced, for the whole process, by `install`:

- `process_resource_event`, how kopf calls the handlers on each watch event. Its generic path
  builds a cause, a progress state, three object loggers, a per-object memory and the keyword
  arguments, once for the index and again for the event handler, and then applies an empty
  patch. modelfs registers only indexes and `on.event` handlers that enqueue keys and uses none
  of it. `process_event` does what kopf's does for such handlers, and no more: it replaces or
  discards the object's index entries, lets kopf know the object is indexed, waits until every
  listed object is (kopf's own rule), and calls the event handlers whose label filter matches.
- `ToggleSet`, the readiness set every object's worker waits on at start: `CountingToggleSet`
  keeps its state as a count and wakes its waiters only when that state flips.

Since this follows kopf's internals, `install` refuses to start unless: the installed kopf is
one the tests cover (`KOPF_SUPPORTED`, the pin in pyproject.toml); kopf's replaced functions
and the `ToggleSet` methods overridden here take exactly the parameters ours do, and its toggle
classes have no method this module was not written against; and the registry holds only what
`process_event` calls as kopf would (no change handlers, daemons, timers, webhooks, filters
other than plain labels, plain functions). tests/test_dispatch.py sends the same watch events
through kopf's processor and this one and compares what the handlers were given and what the
indexes hold.

Nothing else in modelfs (tests and benchmarks included) imports from `kopf._*`.
"""

from __future__ import annotations

import asyncio
import importlib.metadata
import inspect
import logging
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from kopf._cogs import clients
from kopf._cogs.aiokits import aiotoggles
from kopf._cogs.structs import bodies, references
from kopf._core.actions import lifecycles
from kopf._core.engines.indexing import OperatorIndexers
from kopf._core.intents import handlers as kopf_handlers
from kopf._core.intents import registries
from kopf._core.reactor import inventory, processing

logger = logging.getLogger("modelfs.kopf_internals")

KOPF_SUPPORTED = ((1, 45, 2), (1, 46, 0))
"""kopf versions from the first (included) to the second (excluded): those the tests cover, as
pyproject.toml pins them (a test checks the two agree)."""

KOPF_PROCESS = processing.process_resource_event
"""kopf's own processor, as imported (tests compare it with `process_event`)."""
KOPF_TOGGLE = aiotoggles.Toggle
KOPF_TOGGLE_SET = aiotoggles.ToggleSet

CLIENT_LOGGERS = clients.__name__
"""The prefix of the loggers of kopf's API requests (`modelfs.logs` softens their retries)."""

# For tests that drive kopf's processor directly.
Resource = references.Resource
ResourceMemories = inventory.ResourceMemories
all_at_once = lifecycles.all_at_once


class UnsupportedKopf(Exception):
    """The installed kopf is not one this module was written and tested against."""


class UnsupportedHandler(Exception):
    """The registry has a handler that `process_event` would not call as kopf does."""


# ----------------------------------------------------------------------------- the checks


def _version_tuple(text: str) -> tuple[int, int, int] | None:
    found = re.fullmatch(r"(\d+)\.(\d+)\.(\d+)", text)
    if found is None:  # a pre-release, a local build: not what the tests covered
        return None
    major, minor, patch = (int(part) for part in found.groups())
    return major, minor, patch


def supported_range() -> str:
    low, high = KOPF_SUPPORTED
    return f">={'.'.join(map(str, low))},<{'.'.join(map(str, high[:2]))}"


def check_version(installed: str | None = None) -> None:
    """Raise UnsupportedKopf unless the installed kopf is within KOPF_SUPPORTED."""
    installed = installed if installed is not None else importlib.metadata.version("kopf")
    version = _version_tuple(installed)
    low, high = KOPF_SUPPORTED
    if version is None or not low <= version < high:
        raise UnsupportedKopf(
            f"kopf {installed} is installed; modelfs supports kopf{supported_range()}, the "
            "versions its tests cover (modelfs replaces some of kopf's internals: "
            "modelfs/kopf_internals.py). Install a supported kopf."
        )


def _parameters(fn: Callable[..., Any]) -> list[tuple[str, Any, Any]]:
    """Name, kind and default of each parameter; a class-private name (`__state`, mangled to
    `_ToggleSet__state`) without its class's prefix."""
    return [
        (re.sub(r"^_[A-Za-z]\w*?(__\w+)$", r"\1", p.name), p.kind, p.default)
        for p in inspect.signature(fn).parameters.values()
    ]


def _differs(ours: Callable[..., Any], theirs: Callable[..., Any]) -> str | None:
    mine, kopfs = _parameters(ours), _parameters(theirs)
    if mine == kopfs:
        return None
    return f"kopf's takes {[p[0] for p in kopfs]}, modelfs's {[p[0] for p in mine]}"


# kopf's toggle classes, as CountingToggle(Set) was written against them: every method (a new
# one could change the toggles behind the count's back) and the attributes it shares with them.
TOGGLE_METHODS = frozenset(
    {"__init__", "__repr__", "__bool__", "is_on", "is_off", "turn_to", "wait_for", "name"}
)
TOGGLE_SET_METHODS = frozenset(
    {
        "__init__",
        "__repr__",
        "__len__",
        "__iter__",
        "__contains__",
        "__bool__",
        "is_on",
        "is_off",
        "wait_for",
        "make_toggle",
        "drop_toggle",
        "drop_toggles",
    }
)
TOGGLE_ATTRIBUTES = frozenset({"_condition", "_state"})
TOGGLE_SET_ATTRIBUTES = frozenset({"_condition", "_toggles", "_fn"})


def _methods(cls: type) -> frozenset[str]:
    return frozenset(
        name
        for name, value in vars(cls).items()
        if callable(value) or isinstance(value, property | staticmethod | classmethod)
    )


def check_signatures() -> None:
    """Raise UnsupportedKopf unless what is replaced here looks as it was written against."""
    problems = []
    found = _differs(process_event, KOPF_PROCESS)
    if found:
        problems.append(f"process_resource_event: {found}")
    for ours, theirs, names in (
        (CountingToggleSet, KOPF_TOGGLE_SET, CountingToggleSet.OVERRIDES),
        (CountingToggle, KOPF_TOGGLE, CountingToggle.OVERRIDES),
    ):
        for name in sorted(names):
            found = _differs(getattr(ours, name), getattr(theirs, name, lambda: None))
            if found:
                problems.append(f"{theirs.__name__}.{name}: {found}")
    for cls, known, attributes, instance in (
        (KOPF_TOGGLE, TOGGLE_METHODS, TOGGLE_ATTRIBUTES, lambda: KOPF_TOGGLE()),
        (KOPF_TOGGLE_SET, TOGGLE_SET_METHODS, TOGGLE_SET_ATTRIBUTES, lambda: KOPF_TOGGLE_SET(all)),
    ):
        new = _methods(cls) - known
        if new:
            problems.append(f"{cls.__name__} has methods modelfs does not know: {sorted(new)}")
        missing = attributes - set(vars(instance()))
        if missing:
            problems.append(f"{cls.__name__} no longer has {sorted(missing)}")
    if problems:
        raise UnsupportedKopf(
            f"kopf {importlib.metadata.version('kopf')} differs from what modelfs replaces in "
            f"it (modelfs/kopf_internals.py): {'; '.join(problems)}"
        )


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
    """Check kopf and the registry, then make kopf operators in this process count their
    readiness toggles and hand their watch events to `process_event`."""
    check_version()
    check_signatures()
    check(registry)
    aiotoggles.ToggleSet = CountingToggleSet  # type: ignore[misc]
    processing.process_resource_event = process_event


def uninstall() -> None:
    """kopf's own processor and toggle set again (for tests)."""
    aiotoggles.ToggleSet = KOPF_TOGGLE_SET  # type: ignore[misc]
    processing.process_resource_event = KOPF_PROCESS


def in_use() -> tuple[Callable[..., Any], type]:
    """The processor and the toggle set kopf operators started now would use."""
    return processing.process_resource_event, aiotoggles.ToggleSet


# ----------------------------------------------------------------------------- the dispatcher


@dataclass(frozen=True)
class Handlers:
    """The index and event handlers of one resource."""

    indexes: tuple[kopf_handlers.IndexingHandler, ...]
    events: tuple[kopf_handlers.WatchingHandler, ...]


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
    lifecycle: Any,
    indexers: OperatorIndexers,
    registry: registries.OperatorRegistry,
    settings: Any,
    memories: Any,
    memobase: Any,
    resource: references.Resource,
    raw_event: bodies.RawEvent,
    event_queue: Any,
    stream_pressure: Any = None,
    operator_paused: Any = None,
    resource_indexed: Any = None,
    operator_indexed: Any = None,
    consistency_time: Any = None,
    no_throttling: bool = False,
) -> str | None:
    """One watch event of one object, as kopf's `process_resource_event` for indexes and event
    handlers (with exactly its parameters: `check_signatures`). Returns the resourceVersion of
    a patch kopf made: never, here."""
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


# ----------------------------------------------------------------------------- readiness


class CountingToggle(aiotoggles.Toggle):
    """A toggle of a `CountingToggleSet`: tells its set when it turns."""

    OVERRIDES = frozenset({"turn_to"})
    """What kopf calls on it and this class replaces (its constructor is modelfs's alone)."""

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

    OVERRIDES = frozenset(
        {"__init__", "is_on", "wait_for", "make_toggle", "drop_toggle", "drop_toggles"}
    )

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


__all__ = [
    "CLIENT_LOGGERS",
    "KOPF_PROCESS",
    "KOPF_SUPPORTED",
    "CountingToggle",
    "CountingToggleSet",
    "Handlers",
    "OperatorIndexers",
    "Resource",
    "ResourceMemories",
    "UnsupportedHandler",
    "UnsupportedKopf",
    "all_at_once",
    "check",
    "check_signatures",
    "check_version",
    "in_use",
    "install",
    "process_event",
    "uninstall",
]
