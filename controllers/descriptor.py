"""A kind's wiring, declared once next to its reconciler, as kubebuilder's `SetupWithManager`.

Every part of the operator that differs by kind reads these descriptors: the kopf registration
(`modelfs.operator.register`), the queues and their workers, the generic runner
(`controllers.runner`), the runtime's bookkeeping, the `Indexes` view, the RBAC rules and the
in-memory test cluster. Adding a kind means writing its module and listing its descriptor in
`controllers.kinds`.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from modelfs.controllers.result import Result
    from modelfs.controllers.runtime import Context, Indexes, Key
    from modelfs.controllers.triggers import Affected

IndexFunction = Callable[[Mapping[str, Any]], Mapping[Any, Any]]
"""One object's entries in its kind's index: (namespace, name) -> the object, and secondary keys
whose first element is a tag (`runtime.BY_MODEL`, ...)."""
Triggers = Callable[["Indexes", Mapping[str, Any]], "Affected"]
"""The keys a watch event of an object affects, per kind."""
OwnWrite = Callable[["Indexes", Mapping[str, Any], bool], "Affected"]
"""The keys modelfs's own write of an object affects (`waited`: a reconcile waited for it)."""
Reconcile = Callable[["Context", "Key", dict[str, Any]], Awaitable["Result"]]
"""Reconciles one object that exists, parses and is not in a namespace being deleted."""


def nobody(indexes: Indexes, body: Mapping[str, Any], waited: bool) -> Affected:
    """Nothing reads what modelfs wrote on this object."""
    from modelfs.controllers.triggers import Affected

    return Affected()


@dataclass(frozen=True)
class Watched:
    """A kind the operator lists, watches and indexes."""

    plural: str
    group: str
    version: str
    index: IndexFunction
    triggers: Triggers
    views: Mapping[str, str | None] = field(default_factory=dict)
    """The views of its index that `Indexes` offers: view name -> tag (None: by name)."""
    labels: Mapping[str, str] | None = None
    """Only objects with these labels reach its event handler (all are indexed)."""
    own_write: OwnWrite = nobody
    reads: Callable[[Mapping[str, Any]], tuple[Any, ...]] | None = None
    """What the reconcilers read of an object: an event that changes none of it enqueues
    nothing (None: every event counts)."""

    @property
    def index_id(self) -> str:
        """The kopf index's id: the keyword its handlers are given it under."""
        return f"{self.plural}_index"


@dataclass(frozen=True)
class Descriptor(Watched):
    """A kind modelfs reconciles."""

    kind: str = ""
    parsed: type[Any] = object
    """The api/v1 type its objects parse as."""
    reconcile: Reconcile | None = None
    workers: int = 1
    """Keys reconciled at once: one worker per key at a time, so these bound the parallelism."""
    coalesce: float = 0.0
    """Seconds a watch event's key waits before it is reconciled, so that many events at once
    (fan-in) are reconciled once."""
    phase: bool = False
    """Its status has a phase (FAILED when a reconcile fails for good)."""
    finalizes: bool = False
    """It may carry a finalizer of modelfs's: reconciled on deletion even in a namespace being
    deleted."""
    on_gone: Callable[[Key], None] | None = None
    """Forget what is kept about an object that is gone (metrics), besides the runtime's."""
