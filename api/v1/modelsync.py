"""ModelSync: download one version of a Model into a Dataset, and keep it downloaded."""

from __future__ import annotations

from enum import StrEnum
from typing import Any, ClassVar, Literal

from pydantic import Field

from modelfs.api.v1.common import (
    DURATION_PATTERN,
    MAX_VERSION_LENGTH,
    Phase,
    SourceType,
    version_name_rule,
)
from modelfs.api.v1.conditions import Condition
from modelfs.api.v1.meta import (
    AGE_COLUMN,
    MAX_NAME_LENGTH,
    MAX_VALUE_LENGTH,
    ApiModel,
    ObjectMeta,
    cel,
)
from modelfs.api.v1.rules import (
    BACKOFF_MAX,
    BACKOFF_MIN,
    INTERVAL_MAX,
    INTERVAL_MIN,
    duration_rules,
    subdomain_rules,
)

IMMUTABLE = "self == oldSelf"


class DeletionPolicy(StrEnum):
    DELETE = "Delete"
    RETAIN = "Retain"


class Schedule(ApiModel):
    """A periodic resync."""

    interval: str = Field(
        max_length=32,
        pattern=DURATION_PATTERN,
        description="Start a new download round when the last success is older than this "
        f"duration (e.g. 24h, 90m). From {INTERVAL_MIN} to {INTERVAL_MAX} (a year).",
        json_schema_extra={
            "x-kubernetes-validations": duration_rules("interval", INTERVAL_MIN, INTERVAL_MAX)
        },
    )


class Retry(ApiModel):
    """How a failed download round is retried (the Dataset operator never retries by itself)."""

    limit: int = Field(
        default=3,
        ge=0,
        le=100,
        description="Failed rounds retried after the last success before giving up. 0: never.",
    )
    backoff: str = Field(
        default="1m",
        max_length=32,
        pattern=DURATION_PATTERN,
        description="Wait before the first retry; each further retry waits twice as long, at "
        f"most 24h. From {BACKOFF_MIN} to {BACKOFF_MAX}.",
        json_schema_extra={
            "x-kubernetes-validations": duration_rules("backoff", BACKOFF_MIN, BACKOFF_MAX)
        },
    )


class ModelSyncSpec(ApiModel):
    """Which version of which Model to download, and when to download it again."""

    model_ref: str = Field(
        min_length=1,
        max_length=MAX_NAME_LENGTH,
        description="Name of the Model (in this namespace). Immutable.",
        json_schema_extra={
            "x-kubernetes-validations": [
                cel(IMMUTABLE, "modelRef is immutable"),
                *subdomain_rules("modelRef"),
            ]
        },
    )
    version: str = Field(
        min_length=1,
        max_length=MAX_VERSION_LENGTH,
        description="The version to download: a key of the Model's versionConfigs. Immutable.",
        json_schema_extra={
            "x-kubernetes-validations": [
                cel(IMMUTABLE, "version is immutable"),
                version_name_rule("version"),
            ]
        },
    )
    sync_round: int = Field(
        default=1,
        ge=1,
        description="Download trigger. Raising it, by any amount, asks for one new download "
        "round; status.observedSyncRound shows the trigger served.",
        json_schema_extra={
            "x-kubernetes-validations": [cel("self >= oldSelf", "syncRound must not decrease")]
        },
    )
    schedule: Schedule | None = Field(
        default=None, description="Download again periodically. Unset: only on request."
    )
    retry: Retry = Field(
        default_factory=Retry,
        description="How failed rounds are retried (default: 3 times, 1m backoff, doubling).",
        # `{}` lets the API server fill in limit and backoff, so `kubectl get -o yaml` shows them.
        json_schema_extra={"default": {}},
    )
    deletion_policy: DeletionPolicy = Field(
        default=DeletionPolicy.DELETE,
        description="What happens to the Dataset (and so its PVC and the weights) when the "
        "ModelSync is deleted: Delete removes it, Retain leaves it without owner.",
    )


class SyncedSource(ApiModel):
    """The Dataset source modelfs resolved."""

    type: SourceType = Field(description="Dataset source type.")
    uri: str = Field(max_length=MAX_VALUE_LENGTH, description="Dataset source URI.")


