"""modelfs API, group model.samzong.dev, version v1: the single source of the CRD YAML."""

from modelfs.api.v1.common import (
    AccessMode,
    LabelSelector,
    LabelSelectorOperator,
    LabelSelectorRequirement,
    ObjectReference,
    Phase,
    SourceType,
    Storage,
)
from modelfs.api.v1.conditions import (
    Condition,
    ConditionStatus,
    find_condition,
    is_true,
    set_condition,
)
from modelfs.api.v1.meta import API_VERSION, CATEGORY, GROUP, VERSION, ApiModel, ObjectMeta
from modelfs.api.v1.model import (
    Model,
    ModelShare,
    ModelSpec,
    ModelStatus,
    VersionConfig,
    VersionStatus,
)
from modelfs.api.v1.modelreference import (
    ModelReference,
    ModelReferenceSpec,
    ModelReferenceStatus,
    ReferencedDataset,
)
from modelfs.api.v1.modelsource import (
    CatalogPolicy,
    ModelSource,
    ModelSourceSpec,
    ModelSourceStatus,
)
from modelfs.api.v1.modelsync import (
    CatalogStatus,
    DeletionPolicy,
    ModelSync,
    ModelSyncSpec,
    ModelSyncStatus,
    Retry,
    Schedule,
    SyncedSource,
)

KINDS: tuple[type[ModelSource] | type[Model] | type[ModelSync] | type[ModelReference], ...] = (
    ModelSource,
    Model,
    ModelSync,
    ModelReference,
)

__all__ = [
    "API_VERSION",
    "CATEGORY",
    "GROUP",
    "KINDS",
    "VERSION",
    "AccessMode",
    "ApiModel",
    "CatalogPolicy",
    "CatalogStatus",
    "Condition",
    "ConditionStatus",
    "DeletionPolicy",
    "LabelSelector",
    "LabelSelectorOperator",
    "LabelSelectorRequirement",
    "Model",
    "ModelReference",
    "ModelReferenceSpec",
    "ModelReferenceStatus",
    "ModelShare",
    "ModelSource",
    "ModelSourceSpec",
    "ModelSourceStatus",
    "ModelSpec",
    "ModelStatus",
    "ModelSync",
    "ModelSyncSpec",
    "ModelSyncStatus",
    "ObjectMeta",
    "ObjectReference",
    "Phase",
    "ReferencedDataset",
    "Retry",
    "Schedule",
    "SourceType",
    "Storage",
    "SyncedSource",
    "VersionConfig",
    "VersionStatus",
    "find_condition",
    "is_true",
    "set_condition",
]
