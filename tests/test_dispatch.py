"""modelfs.dispatch against kopf's own event processing: the same watch events through both,
with the operator's real registry, give the same index contents and the same handler calls.

This is what keeps the dispatcher faithful across kopf versions: a kopf that changes how it
calls index or event handlers, or what its processor is given, fails here."""

from __future__ import annotations

import asyncio
import copy
from collections.abc import Callable
from typing import Any

import kopf
import pytest
from kopf._cogs.structs import references
from kopf._core.actions import lifecycles
from kopf._core.engines.indexing import OperatorIndexers
from kopf._core.reactor import inventory

from modelfs import dispatch, operator
from modelfs.api.v1 import GROUP, VERSION
from modelfs.controllers.runtime import body_key, resource_version
from modelfs.pkg.dataset import DATASET_GROUP, DATASET_PLURAL, DATASET_VERSION, MANAGED_BY_LABEL

RESOURCES = {
    "namespaces": references.Resource("", "v1", "namespaces", kind="Namespace", namespaced=False),
    **{
        plural: references.Resource(GROUP, VERSION, plural, kind=kind, namespaced=True)
        for plural, kind in (
            ("modelsources", "ModelSource"),
            ("models", "Model"),
            ("modelsyncs", "ModelSync"),
            ("modelreferences", "ModelReference"),
        )
    },
    "datasets": references.Resource(
        DATASET_GROUP, DATASET_VERSION, DATASET_PLURAL, kind="Dataset", namespaced=True
    ),
}


class Recorder:
    """Stands in for the Operator: what each event handler call handed over."""

    def __init__(self) -> None:
        self.calls: list[tuple[Any, ...]] = []
        self.indexes: asyncio.Future[Any] = asyncio.get_running_loop().create_future()

    def on_event(
        self, kind: Any, body: Any, indexes: Any, *, listing: bool = False, deleted: bool = False
    ) -> None:
        self.calls.append(
            (kind.plural, body_key(body), resource_version(body), listing, deleted, kind.index_id)
        )


def obj(plural: str, name: str, rv: int, **extra: Any) -> dict[str, Any]:
    meta: dict[str, Any] = {"name": name, "uid": f"uid-{plural}-{name}", "resourceVersion": str(rv)}
    if plural != "namespaces":
        meta["namespace"] = "team-a"
    meta.update(extra.pop("metadata", {}))
    return {"metadata": meta, **extra}


MANAGED = {"labels": {MANAGED_BY_LABEL: "modelfs"}}
EVENTS: list[tuple[str, str | None, dict[str, Any]]] = [
    ("namespaces", None, obj("namespaces", "team-a", 1, metadata={"labels": {"team": "a"}})),
    ("modelsources", None, obj("modelsources", "src", 2, spec={"type": "HTTP"})),
    ("models", None, obj("models", "mdl", 3, spec={"sourceRef": "src"})),
    ("modelsyncs", None, obj("modelsyncs", "s1", 4, spec={"modelRef": "mdl", "version": "v1"})),
    (
        "modelreferences",
        None,
        obj("modelreferences", "r1", 5, spec={"modelRef": {"namespace": "x", "name": "mdl"}}),
    ),
    ("datasets", None, obj("datasets", "mdl-v1", 6, metadata=MANAGED, spec={})),
    ("datasets", None, obj("datasets", "theirs", 7, spec={})),
    ("modelsyncs", "MODIFIED", obj("modelsyncs", "s1", 8, spec={"modelRef": "mdl"}, status={})),
    ("modelsyncs", "ADDED", obj("modelsyncs", "s2", 9, spec={"modelRef": "m2", "version": "v"})),
    ("datasets", "MODIFIED", obj("datasets", "theirs", 10, metadata=MANAGED, spec={})),
    ("datasets", "MODIFIED", obj("datasets", "mdl-v1", 11, spec={})),  # label gone
    ("namespaces", "MODIFIED", obj("namespaces", "team-a", 12, status={"phase": "Terminating"})),
    ("modelsyncs", "DELETED", obj("modelsyncs", "s1", 13, spec={"modelRef": "mdl"})),
    ("datasets", "DELETED", obj("datasets", "theirs", 14, metadata=MANAGED, spec={})),
    ("models", "DELETED", obj("models", "mdl", 15, spec={"sourceRef": "src"})),
]

Process = Callable[..., Any]


async def run(process: Process) -> tuple[list[tuple[Any, ...]], dict[str, Any]]:
    registry = operator.register(kopf.OperatorRegistry())
    settings = kopf.OperatorSettings()
    operator.configure_settings(settings)
    indexers = OperatorIndexers()
    indexers.ensure(registry._indexing.get_all_handlers())
    recorder = Recorder()
    memo = kopf.Memo()
    memo.operator = recorder
    memories = inventory.ResourceMemories()
    for plural, type_, body in EVENTS:
        await process(
            lifecycle=lifecycles.all_at_once,
            registry=registry,
            settings=settings,
            indexers=indexers,
            memories=memories,
            memobase=memo,
            resource=RESOURCES[plural],
            raw_event={"type": type_, "object": copy.deepcopy(body)},
            event_queue=asyncio.Queue(),
            no_throttling=True,
        )
    contents = {
        name: {key: sorted(map(repr, store)) for key, store in index.items()}
        for name, index in indexers.indices.items()
    }
    return recorder.calls, contents


async def test_the_dispatcher_gives_the_handlers_and_indexes_what_kopf_does() -> None:
    kopf_calls, kopf_indexes = await run(dispatch.KOPF_PROCESS)
    our_calls, our_indexes = await run(dispatch.process_event)
    assert our_calls == kopf_calls
    assert our_indexes == kopf_indexes
    # and the events were meaningful: every kind, listings, deletions, a filtered Dataset
    assert {c[0] for c in kopf_calls} == set(RESOURCES)
    assert any(c[3] for c in kopf_calls) and any(c[4] for c in kopf_calls)
    assert ("datasets", ("team-a", "mdl-v1"), "11", False, False, "datasets_index") not in (
        kopf_calls
    )
    assert ("team-a", "theirs") not in kopf_indexes["datasets_index"]
    assert ("team-a", "mdl-v1") in kopf_indexes["datasets_index"]


def test_a_registry_with_other_handlers_is_refused() -> None:
    registry = operator.register(kopf.OperatorRegistry())
    dispatch.check(registry)  # the operator's own: accepted

    async def on_create(**_: Any) -> None:
        return None

    kopf.on.create(GROUP, VERSION, "models", registry=registry)(on_create)
    with pytest.raises(dispatch.UnsupportedHandler, match="only indexes and event handlers"):
        dispatch.check(registry)

    filtered = operator.register(kopf.OperatorRegistry())
    kopf.on.event(GROUP, VERSION, "models", registry=filtered, when=lambda **_: True)(on_create)
    with pytest.raises(dispatch.UnsupportedHandler, match="label filter"):
        dispatch.check(filtered)

    def plain(**_: Any) -> None:
        return None

    synchronous = operator.register(kopf.OperatorRegistry())
    kopf.on.event(GROUP, VERSION, "models", registry=synchronous)(plain)
    with pytest.raises(dispatch.UnsupportedHandler, match="coroutines"):
        dispatch.check(synchronous)
