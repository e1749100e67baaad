"""Types shared by more than one kind: source types, phases, label selectors, storage."""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated, Any

from pydantic import ConfigDict, Field, JsonValue

from modelfs.api.v1.meta import MAX_MAP_ENTRIES, MAX_NAME_LENGTH, MAX_VALUE_LENGTH, ApiModel, cel
from modelfs.api.v1.rules import (
    DURATION_PATTERN,
    MAX_LABEL,
    QUANTITY_PATTERN,
    label_key_rules,
    label_rules,
    label_value_rules,
    match_labels_rules,
    option_value_rules,
    requirement_rules,
    size_rules,
    subdomain_rules,
)

# RFC 1123 label: what version names must be, since they become part of Dataset names.
VERSION_NAME_PATTERN = r"^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$"
MAX_VERSION_LENGTH = 63
# An option key the Dataset loader accepts (`\w+`), and a Kubernetes quantity for sizes.
OPTION_KEY_PATTERN = r"^[A-Za-z0-9_]+$"


VERSION_NAME_MESSAGE = (
    "must be a version name: lowercase letters, digits, '-' and '.', starting and ending with a "
    f"letter or digit, at most {MAX_VERSION_LENGTH} characters (as Model.spec.versionConfigs keys)"
)


def version_name_rule(field: str) -> JsonValue:
    """CEL on a field that names a version: it can only name a versionConfigs key."""
    return cel(f"self.matches('{VERSION_NAME_PATTERN}')", f"{field} {VERSION_NAME_MESSAGE}")


class SourceType(StrEnum):
    HUGGING_FACE = "HUGGING_FACE"
    MODEL_SCOPE = "MODEL_SCOPE"
    S3 = "S3"
    HTTP = "HTTP"
    GIT = "GIT"
    PVC = "PVC"
    NFS = "NFS"
    CONDA = "CONDA"
    REFERENCE = "REFERENCE"


class Phase(StrEnum):
    """The Dataset operator's words for where a download stands."""

    PENDING = "PENDING"
    PROCESSING = "PROCESSING"
    READY = "READY"
    FAILED = "FAILED"


def string_map_rules(what: str) -> list[JsonValue]:
    """CEL for a map that becomes Dataset loader options: `\\w+` keys, no whitespace in values.

    The loader passes each option as one argument without shell parsing, so whitespace in a value
    reaches it wrapped in literal quotes and breaks it.
    """
    return [
        cel(
            f"self.all(k, k.matches('{OPTION_KEY_PATTERN}'))",
            f"{what} keys may contain only letters, digits and '_' (the Dataset loader's \\w+)",
        ),
        cel(
            "self.all(k, !self[k].matches('\\\\s'))",
            f"{what} values must not contain whitespace: the Dataset loader passes each value as "
            "one unparsed argument, so whitespace breaks it",
        ),
    ]


# An option value: bounded, and refused when the loader cannot use it (api/v1/rules.py).
SourceConfigValue = Annotated[
    str,
    Field(
        max_length=MAX_VALUE_LENGTH,
        json_schema_extra={"x-kubernetes-validations": option_value_rules("config")},
    ),
]
# Half as long as a source's: a Model holds up to 64 versions, and the CEL rules over every value
# of every version must stay within the API server's cost budget.
MAX_REPO_CONFIG_VALUE_LENGTH = MAX_VALUE_LENGTH // 2
RepoConfigValue = Annotated[
    str,
    Field(
        max_length=MAX_REPO_CONFIG_VALUE_LENGTH,
        json_schema_extra={"x-kubernetes-validations": option_value_rules("repoConfig")},
    ),
]


def option_map(description: str, what: str) -> Any:
    return Field(
        default_factory=dict,
        max_length=MAX_MAP_ENTRIES,
        description=description,
        json_schema_extra={"x-kubernetes-validations": string_map_rules(what)},
    )


class LabelSelectorOperator(StrEnum):
    IN = "In"
    NOT_IN = "NotIn"
    EXISTS = "Exists"
    DOES_NOT_EXIST = "DoesNotExist"


