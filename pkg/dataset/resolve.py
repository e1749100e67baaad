"""Pure resolution: ModelSource + Model + ModelSync -> the Dataset to apply, or a ResolutionError.

No I/O here. The same inputs always give the same Dataset, so the operator can compare what it
wants with what exists and write only on change.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from pydantic import ValidationError

from modelfs.api.v1 import Model, ModelReference, ModelSource, ModelSync, SourceType, Storage
from modelfs.api.v1.rules import (
    BACKOFF_MAX,
    BACKOFF_MIN,
    INTERVAL_MAX,
    INTERVAL_MIN,
    OPTION_CONTROL,
    check_duration,
    check_size,
    check_subdomain,
    has_refused_character,
)
from modelfs.pkg.dataset.errors import Reason, ResolutionError
from modelfs.pkg.dataset.naming import dataset_name, label_value
from modelfs.pkg.dataset.sources import RULES, RepoError, check_value
from modelfs.pkg.dataset.types import Dataset, DatasetSource, DatasetType
from modelfs.pkg.labels import SelectorError, validate_selector

MANAGED_BY_LABEL = "app.kubernetes.io/managed-by"
MANAGED_BY = "modelfs"
MODEL_LABEL = "model.samzong.dev/model"
VERSION_LABEL = "model.samzong.dev/version"
# The Dataset operator's own claim defaults (docs/dataset-controller.md#pvc).
DEFAULT_ACCESS_MODES = ("ReadWriteMany",)
DEFAULT_SIZE = "100Ti"


@dataclass(frozen=True)
class ConfigValue:
    """A merged config value and the field it came from (for error messages)."""

    value: str
    kind: str
    field: str


@dataclass(frozen=True)
class Resolution:
    """The Dataset to apply, and what the user should know about it."""

    dataset: Dataset
    notes: tuple[str, ...] = field(default=())

    @property
    def name(self) -> str:
        return self.dataset.metadata.name

    @property
    def source_type(self) -> str:
        return str(self.dataset.spec.source.type)

    @property
    def uri(self) -> str:
        return self.dataset.spec.source.uri


def version_field(version: str) -> str:
    return f"spec.versionConfigs[{version}]"


def source_config_errors(source: ModelSource) -> list[ResolutionError]:
    """Every problem with a ModelSource's config on its own (no Model needed)."""
    source_type = SourceType(source.spec.type)
    errors = (
        []
        if source.spec.secret_ref is None
        else name_errors("ModelSource", "spec.secretRef", source.spec.secret_ref)
    )
    errors += [
        ResolutionError("ModelSource", f"spec.config.{key}", problem, Reason.INVALID_CONFIG)
        for key, value in sorted(source.spec.config.items())
        if (problem := check_value(source_type, key, value)) is not None
    ]
    if source.spec.secret_ref and not RULES[source_type].secret_key_sets:
        errors.append(
            ResolutionError(
                "ModelSource",
                "spec.secretRef",
                f"{source_type} sources read no Secret; remove secretRef",
                Reason.SECRET_NOT_USED,
            )
        )
    return errors


def name_errors(kind: str, path: str, name: str) -> list[ResolutionError]:
    """A field that names an object must be a DNS subdomain (as the CRD's CEL checks)."""
    problem = check_subdomain(name, path.rsplit(".", 1)[-1])
    return [] if problem is None else [ResolutionError(kind, path, problem, Reason.INVALID_SPEC)]


def merged_config(source: ModelSource, model: Model, version: str) -> dict[str, ConfigValue]:
    """Source config overridden key by key by the version's repoConfig, each value checked."""
    source_type = SourceType(source.spec.type)
    errors = source_config_errors(source)
    if errors:
        raise errors[0]
    merged = {
        key: ConfigValue(value, "ModelSource", f"spec.config.{key}")
        for key, value in source.spec.config.items()
    }
    overrides = model.spec.version_configs[version].repo_config
    for key, value in sorted(overrides.items()):
        where = f"{version_field(version)}.repoConfig.{key}"
        problem = check_value(source_type, key, value)
        if problem is not None:
            raise ResolutionError("Model", where, problem, Reason.INVALID_CONFIG)
        merged[key] = ConfigValue(value, "Model", where)
    return merged


def version_errors(source: ModelSource, model: Model, version: str) -> list[ResolutionError]:
    """Problems with one version of a Model against its source: config, repo and storage; with
    the first version (so that a Model's status names it once), the Model's own fields."""
    if version == min(model.spec.version_configs):
        errors = model_errors(model)
        if errors:
            return errors[:1]
    try:
        config = merged_config(source, model, version)
        build_source(source, model, version, config)
        volume_claim_template(model, version)
    except ResolutionError as error:
        return [error]
    return []


def model_errors(model: Model) -> list[ResolutionError]:
    """Problems with a Model's fields that are not about one version: sourceRef and share."""
    errors = name_errors("Model", "spec.sourceRef", model.spec.source_ref)
    try:
        share_settings(model)
    except ResolutionError as error:
        errors.append(error)
    return errors


