"""The one place where the kinds meet: which keys a watch event affects.

Every watch event becomes a set of keys per kind (`Affected`), found through the indexes; the
queues reconcile them. No reconciler calls another: a reconcile that changes an object (its
status, a Dataset) causes a watch event, and this map carries it on.

    ModelSource ─▶ Models ─▶ ModelSyncs ─▶ ModelReferences (of the Model)
                    ▲  ▲         │  ▲
                    │  └─ status ┘  └── Dataset (owned) ──▶ the Model's ModelReferences
                    └──── ModelReference (readers)          Namespace ─▶ its ModelReferences
"""

from __future__ import annotations

from collections import OrderedDict, defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from modelfs.api.v1 import Model, ModelReference, ModelSource, ModelSync
from modelfs.controllers.runtime import Indexes, Key, body_key
from modelfs.pkg.dataset import managed_spec

SOURCES, MODELS, SYNCS, REFERENCES = (
    ModelSource.plural,
    Model.plural,
    ModelSync.plural,
    ModelReference.plural,
)
OWNER_KINDS = {ModelSync.kind_name: SYNCS, ModelReference.kind_name: REFERENCES}
"""The kinds that own Datasets, by kind name: their plural."""


@dataclass
class Affected:
    """Keys to reconcile, per kind (plural), in the order the kinds were first added."""

    keys: defaultdict[str, set[Key]] = field(default_factory=lambda: defaultdict(set))

    def add(self, kind: str, *keys: Key) -> Affected:
        self.keys[kind].update(keys)
        return self

    def __iter__(self) -> Any:
        for kind, keys in self.keys.items():
            for key in sorted(keys):
                yield kind, key

    def count(self) -> int:
        return sum(len(keys) for keys in self.keys.values())


def _spec(body: Mapping[str, Any]) -> Mapping[str, Any]:
    return body.get("spec") or {}


def syncs_and_readers(ix: Indexes, model_key: Key, affected: Affected) -> Affected:
    namespace = model_key[0]
    affected.add(SYNCS, *((namespace, n) for n in ix.sync_names_of_model(model_key)))
    affected.add(REFERENCES, *ix.references_of_model(model_key))
    return affected


def source_changed(ix: Indexes, body: Mapping[str, Any]) -> Affected:
    """A ModelSource: itself, its Models (readiness), their ModelSyncs (resolution)."""
    key = body_key(body)
    affected = Affected().add(SOURCES, key)
    for name in ix.model_names_of_source(key):
        model_key = (key[0], name)
        affected.add(MODELS, model_key)
        affected.add(SYNCS, *((key[0], n) for n in ix.sync_names_of_model(model_key)))
    return affected


def model_changed(ix: Indexes, body: Mapping[str, Any]) -> Affected:
    """A Model: itself, its source (it counts Models), its ModelSyncs and ModelReferences."""
    key = body_key(body)
    affected = Affected().add(MODELS, key)
    source = _spec(body).get("sourceRef")
    if source:
        affected.add(SOURCES, (key[0], str(source)))
    return syncs_and_readers(ix, key, affected)


def sync_changed(ix: Indexes, body: Mapping[str, Any]) -> Affected:
    """A ModelSync: itself, its Model (versions), the other ModelSyncs of the Model's same
    version (a duplicate may take over; modelRef and version are immutable, so no other
    ModelSync's verdict depends on this one), and the Model's ModelReferences (their source)."""
    key = body_key(body)
    affected = Affected().add(SYNCS, key)
    model = _spec(body).get("modelRef")
    if model:
        model_key = (key[0], str(model))
        affected.add(MODELS, model_key)
        version = str(_spec(body).get("version", ""))
        affected.add(SYNCS, *map(body_key, ix.syncs_of_version(model_key, version)))
        affected.add(REFERENCES, *ix.references_of_model(model_key))
    return affected


def reference_changed(ix: Indexes, body: Mapping[str, Any]) -> Affected:
    """A ModelReference: itself and the Model it reads (which lists its readers)."""
    affected = Affected().add(REFERENCES, body_key(body))
    target = _spec(body).get("modelRef") or {}
    if target.get("namespace") and target.get("name"):
        affected.add(MODELS, (str(target["namespace"]), str(target["name"])))
    return affected