class CatalogStatus(ApiModel):
    """What the source's own catalog said about the version, looked up before its current
    round started (the last lookup that let a download go ahead)."""

    revision: str | None = Field(
        default=None,
        max_length=MAX_VALUE_LENGTH,
        description="The revision the download fetches: a commit (Hub, ModelScope, Git) or an "
        "ETag (HTTP); unset for S3, whose listing is its state.",
    )
    files: int | None = Field(default=None, ge=0, description="Files the download fetches.")
    bytes: int | None = Field(default=None, ge=0, description="Their total size in bytes.")
    size: str | None = Field(
        default=None, max_length=32, description="The same total, for people (4.3GiB)."
    )
    parameters: int | None = Field(
        default=None, ge=0, description="Parameters of the model, where the catalog says."
    )
    architecture: str | None = Field(
        default=None, max_length=MAX_VALUE_LENGTH, description="Its architecture, if known."
    )
    license: str | None = Field(
        default=None, max_length=MAX_VALUE_LENGTH, description="Its license, if known."
    )
    gated: bool | None = Field(
        default=None, description="Whether the repository asks for an accepted agreement."
    )
    fingerprint: str | None = Field(
        default=None,
        max_length=MAX_VALUE_LENGTH,
        description="Changes when anything a round would fetch changes (revision, file list, "
        "ETag): a schedule tick starts a round only when it differs from this one.",
    )
    looked_up_at: str | None = Field(
        default=None,
        description="When the catalog was last asked (a skipped schedule tick included).",
        json_schema_extra={"format": "date-time"},
    )


class ModelSyncStatus(ApiModel):
    """The Dataset's state as modelfs sees it, and what modelfs did about it."""

    phase: Phase | None = Field(
        default=None,
        description="PENDING, PROCESSING, READY or FAILED: the Dataset's phase, and FAILED when "
        "the spec cannot be resolved. PENDING from creation: the API server fills it in until "
        "modelfs writes the first status.",
        # The API server's default, not the model's: a new ModelSync shows PENDING without a
        # write, so its first status can wait for the Dataset to start (`first_status_wait`).
        json_schema_extra={"default": "PENDING"},
    )
    conditions: list[Condition] = Field(
        default_factory=list,
        description="modelfs's own (Resolved, Catalog, Ready, Rounds) and the Dataset's, "
        "prefixed 'Dataset' (DatasetJob, DatasetPVC, ...).",
        json_schema_extra={"x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["type"]},
    )
    observed_generation: int | None = Field(
        default=None, description="The metadata.generation this status describes."
    )
    last_sync_time: str | None = Field(
        default=None,
        description="When the last download round succeeded.",
        json_schema_extra={"format": "date-time"},
    )
    dataset_name: str | None = Field(default=None, description="The Dataset this ModelSync owns.")
    pvc_name: str | None = Field(default=None, description="The PVC that holds the weights.")
    dataset_round: int | None = Field(
        default=None, description="The Dataset's current dataSyncRound."
    )
    observed_sync_round: int | None = Field(
        default=None, description="The spec.syncRound trigger served so far."
    )
    attempts: int | None = Field(
        default=None, ge=0, description="Failed rounds retried since the last success."
    )
    last_failure_time: str | None = Field(
        default=None,
        description="When modelfs saw the last download round fail. The Dataset operator records "
        "no end time for a failed round, so the retry backoff counts from this time.",
        json_schema_extra={"format": "date-time"},
    )
    source: SyncedSource | None = Field(
        default=None, description="The Dataset source (type and URI) modelfs resolved."
    )
    catalog: CatalogStatus | None = Field(
        default=None,
        description="What the source's catalog said about the version before its current round "
        "(revision, files, size, ...). The Catalog condition says how the last lookup went.",
    )


class ModelSync(ApiModel):
    """Downloads one version of a Model through a BaizeAI Dataset and reports its state."""

    kind_name: ClassVar[str] = "ModelSync"
    plural: ClassVar[str] = "modelsyncs"
    short_names: ClassVar[list[str]] = ["msync"]
    printer_columns: ClassVar[list[dict[str, Any]]] = [
        {"name": "Model", "type": "string", "jsonPath": ".spec.modelRef"},
        {"name": "Version", "type": "string", "jsonPath": ".spec.version"},
        {"name": "Phase", "type": "string", "jsonPath": ".status.phase"},
        {"name": "Size", "type": "string", "jsonPath": ".status.catalog.size"},
        {"name": "Revision", "type": "string", "jsonPath": ".status.catalog.revision"},
        {"name": "Dataset", "type": "string", "jsonPath": ".status.datasetName"},
        {"name": "Last Sync", "type": "date", "jsonPath": ".status.lastSyncTime"},
        AGE_COLUMN,
    ]

    api_version: Literal["model.samzong.dev/v1"] = "model.samzong.dev/v1"
    kind: Literal["ModelSync"] = "ModelSync"
    metadata: ObjectMeta = Field(default_factory=ObjectMeta)
    spec: ModelSyncSpec
    status: ModelSyncStatus = Field(
        default_factory=ModelSyncStatus, json_schema_extra={"default": {}}
    )
