"""Pure logic more than one controller reads (no I/O, no kopf): the verdict on a ModelSource,
and which ModelSync of a Model version is the one that syncs it. Controllers import this
module, never one another."""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable, Hashable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from modelfs.api.v1 import Model, ModelSource, ModelSync, SourceType
from modelfs.api.v1.reasons import READY, SECRET_KEY_MISSING, SECRET_MISSING, SOURCE_NOT_SHARED
from modelfs.pkg.dataset import (
    Resolution,
    ResolutionError,
    describe_secret_keys,
    missing_secret_keys,
    resolve,
    source_config_errors,
    version_errors,
)
from modelfs.pkg.labels import SelectorError, selector_matches, validate_selector

SOURCE_SECONDS = 60.0
"""How old the key names of a ModelSource's Secret may get before the source re-reads them
(Secrets are not watched: watching them needs list/watch on every Secret)."""


@dataclass(frozen=True)
class Verdict:
    """Whether a thing is usable, and why not: the value of every condition modelfs sets
    (`ready` is its status, True or False)."""

    ready: bool
    reason: str
    message: str


def config_verdict(source: ModelSource) -> Verdict | None:
    """The verdict on config alone, or None when the config is fine."""
    errors = source_config_errors(source)
    if not errors:
        return None
    message = "; ".join(f"{e.field}: {e.message}" for e in errors)
    return Verdict(False, str(errors[0].reason), message)


def secret_verdict(source: ModelSource, keys: frozenset[str] | None) -> Verdict | None:
    """The verdict on the Secret, from its key names only; None when fine or not needed."""
    name = source.spec.secret_ref
    if not name:
        return None
    source_type = SourceType(source.spec.type)
    if keys is None:
        return Verdict(
            False,
            SECRET_MISSING,
            f"Secret {name!r} does not exist in namespace {source.metadata.namespace!r}; "
            f"{source_type} reads the keys {describe_secret_keys(source_type)}",
        )
    missing = missing_secret_keys(source_type, set(keys))
    if missing:
        return Verdict(
            False,
            SECRET_KEY_MISSING,
            f"Secret {name!r} lacks the key(s) {', '.join(missing)}; {source_type} reads "
            f"{describe_secret_keys(source_type)}",
        )
    return None


def source_verdict(source: ModelSource, keys: frozenset[str] | None) -> Verdict:
    found = config_verdict(source) or secret_verdict(source, keys)
    return found or Verdict(True, READY, f"{source.spec.type} source is ready")


def first_syncer(bodies: Iterable[dict[str, Any]], version: str) -> dict[str, Any] | None:
    """Of the ModelSyncs (raw bodies) for one Model, the oldest live one that syncs `version`:
    the one that owns the Dataset (the others are refused as duplicates)."""
    rivals = [
        body
        for body in bodies
        if (body.get("spec") or {}).get("version") == version
        and not body.get("metadata", {}).get("deletionTimestamp")
    ]

    def age(body: dict[str, Any]) -> tuple[str, str]:
        meta = body.get("metadata", {})
        return (str(meta.get("creationTimestamp") or ""), str(meta.get("name") or ""))

    return min(rivals, key=age, default=None)


# ----------------------------------------------------------------------------- REFERENCE sources


def reference_target(source: ModelSource, model: Model, version: str) -> tuple[str, str] | None:
    """The Dataset (namespace, name) that a REFERENCE source's version reads when it is in
    ANOTHER namespace than the Model; None for any other case."""
    if SourceType(source.spec.type) != SourceType.REFERENCE:
        return None
    config = model.spec.version_configs.get(version)
    if config is None:
        return None
    repo = config.repo.removeprefix("dataset://").split("?", 1)[0]
    namespace, _, name = repo.partition("/")
    if not namespace or not name or namespace == model.metadata.namespace:
        return None
    return namespace, name