def sync_errors(sync: ModelSync) -> list[ResolutionError]:
    """Problems with a ModelSync's own fields, checked as the CRD's CEL checks them."""
    errors = name_errors("ModelSync", "spec.modelRef", sync.spec.model_ref)
    durations = [("spec.retry.backoff", sync.spec.retry.backoff, BACKOFF_MIN, BACKOFF_MAX)]
    if sync.spec.schedule is not None:
        interval = sync.spec.schedule.interval
        durations.append(("spec.schedule.interval", interval, INTERVAL_MIN, INTERVAL_MAX))
    for path, value, low, high in durations:
        problem = check_duration(value, path.rsplit(".", 1)[-1], low, high)
        if problem is not None:
            errors.append(ResolutionError("ModelSync", path, problem, Reason.INVALID_SPEC))
    return errors


def build_source(
    source: ModelSource, model: Model, version: str, config: Mapping[str, ConfigValue]
) -> DatasetSource:
    source_type = SourceType(source.spec.type)
    rules = RULES[source_type]
    values = {key: item.value for key, item in config.items()}
    repo = model.spec.version_configs[version].repo
    if has_refused_character(repo):
        raise ResolutionError(
            "Model", f"{version_field(version)}.repo", OPTION_CONTROL, Reason.INVALID_REPO
        )
    try:
        uri = rules.build_uri(repo, values)
    except RepoError as error:
        if error.key:
            where = config.get(error.key)
            kind, path = (
                (where.kind, where.field) if where else ("ModelSource", f"spec.config.{error.key}")
            )
            raise ResolutionError(kind, path, str(error), error.reason) from None
        raise ResolutionError(
            "Model",
            f"{version_field(version)}.repo",
            f"{error} ({source_type} repos look like {rules.repo_form})",
            error.reason,
        ) from None
    options = {key: value for key, value in values.items() if key in rules.options}
    return DatasetSource(type=DatasetType(source_type), uri=uri, options=options)


def volume_claim_template(model: Model, version: str) -> dict[str, Any] | None:
    """The Dataset's PVC template: version storage over model storage, field by field."""
    base = model.spec.storage or Storage()
    override = model.spec.version_configs[version].storage or Storage()
    if model.spec.storage is None and model.spec.version_configs[version].storage is None:
        return None
    for where, storage in (("spec", base), (version_field(version), override)):
        problems = [
            (f"{where}.storage.size", check_size(storage.size, "size") if storage.size else None),
            (
                f"{where}.storage.storageClassName",
                check_subdomain(storage.storage_class_name, "storageClassName")
                if storage.storage_class_name
                else None,
            ),
        ]
        for path, problem in problems:
            if problem is not None:
                raise ResolutionError("Model", path, problem, Reason.INVALID_STORAGE)
    size = override.size or base.size or DEFAULT_SIZE
    modes = list(override.access_modes or base.access_modes or DEFAULT_ACCESS_MODES)
    spec: dict[str, Any] = {"accessModes": modes, "resources": {"requests": {"storage": size}}}
    class_name = override.storage_class_name or base.storage_class_name
    if class_name:
        spec["storageClassName"] = class_name
    return {"spec": spec}


def share_settings(model: Model) -> dict[str, Any]:
    """The Dataset's share fields: exactly the Model's opt-in, nothing wider; none without it.

    The Dataset operator lets REFERENCE Datasets in namespaces matching the selector read the
    PVC, so the selector is the Model's own; an empty one is refused (docs/decisions.md).
    """
    if model.spec.share is None:
        return {}
    selector = model.spec.share.namespace_selector.to_dict()
    try:
        validate_selector(selector, "spec.share.namespaceSelector", allow_empty=False)
    except SelectorError as error:
        raise ResolutionError(
            "Model", error.field, str(error).split(": ", 1)[1], Reason.INVALID_SPEC
        ) from None
    return {"share": True, "shareToNamespaceSelector": compact_selector(selector)}


def compact_selector(selector: Mapping[str, Any]) -> dict[str, Any]:
    """The selector without empty fields, as a user would write it."""
    compact: dict[str, Any] = {}
    if selector.get("matchLabels"):
        compact["matchLabels"] = dict(selector["matchLabels"])
    if selector.get("matchExpressions"):
        compact["matchExpressions"] = [
            {k: v for k, v in requirement.items() if v or k != "values"}
            for requirement in selector["matchExpressions"]
        ]
    return compact


def notes_for(source_type: SourceType, config: Mapping[str, ConfigValue]) -> tuple[str, ...]:
    revision = config.get("revision")
    if revision is None:
        return ()
    return (
        f"revision {revision.value!r} ({revision.kind} {revision.field}) is not pinned: the "
        f"BaizeAI/dataset loader ignores revision for {source_type} and downloads the latest "
        "files of the default branch",
    )


