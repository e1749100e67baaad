"""modelfs.kopf_internals against kopf's own event processing: the same watch events through both,
with the operator's real registry, give the same index contents and the same handler calls.

This is what keeps the dispatcher faithful across kopf versions: a kopf that changes how it
calls index or event handlers, or what its processor is given, fails here."""

from __future__ import annotations

import asyncio
import copy
import inspect
import re
import tomllib
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import kopf
import pytest

from modelfs import kopf_internals as internals
from modelfs import operator
from modelfs.api.v1 import GROUP, VERSION
from modelfs.controllers.runtime import body_key, resource_version
from modelfs.pkg.dataset import DATASET_GROUP, DATASET_PLURAL, DATASET_VERSION, MANAGED_BY_LABEL

RESOURCES = {
    "namespaces": internals.Resource("", "v1", "namespaces", kind="Namespace", namespaced=False),
    **{
        plural: internals.Resource(GROUP, VERSION, plural, kind=kind, namespaced=True)
        for plural, kind in (
            ("modelsources", "ModelSource"),
            ("models", "Model"),
            ("modelsyncs", "ModelSync"),
            ("modelreferences", "ModelReference"),
        )
    },
    "datasets": internals.Resource(
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
    indexers = internals.OperatorIndexers()
    indexers.ensure(registry._indexing.get_all_handlers())
    recorder = Recorder()
    memo = kopf.Memo()
    memo.operator = recorder
    memories = internals.ResourceMemories()
    for plural, type_, body in EVENTS:
        await process(
            lifecycle=internals.all_at_once,
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
    kopf_calls, kopf_indexes = await run(internals.KOPF_PROCESS)
    our_calls, our_indexes = await run(internals.process_event)
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
    internals.check(registry)  # the operator's own: accepted

    async def on_create(**_: Any) -> None:
        return None

    kopf.on.create(GROUP, VERSION, "models", registry=registry)(on_create)
    with pytest.raises(internals.UnsupportedHandler, match="only indexes and event handlers"):
        internals.check(registry)

    filtered = operator.register(kopf.OperatorRegistry())
    kopf.on.event(GROUP, VERSION, "models", registry=filtered, when=lambda **_: True)(on_create)
    with pytest.raises(internals.UnsupportedHandler, match="label filter"):
        internals.check(filtered)

    def plain(**_: Any) -> None:
        return None

    synchronous = operator.register(kopf.OperatorRegistry())
    kopf.on.event(GROUP, VERSION, "models", registry=synchronous)(plain)
    with pytest.raises(internals.UnsupportedHandler, match="coroutines"):
        internals.check(synchronous)


# ----------------------------------------------------------------------------- the start-up checks

REPO = Path(__file__).resolve().parents[1]


def test_the_installed_kopf_passes_every_check() -> None:
    internals.check_version()
    internals.check_signatures()
    internals.check(operator.register(kopf.OperatorRegistry()))


def test_the_supported_range_is_the_pin_in_pyproject() -> None:
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    pins = [d for d in project["dependencies"] if re.match(r"kopf\b", d)]
    assert pins == [f"kopf{internals.supported_range()}"]


@pytest.mark.parametrize("version", ["1.46.0", "1.45.1", "1.44.9", "2.0.0", "1.46.0rc1", "1.45"])
def test_a_kopf_the_tests_do_not_cover_is_refused(version: str) -> None:
    with pytest.raises(internals.UnsupportedKopf) as refused:
        internals.check_version(version)
    assert f"kopf {version} is installed" in str(refused.value)
    assert "kopf>=1.45.2,<1.46" in str(refused.value)


@pytest.mark.parametrize("version", ["1.45.2", "1.45.9"])
def test_a_kopf_of_the_covered_minor_is_accepted(version: str) -> None:
    internals.check_version(version)


KOPFS = (internals.KOPF_PROCESS, internals.KOPF_TOGGLE_SET)


@pytest.fixture
def kopf_untouched() -> Iterator[None]:
    """kopf's processor and toggle set before and after the test, whatever `install` did."""
    assert internals.in_use() == KOPFS
    yield
    internals.uninstall()


@pytest.mark.usefixtures("kopf_untouched")
def test_install_replaces_kopfs_processor_and_toggle_set() -> None:
    internals.install(operator.register(kopf.OperatorRegistry()))
    assert internals.in_use() == (internals.process_event, internals.CountingToggleSet)


@pytest.mark.usefixtures("kopf_untouched")
def test_install_refuses_another_kopf_and_replaces_nothing(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr("importlib.metadata.version", lambda name: "1.46.1")
    with pytest.raises(internals.UnsupportedKopf, match=r"kopf 1\.46\.1 is installed"):
        internals.install(operator.register(kopf.OperatorRegistry()))
    assert internals.in_use() == KOPFS


def kopf_process(**renamed: str) -> Callable[..., Any]:
    """kopf's processor as a newer kopf might have it: parameters renamed, added (`+name`) or
    removed (`-name`)."""
    parameters = []
    for parameter in inspect.signature(internals.KOPF_PROCESS).parameters.values():
        if f"-{parameter.name}" in renamed.values():
            continue
        parameters.append(parameter.replace(name=renamed.get(parameter.name, parameter.name)))
    parameters += [
        inspect.Parameter(v[1:], inspect.Parameter.KEYWORD_ONLY, default=None)
        for v in renamed.values()
        if v.startswith("+")
    ]

    async def process(*args: Any, **kwargs: Any) -> None:
        return None

    process.__signature__ = inspect.Signature(parameters)  # type: ignore[attr-defined]
    return process


@pytest.mark.parametrize(
    ("changes", "named"),
    [
        ({"raw_event": "event"}, "event"),
        ({"new": "+stream_lag"}, "stream_lag"),
        ({"memobase": "-memobase"}, "memobase"),
    ],
)
@pytest.mark.usefixtures("kopf_untouched")
def test_a_processor_with_other_parameters_is_refused(
    monkeypatch: pytest.MonkeyPatch, changes: dict[str, str], named: str
) -> None:
    monkeypatch.setattr(internals, "KOPF_PROCESS", kopf_process(**changes))
    with pytest.raises(internals.UnsupportedKopf, match="process_resource_event") as refused:
        internals.install(operator.register(kopf.OperatorRegistry()))
    assert f"'{named}'" in str(refused.value)
    assert internals.in_use() == KOPFS


class RenamedWaitFor(internals.KOPF_TOGGLE_SET):
    async def wait_for(self, state: bool, within: float | None = None) -> None:
        return None


class NewMethod(internals.KOPF_TOGGLE_SET):
    async def add_toggle(self, toggle: Any) -> None:
        return None


class NoFn(internals.KOPF_TOGGLE_SET):
    def __init__(self, fn: Callable[..., bool]) -> None:
        super().__init__(fn)
        del self._fn


@pytest.mark.parametrize(
    ("toggle_set", "message"),
    [
        (RenamedWaitFor, r"WaitFor\.wait_for: kopf's takes \['self', 'state', 'within'\]"),
        (NewMethod, r"has methods modelfs does not know: \['add_toggle'\]"),
        (NoFn, r"no longer has \['_fn'\]"),
    ],
)
@pytest.mark.usefixtures("kopf_untouched")
def test_a_toggle_set_other_than_the_one_overridden_is_refused(
    monkeypatch: pytest.MonkeyPatch, toggle_set: type, message: str
) -> None:
    monkeypatch.setattr(internals, "KOPF_TOGGLE_SET", toggle_set)
    with pytest.raises(internals.UnsupportedKopf, match=message):
        internals.install(operator.register(kopf.OperatorRegistry()))
    assert internals.in_use() == KOPFS


# ----------------------------------------------------------------------------- one door


def test_only_kopf_internals_uses_kopfs_private_modules() -> None:
    allowed = {REPO / "modelfs" / "kopf_internals.py"}
    users = [
        str(path.relative_to(REPO))
        for top in ("modelfs", "controllers", "pkg", "tests", "e2e", "benchmarks")
        for path in (REPO / top).rglob("*.py")
        if path not in allowed and re.search(r"\bkopf\._", path.read_text())
    ]
    assert users == []
