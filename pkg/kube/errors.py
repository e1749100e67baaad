"""The modelfs errors of an API request: its HTTP status and the server's message, never a body."""

from __future__ import annotations

import json

import aiohttp
from kubernetes.aio.client.exceptions import ApiException

REQUEST_TIMEOUT = 30.0


class ApiError(RuntimeError):
    """An API call failed; `status` is the HTTP status (0 when there was no response)."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


TRANSIENT_ERRORS: tuple[type[BaseException], ...] = (
    ApiError,
    aiohttp.ClientError,
    TimeoutError,
    ConnectionError,
)
"""What a request to the API server can fail with and succeed later: an API error, or no answer
at all (kube-apiserver restarting: a refused or reset connection, a timeout). Retried with a
warning, never reported as a bug."""


class NotFoundError(ApiError):
    """404: the object (or its namespace) does not exist."""


class ConflictError(ApiError):
    """409: the object changed or another field manager owns the field."""


class InvalidError(ApiError):
    """422: the API server refused the object (schema or CEL rule)."""


def error_for(status: int, reason: str | None, body: bytes | str | None) -> ApiError:
    """The modelfs error for a failed response: its status and the server's message (the
    `message` of its Status body, else the HTTP reason)."""
    try:
        message = str(json.loads(body or "").get("message") or reason)
    except (ValueError, AttributeError):
        message = str(reason or "API error")
    text = f"{status}: {message}"
    if status == 404:
        return NotFoundError(status, text)
    if status == 409:
        return ConflictError(status, text)
    if status == 422:
        return InvalidError(status, text)
    return ApiError(status, text)


def api_error(error: ApiException) -> ApiError:
    """The modelfs error for an exception of the generated client."""
    return error_for(int(error.status or 0), error.reason, error.body)