def resolve(
    source: ModelSource, model: Model, sync: ModelSync, *, data_sync_round: int = 1
) -> Resolution:
    """The Dataset that `sync` asks for, or a ResolutionError naming the field at fault."""
    version = sync.spec.version
    if sync.spec.model_ref != model.metadata.name:
        raise ResolutionError(
            "ModelSync",
            "spec.modelRef",
            f"names Model {sync.spec.model_ref!r}, not {model.metadata.name!r}",
            Reason.MODEL_MISMATCH,
        )
    if model.spec.source_ref != source.metadata.name:
        raise ResolutionError(
            "Model",
            "spec.sourceRef",
            f"names ModelSource {model.spec.source_ref!r}, not {source.metadata.name!r}",
            Reason.SOURCE_MISMATCH,
        )
    namespaces = {source.metadata.namespace, model.metadata.namespace, sync.metadata.namespace}
    if len(namespaces) != 1:
        raise ResolutionError(
            "ModelSync",
            "metadata.namespace",
            "the ModelSource, Model and ModelSync must be in one namespace",
            Reason.INVALID_SPEC,
        )
    if version not in model.spec.version_configs:
        available = ", ".join(sorted(model.spec.version_configs)) or "none"
        raise ResolutionError(
            "ModelSync",
            "spec.version",
            f"version {version!r} is not in Model {model.metadata.name!r} versionConfigs "
            f"(available: {available})",
            Reason.VERSION_NOT_FOUND,
        )
    errors = sync_errors(sync) + model_errors(model)
    if errors:
        raise errors[0]
    if data_sync_round < 1:
        raise ResolutionError(
            "ModelSync", "status.datasetRound", "must be at least 1", Reason.INVALID_SPEC
        )
    source_type = SourceType(source.spec.type)
    config = merged_config(source, model, version)
    dataset_source = build_source(source, model, version, config)
    share = share_settings(model)
    labels = {
        MANAGED_BY_LABEL: MANAGED_BY,
        MODEL_LABEL: label_value(model.metadata.name),
        VERSION_LABEL: label_value(version),
    }
    owner_references = []
    if sync.metadata.uid:
        owner_references.append(
            {
                "apiVersion": sync.api_version,
                "kind": sync.kind,
                "name": sync.metadata.name,
                "uid": sync.metadata.uid,
                "controller": True,
                "blockOwnerDeletion": True,
            }
        )
    # extra="forbid": a spec key that is not a DatasetSpec field (a typo, a field never declared)
    # fails here instead of being applied and then never compared nor repaired.
    dataset = Dataset.model_validate(
        {
            "metadata": {
                "name": dataset_name(model.metadata.name, version),
                "namespace": sync.metadata.namespace,
                "labels": labels,
                "ownerReferences": owner_references,
            },
            "spec": {
                "source": dataset_source.to_dict(),
                "secretRef": source.spec.secret_ref,
                "dataSyncRound": data_sync_round,
                "volumeClaimTemplate": volume_claim_template(model, version),
                **share,
            },
        },
        extra="forbid",
    )
    return Resolution(dataset=dataset, notes=notes_for(source_type, config))


# Fields whose next path element is a map key, written `field[key]` as Kubernetes does.
_MAP_FIELDS = {"versionConfigs", "config", "repoConfig", "labels", "annotations", "matchLabels"}


def field_path(loc: tuple[int | str, ...]) -> str:
    path = ""
    for index, part in enumerate(loc):
        after_map = index > 0 and loc[index - 1] in _MAP_FIELDS
        if isinstance(part, int) or after_map:
            path += f"[{part}]"
        else:
            path += f".{part}" if path else str(part)
    return path or "(object)"


def _validation_error(kind: str, error: ValidationError) -> ResolutionError:
    first = error.errors()[0]
    return ResolutionError(kind, field_path(first["loc"]), first["msg"], Reason.INVALID_SPEC)


def parse(
    kind: type[ModelSource] | type[Model] | type[ModelSync] | type[ModelReference],
    body: Mapping[str, Any],
) -> Any:
    """An API object from its JSON body, or a ResolutionError naming the invalid field."""
    try:
        return kind.model_validate(dict(body))
    except ValidationError as error:
        raise _validation_error(kind.kind_name, error) from None


def resolve_bodies(
    source: Mapping[str, Any],
    model: Mapping[str, Any],
    sync: Mapping[str, Any],
    *,
    data_sync_round: int = 1,
) -> Resolution:
    """`resolve` on raw API bodies, as a controller receives them."""
    return resolve(
        parse(ModelSource, source),
        parse(Model, model),
        parse(ModelSync, sync),
        data_sync_round=data_sync_round,
    )


# Re-exported so callers need only this module for spec-level typing.
__all__ = [
    "MANAGED_BY",
    "MANAGED_BY_LABEL",
    "MODEL_LABEL",
    "VERSION_LABEL",
    "ConfigValue",
    "Resolution",
    "ResolutionError",
    "merged_config",
    "model_errors",
    "parse",
    "resolve",
    "resolve_bodies",
    "source_config_errors",
    "sync_errors",
    "version_errors",
    "volume_claim_template",
]
