"""The Dataset resource of BaizeAI/dataset: its model, the pure resolution of a ModelSync into one,
and the client that applies it. What modelfs relies on about its controller:
docs/dataset-controller.md."""

from modelfs.pkg.dataset.errors import Reason, ResolutionError
from modelfs.pkg.dataset.naming import (
    MAX_DATASET_NAME_LENGTH,
    dataset_name,
    dns_label,
    label_value,
    reference_dataset_name,
)
from modelfs.pkg.dataset.ownership import adoptable, controller_owner, ownership_conflict
from modelfs.pkg.dataset.resolve import (
    MANAGED_BY,
    MANAGED_BY_LABEL,
    MODEL_LABEL,
    VERSION_LABEL,
    Resolution,
    parse,
    resolve,
    resolve_bodies,
    source_config_errors,
    version_errors,
)
from modelfs.pkg.dataset.sources import (
    RULES,
    check_value,
    describe_secret_keys,
    missing_secret_keys,
    secret_key_sets,
)
from modelfs.pkg.dataset.types import (
    DATASET_API_VERSION,
    DATASET_GROUP,
    DATASET_PLURAL,
    DATASET_VERSION,
    Dataset,
    DatasetPhase,
    DatasetSource,
    DatasetSpec,
    DatasetStatus,
    DatasetType,
    pruned,
)

__all__ = [
    "DATASET_API_VERSION",
    "DATASET_GROUP",
    "DATASET_PLURAL",
    "DATASET_VERSION",
    "MANAGED_BY",
    "MANAGED_BY_LABEL",
    "MAX_DATASET_NAME_LENGTH",
    "MODEL_LABEL",
    "RULES",
    "VERSION_LABEL",
    "Dataset",
    "DatasetPhase",
    "DatasetSource",
    "DatasetSpec",
    "DatasetStatus",
    "DatasetType",
    "Reason",
    "Resolution",
    "ResolutionError",
    "adoptable",
    "check_value",
    "controller_owner",
    "dataset_name",
    "describe_secret_keys",
    "dns_label",
    "label_value",
    "missing_secret_keys",
    "ownership_conflict",
    "parse",
    "pruned",
    "reference_dataset_name",
    "resolve",
    "resolve_bodies",
    "secret_key_sets",
    "source_config_errors",
    "version_errors",
]
