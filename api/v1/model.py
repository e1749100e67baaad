"""Model: a model's versions, each a repository in a ModelSource."""

from __future__ import annotations

from typing import Any, ClassVar, Literal

from pydantic import Field

from modelfs.api.v1.common import (
    MAX_VERSION_LENGTH,
    VERSION_NAME_PATTERN,
    LabelSelector,
    Phase,
    RepoConfigValue,
    Storage,
    option_map,
)
from modelfs.api.v1.conditions import Condition
from modelfs.api.v1.meta import (
    AGE_COLUMN,
    MAX_MAP_ENTRIES,
    MAX_NAME_LENGTH,
    MAX_VALUE_LENGTH,
    READY_COLUMNS,
    ApiModel,
    ObjectMeta,
    cel,
)
from modelfs.api.v1.rules import share_selector_rules, subdomain_rules, text_rules


class VersionConfig(ApiModel):
    """One version of the model: its repository and what it overrides of the source's config."""

    repo: str = Field(
        min_length=1,
        max_length=MAX_VALUE_LENGTH,
        description="Where the version lives in the source: 'org/name' on Hugging Face and "
        "ModelScope, 'bucket/dir' on S3, a URL or a path under the source endpoint for HTTP and "
        "GIT, 'pvc-name/path' for PVC, 'host/path' for NFS, an environment name for CONDA, "
        "'namespace/dataset' for REFERENCE. Immutable: a different repo is a new version.",
        json_schema_extra={
            "x-kubernetes-validations": [
                cel("self == oldSelf", "repo is immutable: add a new version for another repo"),
                *text_rules("repo"),
            ]
        },
    )
    repo_config: dict[str, RepoConfigValue] = option_map(
        "Settings for this version that override the source's config key by key (revision, "
        "include, exclude, branch, commit, ...).",
        "repoConfig",
    )
    storage: Storage | None = Field(
        default=None,
        description="Storage for this version; fields set here override spec.storage.",
    )


class ModelShare(ApiModel):
    """Opt-in to let ModelReferences in other namespaces read this model's synced versions."""

    namespace_selector: LabelSelector = Field(
        description="Namespaces whose labels match may reference this model. It must not be "
        "empty: to share with every namespace, write matchExpressions: [{key: "
        "kubernetes.io/metadata.name, operator: Exists}].",
        json_schema_extra={"x-kubernetes-validations": share_selector_rules()},
    )


class ModelSpec(ApiModel):
    """The versions of a model and the source they are downloaded from."""

    source_ref: str = Field(
        min_length=1,
        max_length=MAX_NAME_LENGTH,
        description="Name of the ModelSource (in this namespace) the versions are downloaded from.",
        json_schema_extra={"x-kubernetes-validations": subdomain_rules("sourceRef")},
    )
    version_configs: dict[str, VersionConfig] = Field(
        min_length=1,
        max_length=MAX_MAP_ENTRIES,
        description="The versions, by name: lowercase letters, digits, '-' and '.', starting and "
        "ending with a letter or digit, at most 63 characters.",
        json_schema_extra={
            "x-kubernetes-validations": [
                cel(
                    f"self.all(k, k.size() <= {MAX_VERSION_LENGTH} && "
                    f"k.matches('{VERSION_NAME_PATTERN}'))",
                    "version names must be lowercase letters, digits, '-' and '.', start and end "
                    f"with a letter or digit, and have at most {MAX_VERSION_LENGTH} characters",
                )
            ]
        },
    )
    storage: Storage | None = Field(
        default=None,
        description="Storage for every version's Dataset PVC. Unset: the Dataset operator's "
        "default (ReadWriteMany, 100Ti, default StorageClass).",
    )
    share: ModelShare | None = Field(
        default=None,
        description="Lets ModelReferences in matching namespaces read synced versions. Unset: "
        "no other namespace may reference this model.",
    )


class VersionStatus(ApiModel):
    """The sync state of one version."""

    name: str = Field(description="The version name.")
    sync: str | None = Field(default=None, description="The ModelSync that syncs this version.")
    phase: Phase | None = Field(default=None, description="Phase of that ModelSync.")
    last_sync_time: str | None = Field(
        default=None,
        description="When the version last finished downloading.",
        json_schema_extra={"format": "date-time"},
    )
    references: list[str] = Field(
        default_factory=list,
        description="The ModelReferences (namespace/name) that read this version.",
    )
    size: str | None = Field(
        default=None,
        max_length=32,
        description="What its download fetches, as its source's catalog said (4.3GiB); '-' "
        "while unknown, so `kubectl get mdl -o wide` lines sizes up with versions.",
    )


class ModelStatus(ApiModel):
    """Whether the model resolves and how far each version is synced."""

    conditions: list[Condition] = Field(
        default_factory=list,
        description="Ready is True when the source resolves and every version is valid for it.",
        json_schema_extra={"x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["type"]},
    )
    observed_generation: int | None = Field(
        default=None, description="The metadata.generation this status describes."
    )
    versions: list[VersionStatus] = Field(
        default_factory=list,
        description="Per version: the ModelSync that syncs it, its phase and last sync time.",
        json_schema_extra={"x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["name"]},
    )


class Model(ApiModel):
    """A model with named versions, each a repository in a ModelSource."""

    kind_name: ClassVar[str] = "Model"
    plural: ClassVar[str] = "models"
    short_names: ClassVar[list[str]] = ["mdl"]
    printer_columns: ClassVar[list[dict[str, Any]]] = [
        {"name": "Source", "type": "string", "jsonPath": ".spec.sourceRef"},
        *READY_COLUMNS,
        {
            "name": "Versions",
            "type": "string",
            "jsonPath": ".status.versions[*].name",
            "priority": 1,
        },
        {"name": "Sizes", "type": "string", "jsonPath": ".status.versions[*].size", "priority": 1},
        AGE_COLUMN,
    ]

    api_version: Literal["model.samzong.dev/v1"] = "model.samzong.dev/v1"
    kind: Literal["Model"] = "Model"
    metadata: ObjectMeta = Field(default_factory=ObjectMeta)
    spec: ModelSpec
    status: ModelStatus = Field(default_factory=ModelStatus)
