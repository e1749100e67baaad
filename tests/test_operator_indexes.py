"""The kinds' index functions (one per kind, secondary keys tagged), registered with kopf as
the operator does, read back through `Indexes` as the reconcilers read them."""

from __future__ import annotations

import asyncio
from typing import Any, cast

import kopf

from modelfs import operator
from modelfs.controllers import model, modelreference, modelsync, triggers
from modelfs.controllers.runtime import Tagged


def body(kind: str, namespace: str, name: str, spec: dict[str, Any]) -> kopf.Body:
    raw: dict[str, Any] = {
        "kind": kind,
        "metadata": {"namespace": namespace, "name": name},
        "spec": spec,
    }
    return kopf.Body(cast(kopf.RawBody, raw))


def build(kind: Any, bodies: list[kopf.Body]) -> dict[Any, list[Any]]:
    """What kopf keeps for an index: per key, the values of every object that has it."""
    index: dict[Any, list[Any]] = {}
    fn = operator.kopf_index(kind)  # as registered with kopf
    for each in bodies:
        found = asyncio.run(fn(body=each, spec=each.spec))
        for key, value in found.items():
            index.setdefault(key, []).append(value)
    return index


def test_one_index_per_kind_answers_every_lookup() -> None:
    syncs = [
        body("ModelSync", "a", "s1", {"modelRef": "m", "version": "v1"}),
        body("ModelSync", "a", "s2", {"modelRef": "m", "version": "v2"}),
        body("ModelSync", "a", "dup", {"modelRef": "m", "version": "v1"}),
        body("ModelSync", "b", "s1", {"modelRef": "m", "version": "v1"}),
    ]
    models = [
        body("Model", "a", "m", {"sourceRef": "src"}),
        body("Model", "a", "other", {"sourceRef": "src"}),
    ]
    references = [body("ModelReference", "c", "r", {"modelRef": {"namespace": "a", "name": "m"}})]
    ix = operator.indexes_of(
        {
            "namespaces_index": {},
            "modelsources_index": {},
            "datasets_index": {},
            "models_index": build(model.DESCRIPTOR, models),
            "modelsyncs_index": build(modelsync.DESCRIPTOR, syncs),
            "modelreferences_index": build(modelreference.DESCRIPTOR, references),
        }
    )
    assert sorted(ix.syncs) == [("a", "dup"), ("a", "s1"), ("a", "s2"), ("b", "s1")]
    assert len(ix.syncs) == 4 and (ix.sync(("a", "s1")) or {})["spec"]["version"] == "v1"
    assert ix.sync(("a", "m")) is None  # a Model's name is no ModelSync's
    assert ix.sync_names_of_model(("a", "m")) == ["dup", "s1", "s2"]
    assert [b["metadata"]["name"] for b in ix.syncs_of_version(("a", "m"), "v1")] == ["dup", "s1"]
    assert ix.model_names_of_source(("a", "src")) == ["m", "other"]
    assert sorted(ix.models) == [("a", "m"), ("a", "other")]
    assert ix.references_of_model(("a", "m")) == [("c", "r")]
    assert sorted(ix.references) == [("c", "r")]
    everything = triggers.everything(ix)
    assert everything.keys["modelsyncs"] == set(ix.syncs) and everything.count() == 7


def test_a_tagged_view_never_mixes_kinds_of_keys() -> None:
    index = {("a", "x"): [1], ("@model", "a", "x"): ["s"], ("@version", "a", "x", "v"): ["s"]}
    assert list(Tagged(index)) == [("a", "x")]
    assert list(Tagged(index, "@model")) == [("a", "x")]
    assert Tagged(index, "@version")[("a", "x", "v")] == ["s"]
    assert Tagged(index).get(("@model", "a", "x")) is None
    assert Tagged(index, "@source").get(("a", "x")) is None
