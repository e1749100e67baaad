"""The Dataset client: server-side apply under one field manager, get, delete, orphan."""

from __future__ import annotations

import json
import re
from typing import Any, cast

from kubernetes.aio.client import ApiClient, CustomObjectsApi
from kubernetes.aio.client.exceptions import ApiException

from modelfs.pkg.dataset.types import DATASET_GROUP, DATASET_PLURAL, DATASET_VERSION, Dataset
from modelfs.pkg.kube.client import REQUEST_TIMEOUT, NotFoundError, api_error

FIELD_MANAGER = "modelfs"
APPLY_PATCH = "application/apply-patch+yaml"
JSON_PATCH = "application/json-patch+json"
MERGE_PATCH = "application/merge-patch+json"
# The generated client json.dumps() any body sent as exactly APPLY_PATCH; with a parameter it
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


class DatasetClient:
    """Datasets (dataset.baizeai.io/v1alpha1) as modelfs writes them."""

    def __init__(self, api: ApiClient, field_manager: str = FIELD_MANAGER) -> None:
        self._api = CustomObjectsApi(api)
        self.field_manager = field_manager

    async def _patch(
        self, namespace: str, name: str, body: Any, content_type: str, **params: Any
    ) -> dict[str, Any]:
        """One PATCH of a Dataset, read from the raw response: the generated client maps only
        200, and an apply that creates the Dataset answers 201."""
        try:
            if isinstance(body, str):
                status, data = await self._patch_text(namespace, name, body, content_type, **params)
            else:
                response = await self._api.patch_namespaced_custom_object_without_preload_content(
                    DATASET_GROUP,
                    DATASET_VERSION,
                    namespace,
                    DATASET_PLURAL,
                    name,
                    body,
                    _content_type=content_type,
                    _request_timeout=REQUEST_TIMEOUT,
                    **params,
                )
                data = await response.read()
                status = int(response.status)
        except ApiException as error:
            raise api_error(error) from None
        if status >= 400:
            raise api_error(ApiException(status=status, reason="patch failed", body=data.decode()))
        return cast(dict[str, Any], json.loads(data))

    async def _patch_text(
        self, namespace: str, name: str, body: str, content_type: str, **params: Any
    ) -> tuple[int, bytes]:
        """A PATCH whose body is sent as written: the generated method takes only dicts and
        lists, and would json.dumps() them (see APPLY_PATCH_TEXT)."""
        api = self._api.api_client
        query = [(_QUERY_NAMES.get(key, key), value) for key, value in params.items()]
        request = await api.param_serialize(
            method="PATCH",
            resource_path="/apis/{group}/{version}/namespaces/{namespace}/{plural}/{name}",
            path_params={
                "group": DATASET_GROUP,
                "version": DATASET_VERSION,
                "namespace": namespace,
                "plural": DATASET_PLURAL,
                "name": name,
            },
            query_params=query,
            header_params={"Accept": "application/json", "Content-Type": content_type},
            body=body,
            auth_settings=["BearerToken"],
        )
        response = await api.call_api(*request, _request_timeout=REQUEST_TIMEOUT)
        return int(response.status), await response.read()

    async def apply(self, dataset: Dataset) -> dict[str, Any]:
        """Server-side apply of the fields modelfs owns; the stored object is returned."""
        return await self.apply_manifest(dataset.to_manifest())

    async def apply_manifest(self, manifest: dict[str, Any]) -> dict[str, Any]:
        """`apply` of a manifest (`Dataset.to_manifest()`)."""
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
        try:
            result = await self._api.get_namespaced_custom_object(
                DATASET_GROUP,
                DATASET_VERSION,
                namespace,
                DATASET_PLURAL,
                name,
                _request_timeout=REQUEST_TIMEOUT,
            )
        except ApiException as error:
            if error.status == 404:
                return None
            raise api_error(error) from None
        return cast(dict[str, Any], result)

    async def delete(self, namespace: str, name: str) -> bool:
        """Delete the Dataset; False when it was already gone."""
        try:
            await self._api.delete_namespaced_custom_object(
                DATASET_GROUP,
                DATASET_VERSION,
                namespace,
                DATASET_PLURAL,
                name,
                _request_timeout=REQUEST_TIMEOUT,
            )
        except ApiException as error:
            if error.status == 404:
                return False
            raise api_error(error) from None
        return True

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
        try:
            await self._patch(namespace, name, patch, JSON_PATCH)
        except NotFoundError:
            return False
        return True
