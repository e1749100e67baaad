"""The catalog's request and answers. Pure data: no I/O, no Kubernetes."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Protocol

from modelfs.pkg.dataset.types import DatasetType


class CatalogPolicy(StrEnum):
    """ModelSource.spec.catalog: what a lookup that cannot be made does to the download."""

    REQUIRED = "Required"
    BEST_EFFORT = "BestEffort"
    DISABLED = "Disabled"


class RefusalReason(StrEnum):
    """The catalog said the download cannot be right: no Dataset, no new round."""

    REPO_NOT_FOUND = "RepoNotFound"
    REVISION_NOT_FOUND = "RevisionNotFound"
    GATED_REPO = "GatedRepo"
    NO_FILES_MATCHED = "NoFilesMatched"
    INSUFFICIENT_STORAGE = "InsufficientStorage"
    SOURCE_OBJECT_NOT_FOUND = "SourceObjectNotFound"
    REF_NOT_FOUND = "RefNotFound"


class UnavailableReason(StrEnum):
    """The catalog could not be asked; under BestEffort the download goes ahead."""

    UNREACHABLE = "CatalogUnreachable"
    TIMEOUT = "CatalogTimeout"
    SERVER_ERROR = "CatalogServerError"
    RATE_LIMITED = "CatalogRateLimited"
    DISABLED = "CatalogDisabled"


@dataclass(frozen=True)
class CatalogRequest:
    """One lookup, built from the resolved Dataset source, so the lookup sees exactly what the
    loader will be given. Hashable: it is the cache key (credentials are not part of it)."""

    type: DatasetType
    uri: str
    options: tuple[tuple[str, str], ...] = ()
    namespace: str = ""
    """For lookups answered by the cluster (PVC)."""

    @classmethod
    def of(
        cls, type_: DatasetType, uri: str, options: Mapping[str, str], namespace: str = ""
    ) -> CatalogRequest:
        return cls(type_, uri, tuple(sorted(options.items())), namespace)

    def option(self, key: str, default: str = "") -> str:
        return dict(self.options).get(key, default)


@dataclass(frozen=True)
class Credentials:
    """Values read from the ModelSource's Secret. Never printed: repr and str hide them."""

    values: Mapping[str, str] = field(default_factory=dict)

    def get(self, key: str) -> str | None:
        return self.values.get(key)

    def __repr__(self) -> str:
        return f"Credentials(keys={sorted(self.values)})"

    __str__ = __repr__


@dataclass(frozen=True)
class CatalogEntry:
    """What the catalog knows about the version, after include/exclude."""

    revision: str | None
    """Commit sha (Hub, ModelScope, Git), ETag (HTTP), or None (S3: the listing is the state)."""
    files: int | None
    bytes: int | None
    fingerprint: str
    """Changes when anything a scheduled round would fetch changes (revision, file list, ETag)."""
    parameters: int | None = None
    architecture: str | None = None
    license: str | None = None
    gated: bool | None = None


@dataclass(frozen=True)
class Refusal:
    reason: RefusalReason
    message: str


@dataclass(frozen=True)
class Unavailable:
    reason: UnavailableReason
    message: str
    retry_after: float | None = None


@dataclass(frozen=True)
class NotApplicable:
    """The type has nothing to look up (NFS, CONDA, REFERENCE): said in the status."""

    message: str


LookupResult = CatalogEntry | Refusal | Unavailable | NotApplicable


class Lookup(Protocol):
    """One source type's lookup. Never raises for a network or server failure: it answers
    `Unavailable`. Returns within the configured timeout."""

    async def __call__(self, request: CatalogRequest, credentials: Credentials) -> LookupResult: ...
