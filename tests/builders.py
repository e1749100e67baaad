"""Small builders of API objects for the tests (no cluster)."""

from __future__ import annotations

from typing import Any

from modelfs.api.v1 import Model, ModelSource, ModelSync

NAMESPACE = "team-a"


def source(
    type_: str,
    config: dict[str, str] | None = None,
    secret_ref: str | None = None,
    name: str = "src",
) -> ModelSource:
    spec: dict[str, Any] = {"type": type_, "config": config or {}}
    if secret_ref:
        spec["secretRef"] = secret_ref
    return ModelSource.model_validate(
        {"metadata": {"name": name, "namespace": NAMESPACE}, "spec": spec}
    )


def model(
    repo: str,
    version: str = "v1",
    repo_config: dict[str, str] | None = None,
    name: str = "mdl",
    source_ref: str = "src",
    **spec: Any,
) -> Model:
    return Model.model_validate(
        {
            "metadata": {"name": name, "namespace": NAMESPACE},
            "spec": {
                "sourceRef": source_ref,
                "versionConfigs": {version: {"repo": repo, "repoConfig": repo_config or {}}},
                **spec,
            },
        }
    )


def sync(
    model_ref: str = "mdl", version: str = "v1", name: str = "sync", uid: str = ""
) -> ModelSync:
    metadata: dict[str, Any] = {"name": name, "namespace": NAMESPACE}
    if uid:
        metadata["uid"] = uid
    return ModelSync.model_validate(
        {"metadata": metadata, "spec": {"modelRef": model_ref, "version": version}}
    )
