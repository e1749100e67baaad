"""Every kind the operator knows, by its descriptor (`controllers.descriptor`): the one list to
extend when a kind is added."""

from __future__ import annotations

from modelfs.controllers import model, modelreference, modelsource, modelsync, watched
from modelfs.controllers.descriptor import Descriptor, Watched

RECONCILED: tuple[Descriptor, ...] = (
    modelsource.DESCRIPTOR,
    model.DESCRIPTOR,
    modelsync.DESCRIPTOR,
    modelreference.DESCRIPTOR,
)
"""The kinds modelfs reconciles, in the order a pass over everything enqueues them."""
WATCHED: tuple[Watched, ...] = (*RECONCILED, watched.DATASETS, watched.NAMESPACES)
"""Every kind modelfs lists, watches and indexes."""
