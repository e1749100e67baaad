"""ModelSource: where models come from (connection, credentials, defaults)."""

from __future__ import annotations

from enum import StrEnum
from typing import Any, ClassVar, Literal

from pydantic import Field

from modelfs.api.v1.common import SourceConfigValue, SourceType, option_map
from modelfs.api.v1.conditions import Condition
from modelfs.api.v1.meta import (
    AGE_COLUMN,
    MAX_NAME_LENGTH,
    READY_COLUMNS,
    ApiModel,
    ObjectMeta,
)
from modelfs.api.v1.rules import subdomain_rules


class CatalogPolicy(StrEnum):
    """What a catalog lookup that cannot be made does to a download."""

    REQUIRED = "Required"
    BEST_EFFORT = "BestEffort"
    DISABLED = "Disabled"


class ModelSourceSpec(ApiModel):
    """Connection information and defaults shared by every Model that uses this source."""

    type: SourceType = Field(
        description="Kind of source, which fixes the Dataset source type and the config keys "
        "allowed: HUGGING_FACE, MODEL_SCOPE, S3, HTTP, GIT, PVC, NFS, CONDA or REFERENCE."
    )
    config: dict[str, SourceConfigValue] = option_map(
        "Connection settings and defaults for every Model of this source (endpoint, region, "
        "provider, include, exclude, repoType, syncMode, ...). Which keys are allowed depends on "
        "the type; a Model version's repoConfig overrides them key by key.",
        "config",
    )
    secret_ref: str | None = Field(
        default=None,
        max_length=MAX_NAME_LENGTH,
        description="Name of a Secret in this namespace with the credentials the type needs "
        "(token; access-key and secret-key; username and password; ssh-privatekey). Only the "
        "name is passed on: modelfs never copies the values. A DNS subdomain name.",
        json_schema_extra={"x-kubernetes-validations": subdomain_rules("secretRef")},
    )
    catalog: CatalogPolicy = Field(
        default=CatalogPolicy.BEST_EFFORT,
        description="Whether each version is looked up in the source's own catalog (the Hub's "
        "API, an S3 listing, an HTTP HEAD, a Git ref advertisement) before its download: "
        "BestEffort (default) refuses what the catalog says cannot be right and lets the "
        "download go ahead when the catalog cannot be reached (Catalog=Unknown); Required also "
        "waits until the catalog answers; Disabled looks nothing up.",
    )


class ModelSourceStatus(ApiModel):
    """What modelfs found when it checked the source."""

    conditions: list[Condition] = Field(
        default_factory=list,
        description="Ready tells whether Models can use the source; its reason says why not "
        "(InvalidConfig, SecretMissing, SecretKeyMissing).",
        json_schema_extra={"x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["type"]},
    )
    observed_generation: int | None = Field(
        default=None, description="The metadata.generation this status describes."
    )
    models: int | None = Field(
        default=None, ge=0, description="How many Models in this namespace use the source."
    )


class ModelSource(ApiModel):
    """Connection and authentication for a place models are downloaded from, reused by Models."""

    kind_name: ClassVar[str] = "ModelSource"
    plural: ClassVar[str] = "modelsources"
    short_names: ClassVar[list[str]] = ["msrc"]
    printer_columns: ClassVar[list[dict[str, Any]]] = [
        {"name": "Type", "type": "string", "jsonPath": ".spec.type"},
        *READY_COLUMNS,
        {"name": "Models", "type": "integer", "jsonPath": ".status.models"},
        AGE_COLUMN,
    ]

    api_version: Literal["model.samzong.dev/v1"] = "model.samzong.dev/v1"
    kind: Literal["ModelSource"] = "ModelSource"
    metadata: ObjectMeta = Field(default_factory=ObjectMeta)
    spec: ModelSourceSpec
    status: ModelSourceStatus = Field(default_factory=ModelSourceStatus)
