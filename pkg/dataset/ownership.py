"""Who owns a Dataset: modelfs never takes over a Dataset that another object owns."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any


def controller_owner(body: Mapping[str, Any]) -> Mapping[str, Any] | None:
    refs = body.get("metadata", {}).get("ownerReferences") or []
    return next((ref for ref in refs if ref.get("controller")), None)


def ownership_conflict(existing: Mapping[str, Any], owner_uid: str) -> str | None:
    """Why the owner with `owner_uid` may not write `existing`, or None when it may.

    A Dataset with no controller owner was made by someone else (or retained by a deleted
    ModelSync): it is not adopted silently either.
    """
    owner = controller_owner(existing)
    name = existing.get("metadata", {}).get("name", "")
    if owner is None:
        return f"Dataset {name!r} already exists and is not owned by modelfs"
    if owner.get("uid") == owner_uid:
        return None
    return f"Dataset {name!r} is already owned by {owner.get('kind')} {owner.get('name')!r}"