def shares_with(dataset: Mapping[str, Any] | None, labels: Mapping[str, str] | None) -> bool:
    """Whether `dataset` (another namespace's) is shared with a namespace of `labels`: the rule
    the Dataset operator applies to a REFERENCE (`share`, and `shareToNamespaceSelector`
    matching, empty for every namespace), evaluated by modelfs before it creates anything. On
    a Dataset modelfs made, those fields are the Model's `share.namespaceSelector`: the check a
    ModelReference gets."""
    if dataset is None or labels is None or dataset.get("metadata", {}).get("deletionTimestamp"):
        return False
    spec = dataset.get("spec") or {}
    if spec.get("share") is not True:
        return False
    selector = spec.get("shareToNamespaceSelector") or {}
    try:
        validate_selector(selector, "shareToNamespaceSelector", allow_empty=True)
    except SelectorError:
        return False
    return selector_matches(selector, labels)


def not_shared(target: tuple[str, str], namespace: str) -> Verdict:
    """One verdict for every reason a REFERENCE to another namespace is refused (no such
    Dataset, not shared, shared with other namespaces, a selector in error): which one it is
    would tell this namespace about the other."""
    return Verdict(
        False,
        SOURCE_NOT_SHARED,
        f"the REFERENCE source dataset://{target[0]}/{target[1]} is not a Dataset shared with "
        f"namespace {namespace!r}; modelfs creates no Dataset for it. To read a model another "
        "namespace syncs, create a ModelReference (its Model must share with this namespace)",
    )


# ----------------------------------------------------------------------------- spec memos

Value = TypeVar("Value")


class SpecMemo(Generic[Value]):
    """The results of a pure function of objects' specs, by the (uid, generation) of each
    object: a spec is resolved once per change, however many reconciles read it (a Model's 50
    versions were checked on every reconcile of the Model, and a ModelSync resolved on every
    watch event of its Dataset). The API server bumps `metadata.generation` on every change of
    a spec, and only then; what these functions read besides the spec (uid, name, namespace)
    never changes. ResolutionErrors are kept too and raised again. Bounded: the least recently
    used go first."""

    def __init__(self, size: int) -> None:
        self.size = size
        self.entries: OrderedDict[Hashable, tuple[Value | None, ResolutionError | None]] = (
            OrderedDict()
        )

    def get(self, key: Hashable | None, compute: Callable[[], Value]) -> Value:
        if key is None:  # an object without uid or generation (built in a test): no memo
            return compute()
        found = self.entries.get(key)
        if found is None:
            try:
                found = (compute(), None)
            except ResolutionError as refused:
                found = (None, refused)
            self.entries[key] = found
            if len(self.entries) > self.size:
                self.entries.popitem(last=False)
        else:
            self.entries.move_to_end(key)
        value, error = found
        if error is not None:
            raise error.with_traceback(None)
        return value  # type: ignore[return-value]


def spec_key(*objects: ModelSource | Model | ModelSync) -> tuple[Any, ...] | None:
    """(uid, generation) of each object, or None when one lacks either."""
    key: list[Any] = []
    for each in objects:
        uid, generation = each.metadata.uid, each.metadata.generation
        if not uid or generation is None:
            return None
        key += (uid, generation)
    return tuple(key)


RESOLUTIONS: SpecMemo[Resolution] = SpecMemo(1024)
VERSION_ERRORS: SpecMemo[list[ResolutionError]] = SpecMemo(256)


def resolved(
    source: ModelSource, model: Model, sync: ModelSync, *, data_sync_round: int
) -> Resolution:
    """`pkg.dataset.resolve`, once per spec generation of the three and round. The Resolution
    is shared: read it, never change it (`Dataset.to_manifest` returns a new dict)."""
    key = spec_key(source, model, sync)
    return RESOLUTIONS.get(
        key and (*key, data_sync_round),
        lambda: resolve(source, model, sync, data_sync_round=data_sync_round),
    )


def model_version_errors(source: ModelSource, model: Model) -> list[ResolutionError]:
    """What is wrong with each version of `model` against `source`, in version order; once per
    spec generation of the two."""
    return list(
        VERSION_ERRORS.get(
            spec_key(source, model),
            lambda: [
                error
                for version in sorted(model.spec.version_configs)
                for error in version_errors(source, model, version)
            ],
        )
    )
