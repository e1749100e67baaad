"""The Dataset client: server-side apply under one field manager, get, delete, orphan."""

from __future__ import annotations

import json
import re
from typing import Any

from kubernetes.aio.client import ApiClient

from modelfs.pkg.dataset.types import DATASET_GROUP, DATASET_PLURAL, DATASET_VERSION, Dataset
from modelfs.pkg.kube.rest import JSON, JSON_PATCH, MERGE_PATCH, object_path, request

FIELD_MANAGER = "modelfs"
APPLY_PATCH = "application/apply-patch+yaml"
# The client's REST layer json.dumps() any body sent as exactly APPLY_PATCH; with a parameter it
# sends a str body as it is (and the API server drops the parameter).
APPLY_PATCH_TEXT = f"{APPLY_PATCH}; charset=utf-8"
# `\uD83D\uDCA5`: a character beyond U+FFFF as JSON escapes it (a surrogate pair), preceded by
# an odd number of backslashes (an even number escapes the backslashes themselves).
_SURROGATE_PAIR = re.compile(r"(?<!\\)((?:\\\\)*)\\u(d[89ab][0-9a-f]{2})\\u(d[c-f][0-9a-f]{2})")


def apply_body(manifest: dict[str, Any]) -> str:
    """`manifest` as the YAML an apply patch must be: ASCII-only JSON (JSON is YAML), except
    that characters beyond U+FFFF are written `\\UXXXXXXXX`. YAML has no surrogate pairs, so the
    API server refuses JSON's `\\ud83d\\udca5` in an apply patch (an emoji in an option)."""

    def combined(found: re.Match[str]) -> str:
        high, low = int(found.group(2), 16), int(found.group(3), 16)
        code = 0x10000 + ((high - 0xD800) << 10) + (low - 0xDC00)
        return f"{found.group(1)}\\U{code:08X}"

    # DEL is ASCII, so json.dumps leaves it raw, but YAML does not allow it unescaped.
    text = json.dumps(manifest).replace("\x7f", "\\u007f")
    return _SURROGATE_PAIR.sub(combined, text)


_QUERY_NAMES = {"field_manager": "fieldManager", "dry_run": "dryRun"}


def _query_value(value: Any) -> str:
    """A query parameter as the generated client writes it (booleans in lower case)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


class DatasetClient:
    """Datasets (dataset.baizeai.io/v1alpha1) as modelfs writes them, sent with
    `pkg.kube.rest.request` (no generated layers: see there)."""

    def __init__(self, api: ApiClient, field_manager: str = FIELD_MANAGER) -> None:
        self._api = api
        self.field_manager = field_manager

    async def _request(
        self,
        method: str,
        namespace: str,
        name: str,
        body: Any = None,
        content_type: str = JSON,
        *,
        missing_ok: bool = False,
        **params: Any,
    ) -> tuple[int, dict[str, Any] | None]:
        """One request on the Dataset (a 404 is `(404, None)` when `missing_ok`). An apply that
        creates the Dataset answers 201 with the object, as 200 does."""
        path = object_path(DATASET_GROUP, DATASET_VERSION, DATASET_PLURAL, namespace, name)
        query = {_QUERY_NAMES.get(key, key): _query_value(value) for key, value in params.items()}
        return await request(
            self._api, method, path, body, content_type, query=query, missing_ok=missing_ok
        )

    async def _patch(
        self, namespace: str, name: str, body: Any, content_type: str, **params: Any
    ) -> dict[str, Any]:
        """A PATCH that must find the Dataset: NotFoundError (the server's message) when the
        Dataset or its namespace is gone."""
        _, result = await self._request("PATCH", namespace, name, body, content_type, **params)
        return result or {}

    async def apply(self, dataset: Dataset) -> dict[str, Any]:
        """Server-side apply of the fields modelfs owns; the stored object is returned."""
        return await self.apply_manifest(dataset.to_manifest())

    async def apply_manifest(self, manifest: dict[str, Any]) -> dict[str, Any]:
        """`apply` of a manifest (`Dataset.to_manifest()`), sent as the text of `apply_body`."""
        meta = manifest["metadata"]
        return await self._patch(
            meta["namespace"],
            meta["name"],
            apply_body(manifest),
            APPLY_PATCH_TEXT,
            field_manager=self.field_manager,
            force=True,
        )

    async def patch(self, namespace: str, name: str, patch: dict[str, Any]) -> dict[str, Any]:
        """A JSON merge patch (to remove fields that server-side apply leaves to their owners)."""
        return await self._patch(
            namespace, name, patch, MERGE_PATCH, field_manager=self.field_manager
        )

    async def get(self, namespace: str, name: str) -> dict[str, Any] | None:
        _, result = await self._request("GET", namespace, name, missing_ok=True)
        return result

    async def delete(self, namespace: str, name: str) -> bool:
        """Delete the Dataset; False when it was already gone."""
        status, _ = await self._request("DELETE", namespace, name, missing_ok=True)
        return status != 404

    async def orphan(self, namespace: str, name: str, owner_uid: str) -> bool:
        """Remove the owner reference of `owner_uid`, so garbage collection keeps the Dataset.

        A JSON patch with a `test` of the reference, so a Dataset that changed owner in between
        is left alone. False when the Dataset or the reference is gone.
        """
        current = await self.get(namespace, name)
        refs = (current or {}).get("metadata", {}).get("ownerReferences") or []
        index = next((i for i, ref in enumerate(refs) if ref.get("uid") == owner_uid), None)
        if current is None or index is None:
            return False
        patch = [
            {"op": "test", "path": f"/metadata/ownerReferences/{index}/uid", "value": owner_uid},
            {"op": "remove", "path": f"/metadata/ownerReferences/{index}"},
        ]
        status, _ = await self._request(
            "PATCH", namespace, name, patch, JSON_PATCH, missing_ok=True
        )
        return status != 404