def dataset_changed(ix: Indexes, body: Mapping[str, Any]) -> Affected:
    """A Dataset modelfs manages: the object that owns it; for a ModelSync's, also the
    ModelReferences of its Model (it is their source). One that lost its owner reference: the
    objects whose status names it (they may take it back)."""
    namespace, name = body_key(body)
    affected = Affected()
    if not any(o.get("controller") for o in body.get("metadata", {}).get("ownerReferences") or []):
        for plural, store, get in (
            (SYNCS, ix.syncs, ix.sync),
            (REFERENCES, ix.references, ix.reference),
        ):
            for key in store:
                if (
                    key[0] == namespace
                    and ((get(key) or {}).get("status") or {}).get("datasetName") == name
                ):
                    affected.add(plural, key)
        return affected
    for owner in body.get("metadata", {}).get("ownerReferences") or []:
        if not owner.get("controller"):
            continue
        owner_key = (namespace, str(owner.get("name")))
        if owner.get("kind") == ModelReference.kind_name:
            affected.add(REFERENCES, owner_key)
        elif owner.get("kind") == ModelSync.kind_name:
            affected.add(SYNCS, owner_key)
            sync = ix.sync(owner_key)
            model = _spec(sync or {}).get("modelRef")
            if model:
                affected.add(REFERENCES, *ix.references_of_model((namespace, str(model))))
    return affected


def dataset_reads(body: Mapping[str, Any]) -> tuple[Any, ...]:
    """What any reconciler reads of a Dataset: the spec fields modelfs owns (as the Dataset
    operator reads them: `managed_spec`), status, labels, annotations, owners and deletion. A
    watch event that changes none of these (the Dataset operator's finalizer and its spec
    write-back with the API server's defaults, a managedFields timestamp) affects nobody.
    Kept for the newest version of each Dataset (`READS_KEPT` Datasets): the watch event and
    each reconcile of its owner ask. The parts are the body's own, not copies: pass the
    indexed body, whose strings are shared, rather than a watch event's."""
    meta = body.get("metadata", {})
    uid, version = meta.get("uid"), meta.get("resourceVersion")
    found = _reads.get(uid) if version else None
    if found is not None and found[0] == version:
        return found[1]
    reads = (
        managed_spec(body.get("spec") or {}),
        body.get("status"),
        meta.get("labels"),
        meta.get("annotations"),
        meta.get("ownerReferences"),
        meta.get("deletionTimestamp"),
    )
    if version:
        _reads[uid] = (version, reads)
        _reads.move_to_end(uid)
        if len(_reads) > READS_KEPT:
            _reads.popitem(last=False)
    return reads


def forget_reads(uid: str) -> None:
    """A Dataset is gone: what was kept of its reads goes too."""
    _reads.pop(uid, None)


READS_KEPT = 4096
"""Datasets whose newest reads are kept; the one whose reads changed longest ago goes first."""
_reads: OrderedDict[Any, tuple[Any, tuple[Any, ...]]] = OrderedDict()


def namespace_changed(ix: Indexes, name: str) -> Affected:
    """A Namespace's labels decide what it may reference."""
    return Affected().add(REFERENCES, *(k for k in ix.references if k[0] == name))


def source_written(ix: Indexes, body: Mapping[str, Any], waited: bool) -> Affected:
    """modelfs wrote a ModelSource's status: a Secret re-check may have changed the verdict its
    Models and ModelSyncs read. The source itself has nothing new to reconcile."""
    affected = source_changed(ix, body)
    affected.keys[SOURCES].clear()
    return affected


def sync_written(ix: Indexes, body: Mapping[str, Any], waited: bool) -> Affected:
    """modelfs wrote a ModelSync (status, finalizer): the Model lists its phase; references
    read its Dataset. The ModelSync itself has nothing new to reconcile."""
    affected = sync_changed(ix, body)
    affected.keys[SYNCS].clear()
    return affected


def dataset_written(ix: Indexes, body: Mapping[str, Any], waited: bool) -> Affected:
    """modelfs applied a Dataset: the Model's references read it; its owner only if a reconcile
    of the owner waited for it (`Runtime.wait_for_own_write`)."""
    affected = dataset_changed(ix, body)
    if not waited:
        for owner in body.get("metadata", {}).get("ownerReferences") or []:
            kind = OWNER_KINDS.get(str(owner.get("kind")))
            if owner.get("controller") and kind:
                affected.keys[kind].discard((body_key(body)[0], str(owner.get("name"))))
    return affected


def everything(ix: Indexes, plurals: Iterable[str] | None = None) -> Affected:
    """Every key of every reconciled kind (of `plurals`): the periodic resync."""
    if plurals is None:
        from modelfs.controllers.kinds import RECONCILED  # the kinds import this module

        plurals = [kind.plural for kind in RECONCILED]
    affected = Affected()
    for plural in plurals:
        affected.add(plural, *ix.keys(plural))
    return affected
