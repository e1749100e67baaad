"""Group, version and the pydantic base every modelfs API type shares."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field, JsonValue
from pydantic.alias_generators import to_camel

GROUP = "model.samzong.dev"
VERSION = "v1"
API_VERSION = f"{GROUP}/{VERSION}"
CATEGORY = "modelfs"

# Strings that reach Kubernetes names, labels or the Dataset loader are bounded so that the CEL
# rules over them stay within the API server's cost budget.
MAX_NAME_LENGTH = 253
MAX_VALUE_LENGTH = 1024
MAX_MAP_ENTRIES = 64


# The printer columns of a kind with a Ready condition, and the Age column every kind ends with.
READY_COLUMNS: tuple[dict[str, str], ...] = (
    {
        "name": "Ready",
        "type": "string",
        "jsonPath": '.status.conditions[?(@.type=="Ready")].status',
    },
    {
        "name": "Reason",
        "type": "string",
        "jsonPath": '.status.conditions[?(@.type=="Ready")].reason',
    },
)
AGE_COLUMN = {"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp"}


class ApiModel(BaseModel):
    """camelCase on the wire, snake_case in Python; unknown fields are kept, not dropped."""

    model_config = ConfigDict(
        alias_generator=to_camel,
        populate_by_name=True,
        extra="allow",
        use_enum_values=True,
    )

    def to_dict(self) -> dict[str, Any]:
        """The object as the API server stores it: camelCase keys, unset optionals left out."""
        return self.model_dump(by_alias=True, exclude_none=True, mode="json")


class ObjectMeta(ApiModel):
    """The part of metav1.ObjectMeta that modelfs reads."""

    name: str = ""
    namespace: str | None = None
    uid: str | None = None
    generation: int | None = None
    resource_version: str | None = None
    creation_timestamp: str | None = None
    labels: dict[str, str] = Field(default_factory=dict)
    annotations: dict[str, str] = Field(default_factory=dict)
    owner_references: list[dict[str, Any]] = Field(default_factory=list)
    # None, not []: a manifest built from it must not send `finalizers: []` (that would claim
    # the field, and clear finalizers others set).
    finalizers: list[str] | None = None
    deletion_timestamp: str | None = None


def cel(rule: str, message: str, **extra: str) -> dict[str, JsonValue]:
    """One `x-kubernetes-validations` entry."""
    return {"rule": rule, "message": message, **extra}
