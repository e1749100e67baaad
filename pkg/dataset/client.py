"""The Dataset client: server-side apply under one field manager, get, delete, orphan."""

from __future__ import annotations

import json
from typing import Any, cast

from kubernetes.aio.client import ApiClient, CustomObjectsApi
from kubernetes.aio.client.exceptions import ApiException

from modelfs.pkg.dataset.types import DATASET_GROUP, DATASET_PLURAL, DATASET_VERSION, Dataset
from modelfs.pkg.kube.client import REQUEST_TIMEOUT, NotFoundError, api_error

FIELD_MANAGER = "modelfs"
APPLY_PATCH = "application/apply-patch+yaml"
JSON_PATCH = "application/json-patch+json"
MERGE_PATCH = "application/merge-patch+json"


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

    async def apply(self, dataset: Dataset) -> dict[str, Any]:
        """Server-side apply of the fields modelfs owns; the stored object is returned."""
        return await self.apply_manifest(dataset.to_manifest())

    async def apply_manifest(self, manifest: dict[str, Any]) -> dict[str, Any]:
        """`apply` of a manifest (`Dataset.to_manifest()`)."""
        meta = manifest["metadata"]
        return await self._patch(
            meta["namespace"],
            meta["name"],
            manifest,
            APPLY_PATCH,
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
