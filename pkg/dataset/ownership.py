"""Who owns a Dataset: modelfs never takes over a Dataset that another object owns, and takes
back only a Dataset it can prove it made for this very owner."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

from modelfs.pkg.dataset.resolve import MANAGED_BY, MANAGED_BY_LABEL

MODELFS_MANAGER = "modelfs"
"""The field manager modelfs applies Datasets under (`client.FIELD_MANAGER`)."""


def controller_owner(body: Mapping[str, Any]) -> Mapping[str, Any] | None:
    refs = body.get("metadata", {}).get("ownerReferences") or []
    return next((ref for ref in refs if ref.get("controller")), None)


def ownership_conflict(existing: Mapping[str, Any], owner_uid: str) -> str | None:
    """Why the owner with `owner_uid` may not write `existing`, or None when it may.

    A Dataset with no controller owner was made by someone else (or retained by a deleted
    ModelSync): it is not adopted silently either (but see `adoptable`).
    """
    owner = controller_owner(existing)
    name = existing.get("metadata", {}).get("name", "")
    if owner is None:
        return f"Dataset {name!r} already exists and is not owned by modelfs"
    if owner.get("uid") == owner_uid:
        return None
    return f"Dataset {name!r} is already owned by {owner.get('kind')} {owner.get('name')!r}"


def _created(meta: Mapping[str, Any]) -> datetime | None:
    text = meta.get("creationTimestamp")
    if not text:
        return None
    try:
        return datetime.fromisoformat(str(text).replace("Z", "+00:00"))
    except ValueError:
        return None


def adoptable(existing: Mapping[str, Any], owner: Mapping[str, Any]) -> bool:
    """Whether `existing`, a Dataset without a controller owner, is the one modelfs made for
    `owner` (a ModelSync or ModelReference body) and lost its owner reference since (a hand
    edit): then modelfs takes it back. ALL of the evidence is required:

    - no controller owner at all;
    - the label `app.kubernetes.io/managed-by: modelfs`;
    - modelfs's field manager applied it (metadata.managedFields);
    - the owner's status names it (`status.datasetName`): modelfs wrote that, and the owner
      has resolved to it before;
    - it was created no earlier than the owner (server-set times, whole seconds): a Dataset
      that was there first is someone else's, or one retained from an earlier owner.

    The last two are what no one without the owner's rights can forge (docs/decisions.md, "A
    Dataset that lost its owner reference is taken back")."""
    meta = existing.get("metadata", {})
    owner_meta = owner.get("metadata", {})
    if controller_owner(existing) is not None:
        return False
    if (meta.get("labels") or {}).get(MANAGED_BY_LABEL) != MANAGED_BY:
        return False
    managers = {entry.get("manager") for entry in meta.get("managedFields") or []}
    if MODELFS_MANAGER not in managers:
        return False
    name = meta.get("name")
    if not name or (owner.get("status") or {}).get("datasetName") != name:
        return False
    if meta.get("namespace") != owner_meta.get("namespace"):
        return False
    created, owner_created = _created(meta), _created(owner_meta)
    return created is not None and owner_created is not None and created >= owner_created
