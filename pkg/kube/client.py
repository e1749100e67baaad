"""Calls on modelfs's own objects and on Secrets (key names only), on `kubernetes.aio`."""

from __future__ import annotations

import base64
import binascii
import socket
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from kubernetes.aio.client import ApiClient

from modelfs.api.v1 import GROUP, VERSION
from modelfs.api.v1.rules import check_label, check_subdomain
from modelfs.pkg.kube.rest import MERGE_PATCH, object_path, request

EVENT_SOURCE = "modelfs"
MAX_EVENT_MESSAGE = 1024


class ObjectClient:
    """Status patches on modelfs objects, and the key names of Secrets."""

    def __init__(self, api: ApiClient) -> None:
        # No generated API class here: CoreV1Api imports its whole package of model modules,
        # memory the operator would keep for one GET of a Secret (benchmarks/README.md).
        self._api = api

    async def _merge(
        self, plural: str, namespace: str, name: str, patch: dict[str, Any], subresource: str = ""
    ) -> dict[str, Any] | None:
        path = object_path(GROUP, VERSION, plural, namespace, name, subresource)
        _, result = await request(self._api, "PATCH", path, patch, MERGE_PATCH, missing_ok=True)
        return result

    async def patch_status(
        self, plural: str, namespace: str, name: str, status: dict[str, Any]
    ) -> dict[str, Any] | None:
        """Merge-patch `status` (only what changed); None when the object is gone."""
        return await self._merge(plural, namespace, name, {"status": status}, "status")

    async def patch_metadata(
        self, plural: str, namespace: str, name: str, patch: dict[str, Any]
    ) -> dict[str, Any] | None:
        """Merge-patch a modelfs object (its metadata: finalizers); None when it is gone."""
        return await self._merge(plural, namespace, name, patch)

    async def secret_keys(self, namespace: str, name: str) -> frozenset[str] | None:
        """The key names of a Secret, or None when it does not exist. Values are dropped here.

        A name that is no Secret name (`..`, `../x`) is never put into a URL, where `..` would
        read the namespace's Secret list instead: the ModelSource's status names the field."""
        if check_subdomain(name, "secretRef") or check_label(namespace, "namespace"):
            return None
        path = object_path("", "v1", "secrets", namespace, name)
        _, secret = await request(self._api, "GET", path, missing_ok=True)
        if secret is None:
            return None
        keys = frozenset((secret.get("data") or {}).keys())
        del secret
        return keys

    async def secret_data(self, namespace: str, name: str) -> dict[str, str] | None:
        """The decoded values of a Secret, or None when it does not exist: only the catalog's
        lookups read them, to ask the source's own endpoint what a download would fetch. They
        go nowhere else (never logged, never in an error: a value that does not decode is
        left out, not quoted)."""
        if check_subdomain(name, "secretRef") or check_label(namespace, "namespace"):
            return None
        path = object_path("", "v1", "secrets", namespace, name)
        _, secret = await request(self._api, "GET", path, missing_ok=True)
        if secret is None:
            return None
        values: dict[str, str] = {}
        for key, encoded in (secret.get("data") or {}).items():
            try:
                values[key] = base64.b64decode(str(encoded)).decode()
            except (binascii.Error, UnicodeDecodeError):
                continue
        del secret
        return values

    async def claim_exists(self, namespace: str, name: str) -> bool:
        """Whether the PersistentVolumeClaim `name` exists in `namespace` (a PVC source's)."""
        if check_subdomain(name, "claim") or check_label(namespace, "namespace"):
            return False
        path = object_path("", "v1", "persistentvolumeclaims", namespace, name)
        status, _ = await request(self._api, "GET", path, missing_ok=True)
        return status != 404

    async def create_event(
        self, involved: Mapping[str, Any], type_: str, reason: str, message: str
    ) -> None:
        """A core/v1 Event about `involved` (a raw object), posted through the API client, so it
        works from any task: kopf's own event queue exists only inside its handler tasks."""
        event = event_body(involved, type_, reason, message)
        namespace = event["metadata"]["namespace"]
        await request(self._api, "POST", object_path("", "v1", "events", namespace), event)


def event_body(
    involved: Mapping[str, Any], type_: str, reason: str, message: str
) -> dict[str, Any]:
    """The core/v1 Event `create_event` posts about `involved` (a raw object)."""
    meta = involved.get("metadata", {})
    namespace, name = str(meta.get("namespace") or "default"), str(meta.get("name") or "")
    now = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    return {
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