# A label value: at most 63 characters (the schema's maxLength), the charset checked by CEL.
LabelValue = Annotated[
    str,
    Field(
        max_length=MAX_LABEL,
        json_schema_extra={"x-kubernetes-validations": label_value_rules()},
    ),
]


class LabelSelectorRequirement(ApiModel):
    """A label key, an operator and values, as in metav1.LabelSelectorRequirement."""

    model_config = ConfigDict(
        **ApiModel.model_config,
        json_schema_extra={"x-kubernetes-validations": requirement_rules()},
    )

    key: str = Field(
        max_length=MAX_NAME_LENGTH + 64,
        description="The label key the rule applies to: an optional DNS subdomain prefix and "
        "'/', then a name of at most 63 characters.",
        json_schema_extra={"x-kubernetes-validations": label_key_rules()},
    )
    operator: LabelSelectorOperator = Field(
        description="How the key relates to the values: In, NotIn, Exists or DoesNotExist."
    )
    values: list[LabelValue] = Field(
        default_factory=list,
        max_length=MAX_MAP_ENTRIES,
        description="Values for In and NotIn (non-empty); must be empty for Exists and "
        "DoesNotExist.",
    )


class LabelSelector(ApiModel):
    """A Kubernetes label selector. The requirements are ANDed; an empty selector matches all."""

    model_config = ConfigDict(
        **ApiModel.model_config, json_schema_extra={"x-kubernetes-map-type": "atomic"}
    )

    match_labels: dict[str, LabelValue] = Field(
        default_factory=dict,
        max_length=MAX_MAP_ENTRIES,
        description="Labels that must all be present with exactly these values.",
        json_schema_extra={"x-kubernetes-validations": match_labels_rules()},
    )
    match_expressions: list[LabelSelectorRequirement] = Field(
        default_factory=list,
        max_length=MAX_MAP_ENTRIES,
        description="Requirements on labels that must all hold.",
    )


class AccessMode(StrEnum):
    READ_WRITE_ONCE = "ReadWriteOnce"
    READ_ONLY_MANY = "ReadOnlyMany"
    READ_WRITE_MANY = "ReadWriteMany"
    READ_WRITE_ONCE_POD = "ReadWriteOncePod"


class Storage(ApiModel):
    """Where the downloaded weights are stored: the Dataset's volumeClaimTemplate."""

    storage_class_name: str | None = Field(
        default=None,
        max_length=MAX_NAME_LENGTH,
        description="StorageClass of the PVC (a DNS subdomain name). Unset: the cluster's "
        "default StorageClass.",
        json_schema_extra={"x-kubernetes-validations": subdomain_rules("storageClassName")},
    )
    size: str | None = Field(
        default=None,
        max_length=64,
        pattern=QUANTITY_PATTERN,
        description="Requested capacity, a Kubernetes quantity such as 200Gi, greater than 0 and "
        "at most 1Pi. Unset: 100Ti, the Dataset operator's default.",
        json_schema_extra={"x-kubernetes-validations": size_rules("size")},
    )
    access_modes: list[AccessMode] = Field(
        default_factory=list,
        max_length=4,
        description="Access modes of the PVC. Unset: ReadWriteMany, the Dataset operator's "
        "default, so many pods can read the weights.",
    )


class ObjectReference(ApiModel):
    """A namespaced object by namespace and name."""

    namespace: str = Field(
        max_length=63,
        description="Namespace of the object (a DNS label).",
        json_schema_extra={"x-kubernetes-validations": label_rules("namespace")},
    )
    name: str = Field(
        max_length=MAX_NAME_LENGTH,
        description="Name of the object (a DNS subdomain name).",
        json_schema_extra={"x-kubernetes-validations": subdomain_rules("name")},
    )


__all__ = [
    "DURATION_PATTERN",
    "MAX_VALUE_LENGTH",
    "MAX_VERSION_LENGTH",
    "VERSION_NAME_MESSAGE",
    "VERSION_NAME_PATTERN",
    "AccessMode",
    "LabelSelector",
    "LabelSelectorOperator",
    "LabelSelectorRequirement",
    "ObjectReference",
    "Phase",
    "RepoConfigValue",
    "SourceConfigValue",
    "SourceType",
    "Storage",
    "option_map",
    "version_name_rule",
]
