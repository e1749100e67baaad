"""Whether a stored Dataset needs modelfs's apply, and the patch that undoes a hand edit.

The spec keys compared and repaired are DatasetSpec's fields (their wire names), so a field
added there is applied and repaired with no edit here.
"""

from __future__ import annotations

from typing import Any

from modelfs.pkg.dataset.types import DatasetSpec, NotManaged, pruned

SPEC_KEYS: tuple[str, ...] = tuple(
    info.alias or name for name, info in DatasetSpec.model_fields.items()
)
"""Every field of the Dataset spec, as the Dataset operator's Go struct has them."""

MANAGED_SPEC_KEYS: tuple[str, ...] = tuple(
    info.alias or name
    for name, info in DatasetSpec.model_fields.items()
    if not any(isinstance(mark, NotManaged) for mark in info.metadata)
)
"""The spec fields modelfs owns: compared by `needs_apply`."""

UNSET_SPEC_KEYS: tuple[str, ...] = tuple(
    info.alias or name
    for name, info in DatasetSpec.model_fields.items()
    if (info.alias or name) in MANAGED_SPEC_KEYS
    and not info.is_required()
    and info.get_default() is None
)
"""The managed fields modelfs may leave unset, which `drift_patch` removes when someone else set
them. The others always have modelfs's value (source is required, dataSyncRound has a default),
so apply itself takes them back."""


def managed_spec(spec: dict[str, Any]) -> Any:
    """The fields of a Dataset spec that modelfs owns, as the Dataset operator reads them."""
    return pruned({k: spec.get(k) for k in MANAGED_SPEC_KEYS})


def needs_apply(existing: dict[str, Any] | None, desired: dict[str, Any]) -> bool:
    """Whether the Dataset differs from what modelfs wants in the fields modelfs owns."""
    if existing is None:
        return True
    meta, want_meta = existing.get("metadata", {}), desired["metadata"]
    labels = meta.get("labels") or {}
    if any(labels.get(k) != v for k, v in want_meta.get("labels", {}).items()):
        return True
    owners = {ref.get("uid") for ref in meta.get("ownerReferences") or []}
    if any(ref["uid"] not in owners for ref in want_meta.get("ownerReferences", [])):
        return True
    return bool(managed_spec(existing.get("spec") or {}) != managed_spec(desired["spec"]))


def drift_patch(stored: dict[str, Any], desired: dict[str, Any]) -> dict[str, Any] | None:
    """A merge patch that removes what a hand edit added to the fields modelfs manages.

    Server-side apply takes back the fields modelfs sets, but leaves a field another manager
    added (a secretRef, an extra option) in place; those are removed here.
    """
    spec, want = stored.get("spec") or {}, desired["spec"]
    patch: dict[str, Any] = {}
    for key in UNSET_SPEC_KEYS:
        if key not in want and pruned({key: spec.get(key)}):
            patch[key] = None
    extra = set((spec.get("source") or {}).get("options") or {}) - set(
        want["source"].get("options") or {}
    )
    if extra:
        patch["source"] = {"options": dict.fromkeys(sorted(extra))}
    return {"spec": patch} if patch else None
