"""A pydantic model of BaizeAI's Dataset (dataset.baizeai.io/v1alpha1); its behaviour:
docs/dataset-controller.md."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Annotated, Any, Literal

from pydantic import Field

from modelfs.api.v1 import ApiModel, ObjectMeta

DATASET_GROUP = "dataset.baizeai.io"
DATASET_VERSION = "v1alpha1"
DATASET_API_VERSION = f"{DATASET_GROUP}/{DATASET_VERSION}"
DATASET_PLURAL = "datasets"


class DatasetType(StrEnum):
    GIT = "GIT"
    S3 = "S3"
    HTTP = "HTTP"
    PVC = "PVC"
    NFS = "NFS"
    CONDA = "CONDA"
    REFERENCE = "REFERENCE"
    HUGGING_FACE = "HUGGING_FACE"
    MODEL_SCOPE = "MODEL_SCOPE"
    DATABASE = "DATABASE"
    HADOOP = "HADOOP"
    MANUAL = "MANUAL"


class DatasetPhase(StrEnum):
    PENDING = "PENDING"
    PROCESSING = "PROCESSING"
    READY = "READY"
    FAILED = "FAILED"


class DatasetSource(ApiModel):
    type: DatasetType
    uri: str
    options: dict[str, str] = Field(default_factory=dict)


class VolumeClaimRef(ApiModel):
    name: str
    sub_path: str | None = None


class MountOptions(ApiModel):
    path: str | None = None
    mode: str | None = None
    uid: int | None = None
    gid: int | None = None


@dataclass(frozen=True)
class NotManaged:
    """Marks a DatasetSpec field that modelfs never sets, with the reason: apply does not compare
    it and drift repair does not remove it, so whoever set it keeps it."""

    why: str


class DatasetSpec(ApiModel):
    """The Dataset spec, field for field the Go DatasetSpec: the one list of its fields.

    A field is managed by modelfs unless marked NotManaged: resolution sets it (or leaves it
    unset), `needs_apply` compares it, `drift_patch` removes it when modelfs leaves it unset but
    the stored Dataset has it, and the fake controller's `go_spec` carries it (apply.py derives
    those key lists from here)."""

    source: DatasetSource
    secret_ref: str | None = None
    share: bool | None = None
    share_to_namespace_selector: dict[str, Any] | None = None
    """A metav1.LabelSelector, kept as given (no empty fields added)."""
    data_sync_round: int = 1
    volume_claim_template: dict[str, Any] | None = None
    volume_claim_ref: Annotated[
        VolumeClaimRef | None,
        NotManaged("modelfs describes the claim by volumeClaimTemplate, never by reference"),
    ] = None
    mount_options: Annotated[
        MountOptions | None,
        NotManaged(
            "the API server fills in its defaults once the controller writes `mountOptions: {}`;"
            " compared, every Dataset would look changed"
        ),
    ] = None
    resources: Annotated[
        dict[str, Any] | None,
        NotManaged("the loader Job's resources (not in v0.1.6): the Dataset operator's defaults"),
    ] = None


class DatasetCondition(ApiModel):
    """metav1.Condition as the Dataset operator writes it: reason `<Type>Ready` even when False."""

    type: str
    status: str
    reason: str = ""
    message: str = ""
    last_transition_time: str | None = None


class SyncRoundStatus(ApiModel):
    round: int
    job_name: str | None = None
    start_time: str | None = None
    end_time: str | None = None
    succeed: bool | None = None


class DatasetStatus(ApiModel):
    phase: DatasetPhase = DatasetPhase.PENDING
    conditions: list[DatasetCondition] = Field(default_factory=list)
    in_processing: bool | None = None
    in_processing_round: int | None = None
    last_succeed_round: int | None = None
    sync_round_statuses: list[SyncRoundStatus] = Field(default_factory=list)
    pvc_name: str | None = None
    read_only: bool | None = None
    last_sync_time: str | None = None


class Dataset(ApiModel):
    api_version: Literal["dataset.baizeai.io/v1alpha1"] = "dataset.baizeai.io/v1alpha1"
    kind: Literal["Dataset"] = "Dataset"
    metadata: ObjectMeta = Field(default_factory=ObjectMeta)
    spec: DatasetSpec
    status: DatasetStatus | None = None

    def to_manifest(self) -> dict[str, Any]:
        """The object to apply: no status, and metadata limited to what modelfs owns."""
        body = self.to_dict()
        body.pop("status", None)
        if not body["spec"]["source"].get("options"):
            body["spec"]["source"].pop("options", None)
        meta = body["metadata"]
        for key in ("labels", "annotations", "ownerReferences"):
            if not meta.get(key):
                meta.pop(key, None)
        return body


def pruned(value: Any) -> Any:
    """`value` without None and empty maps or lists, at any depth: `{}` and absent mean the same
    to the Dataset operator, whose finalizer Update writes empty shells into the spec
    (docs/dataset-controller.md#finalizer); compared raw, they look like a change nobody made."""
    if isinstance(value, dict):
        kept = {k: pruned(v) for k, v in value.items()}
        return {k: v for k, v in kept.items() if v is not None and v != {} and v != []}
    if isinstance(value, list):
        return [pruned(v) for v in value]
    return value
