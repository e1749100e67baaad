"""The kinds modelfs watches but does not reconcile: Datasets (what it made, and names taken by
others) and Namespaces (their labels decide sharing; one being deleted gets no writes)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from modelfs.controllers import triggers
from modelfs.controllers.descriptor import Watched
from modelfs.controllers.runtime import RAW, Indexes, by_name
from modelfs.pkg.dataset import (
    DATASET_GROUP,
    DATASET_PLURAL,
    DATASET_VERSION,
    MANAGED_BY,
    MANAGED_BY_LABEL,
)


def namespace_summary(body: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    """Per namespace: its labels (for sharing) and whether it is being deleted."""
    meta = body.get("metadata") or {}
    terminating = bool(meta.get("deletionTimestamp")) or (
        (body.get("status") or {}).get("phase") == "Terminating"
    )
    return {
        str(meta.get("name") or ""): {
            "labels": dict(meta.get("labels") or {}),
            "terminating": terminating,
        }
    }


def namespace_affected(ix: Indexes, body: Mapping[str, Any]) -> triggers.Affected:
    return triggers.namespace_changed(ix, str(body.get("metadata", {}).get("name", "")))


DATASETS = Watched(
    plural=DATASET_PLURAL,
    group=DATASET_GROUP,
    version=DATASET_VERSION,
    # Every Dataset is indexed, not only modelfs's: a name taken by someone else's must be seen.
    index=by_name,
    views={"datasets": None},
    labels={MANAGED_BY_LABEL: MANAGED_BY},
    triggers=triggers.dataset_changed,
    own_write=triggers.dataset_written,
    reads=triggers.dataset_reads,
)

NAMESPACES = Watched(
    plural="namespaces",
    group="",
    version="v1",
    index=namespace_summary,
    views={"namespaces": RAW},
    triggers=namespace_affected,
)
