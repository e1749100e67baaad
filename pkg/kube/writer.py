"""Every API write the reconcilers make, behind one object (`controllers.runtime.Writer`)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from kubernetes.aio.client import ApiClient

from modelfs.pkg.dataset.client import DatasetClient
from modelfs.pkg.kube.client import ObjectClient


class KubeWriter:
    """modelfs's own objects, Secrets' key names, Events and Datasets, on `kubernetes.aio`."""

    def __init__(self, api: ApiClient) -> None:
        self.objects = ObjectClient(api)
        self.datasets = DatasetClient(api)

    async def patch_status(
        self, plural: str, namespace: str, name: str, status: dict[str, Any]
    ) -> dict[str, Any] | None:
        return await self.objects.patch_status(plural, namespace, name, status)

    async def patch_metadata(
        self, plural: str, namespace: str, name: str, patch: dict[str, Any]
    ) -> dict[str, Any] | None:
        return await self.objects.patch_metadata(plural, namespace, name, patch)

    async def secret_keys(self, namespace: str, name: str) -> frozenset[str] | None:
        return await self.objects.secret_keys(namespace, name)

    async def create_event(
        self, involved: Mapping[str, Any], type_: str, reason: str, message: str
    ) -> None:
        await self.objects.create_event(involved, type_, reason, message)

    async def apply_dataset(self, manifest: dict[str, Any]) -> dict[str, Any]:
        return await self.datasets.apply_manifest(manifest)

    async def patch_dataset(
        self, namespace: str, name: str, patch: dict[str, Any]
    ) -> dict[str, Any]:
        return await self.datasets.patch(namespace, name, patch)

    async def delete_dataset(self, namespace: str, name: str) -> bool:
        return await self.datasets.delete(namespace, name)

    async def orphan_dataset(self, namespace: str, name: str, owner_uid: str) -> bool:
        return await self.datasets.orphan(namespace, name, owner_uid)
