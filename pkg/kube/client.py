"""Calls on modelfs's own objects and on Secrets (key names only), on `kubernetes.aio`."""

from __future__ import annotations

import json
import socket
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any, cast

from kubernetes.aio.client import ApiClient, CoreV1Api, CustomObjectsApi
from kubernetes.aio.client.exceptions import ApiException

from modelfs.api.v1 import GROUP, VERSION
from modelfs.api.v1.rules import check_label, check_subdomain

REQUEST_TIMEOUT = 30.0
EVENT_SOURCE = "modelfs"
MAX_EVENT_MESSAGE = 1024


class ApiError(RuntimeError):
    """An API call failed; `status` is the HTTP status (0 when there was no response)."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


class NotFoundError(ApiError):
    """404: the object (or its namespace) does not exist."""


class ConflictError(ApiError):
    """409: the object changed or another field manager owns the field."""


class InvalidError(ApiError):
    """422: the API server refused the object (schema or CEL rule)."""


def _message(error: ApiException) -> str:
    try:
        body = json.loads(error.body or "")
        return str(body.get("message") or error.reason)
    except (ValueError, AttributeError):
        return str(error.reason or "API error")


def api_error(error: ApiException) -> ApiError:
    """The modelfs error for an API exception: its status and the server's message, no body."""
    status = int(error.status or 0)
    message = f"{status}: {_message(error)}"
    if status == 404:
        return NotFoundError(status, message)
    if status == 409:
        return ConflictError(status, message)
    if status == 422:
        return InvalidError(status, message)
    return ApiError(status, message)


class ObjectClient:
    """Status patches on modelfs objects, and the key names of Secrets."""

    def __init__(self, api: ApiClient) -> None:
        self._custom = CustomObjectsApi(api)
        self._core = CoreV1Api(api)

    async def patch_status(
        self, plural: str, namespace: str, name: str, status: dict[str, Any]
    ) -> dict[str, Any] | None:
        """Merge-patch `status` (only what changed); None when the object is gone."""
        try:
            result = await self._custom.patch_namespaced_custom_object_status(
                GROUP,
                VERSION,
                namespace,
                plural,
                name,
                {"status": status},
                _request_timeout=REQUEST_TIMEOUT,
            )
        except ApiException as error:
            if error.status == 404:
                return None
            raise api_error(error) from None
        return cast(dict[str, Any], result)

    async def patch_metadata(
        self, plural: str, namespace: str, name: str, patch: dict[str, Any]
    ) -> dict[str, Any] | None:
        """Merge-patch a modelfs object (its metadata: finalizers); None when it is gone."""
        try:
            result = await self._custom.patch_namespaced_custom_object(
                GROUP,
                VERSION,
                namespace,
                plural,
                name,
                patch,
                _request_timeout=REQUEST_TIMEOUT,
            )
        except ApiException as error:
            if error.status == 404:
                return None
            raise api_error(error) from None
        return cast(dict[str, Any], result)

    async def secret_keys(self, namespace: str, name: str) -> frozenset[str] | None:
        """The key names of a Secret, or None when it does not exist. Values are dropped here.

        A name that is no Secret name (`..`, `../x`) is never put into a URL, where `..` would
        read the namespace's Secret list instead: the ModelSource's status names the field."""
        if check_subdomain(name, "secretRef") or check_label(namespace, "namespace"):
            return None
        try:
            secret = await self._core.read_namespaced_secret(
                name, namespace, _request_timeout=REQUEST_TIMEOUT
            )
        except ApiException as error:
            if error.status == 404:
                return None
            raise api_error(error) from None
        keys = frozenset((secret.data or {}).keys())
        del secret
        return keys

    async def create_event(
        self, involved: Mapping[str, Any], type_: str, reason: str, message: str
    ) -> None:
        """A core/v1 Event about `involved` (a raw object), posted through the API client, so it
        works from any task: kopf's own event queue exists only inside its handler tasks."""
        meta = involved.get("metadata", {})
        namespace, name = str(meta.get("namespace") or "default"), str(meta.get("name") or "")
        now = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        event: Any = {  # a plain dict: the client sends it as it is
            "apiVersion": "v1",
            "kind": "Event",
            "metadata": {"generateName": f"{name}.", "namespace": namespace},
            "involvedObject": {
                "apiVersion": involved.get("apiVersion"),
                "kind": involved.get("kind"),
                "name": name,
                "namespace": namespace,
                "uid": meta.get("uid"),
            },
            "type": type_,
            "reason": reason,
            "message": message[:MAX_EVENT_MESSAGE],
            "source": {"component": EVENT_SOURCE},
            "reportingComponent": EVENT_SOURCE,
            "reportingInstance": socket.gethostname()[:128],
            "firstTimestamp": now,
            "lastTimestamp": now,
            "count": 1,
        }
        try:
            await self._core.create_namespaced_event(
                namespace, event, _request_timeout=REQUEST_TIMEOUT
            )
        except ApiException as error:
            raise api_error(error) from None
