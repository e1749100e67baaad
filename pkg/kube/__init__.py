"""Thin typed calls on the Kubernetes API for modelfs, with API errors mapped to modelfs errors."""

from modelfs.pkg.kube.client import ObjectClient
from modelfs.pkg.kube.errors import (
    TRANSIENT_ERRORS,
    ApiError,
    ConflictError,
    InvalidError,
    NotFoundError,
    api_error,
)

__all__ = [
    "TRANSIENT_ERRORS",
    "ApiError",
    "ConflictError",
    "InvalidError",
    "NotFoundError",
    "ObjectClient",
    "api_error",
]
