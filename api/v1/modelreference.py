"""ModelReference: read-only use, in another namespace, of a version another namespace synced."""

from __future__ import annotations

from typing import Any, ClassVar, Literal

from pydantic import Field

from modelfs.api.v1.common import MAX_VERSION_LENGTH, ObjectReference, Phase, version_name_rule
from modelfs.api.v1.conditions import Condition
from modelfs.api.v1.meta import AGE_COLUMN, ApiModel, ObjectMeta, cel

IMMUTABLE = "self == oldSelf"


class ReferencedDataset(ApiModel):
    """The source Dataset a reference reads."""

    namespace: str = Field(description="Namespace of the source Dataset.")
    dataset: str = Field(description="Name of the source Dataset.")


class ModelReferenceSpec(ApiModel):
    """Which shared Model version to read."""

    model_ref: ObjectReference = Field(
        description="The Model, by namespace and name. It must share with this namespace "
        "(spec.share.namespaceSelector). Immutable.",
        json_schema_extra={"x-kubernetes-validations": [cel(IMMUTABLE, "modelRef is immutable")]},
    )
    version: str = Field(
        min_length=1,
        max_length=MAX_VERSION_LENGTH,
        description="The version to read; a ModelSync in the Model's namespace must sync it. "
        "Immutable.",
        json_schema_extra={
            "x-kubernetes-validations": [
                cel(IMMUTABLE, "version is immutable"),
                version_name_rule("version"),
            ]
        },
    )


class ModelReferenceStatus(ApiModel):
    """Whether the reference is allowed and readable."""

    phase: Phase | None = Field(
        default=None,
        description="The reference Dataset's phase: PENDING while waiting for the source, FAILED "
        "when not allowed.",
    )
    conditions: list[Condition] = Field(
        default_factory=list,
        description="Allowed (the Model shares with this namespace), SourceReady (the source "
        "Dataset is READY) and Ready.",
        json_schema_extra={"x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["type"]},
    )
    observed_generation: int | None = Field(
        default=None, description="The metadata.generation this status describes."
    )
    dataset_name: str | None = Field(
        default=None, description="The REFERENCE Dataset in this namespace."
    )
    pvc_name: str | None = Field(default=None, description="The read-only PVC to mount.")
    read_only: bool | None = Field(
        default=None, description="Always true: a reference is for reading."
    )
    source: ReferencedDataset | None = Field(default=None, description="The Dataset read.")


class ModelReference(ApiModel):
    """A read-only reference to a version of a Model shared by another namespace."""

    kind_name: ClassVar[str] = "ModelReference"
    plural: ClassVar[str] = "modelreferences"
    short_names: ClassVar[list[str]] = ["mref"]
    printer_columns: ClassVar[list[dict[str, Any]]] = [
        {"name": "Source Namespace", "type": "string", "jsonPath": ".spec.modelRef.namespace"},
        {"name": "Model", "type": "string", "jsonPath": ".spec.modelRef.name"},
        {"name": "Version", "type": "string", "jsonPath": ".spec.version"},
        {"name": "Phase", "type": "string", "jsonPath": ".status.phase"},
        {"name": "PVC", "type": "string", "jsonPath": ".status.pvcName"},
        AGE_COLUMN,
    ]

    api_version: Literal["model.samzong.dev/v1"] = "model.samzong.dev/v1"
    kind: Literal["ModelReference"] = "ModelReference"
    metadata: ObjectMeta = Field(default_factory=ObjectMeta)
    spec: ModelReferenceSpec
    status: ModelReferenceStatus = Field(default_factory=ModelReferenceStatus)
