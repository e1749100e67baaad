"""Small async helpers for the operator scenarios: modelfs objects in, statuses out."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any

import pytest
from kubernetes.aio.client import ApiClient, CoreV1Api, CustomObjectsApi, V1ObjectMeta, V1Secret
from kubernetes.aio.client.exceptions import ApiException

from e2e.helpers import custom_object

GROUP, VERSION = "model.samzong.dev", "v1"
DATASETS = ("dataset.baizeai.io", "v1alpha1", "datasets")
PLURALS = {
    "ModelSource": "modelsources",
    "Model": "models",
    "ModelSync": "modelsyncs",
    "ModelReference": "modelreferences",
}


class Kube:
    """What a user does with kubectl, as the admin, in one namespace."""

    def __init__(self, api: ApiClient, namespace: str) -> None:
        self.custom = CustomObjectsApi(api)
        self.core = CoreV1Api(api)
        self.namespace = namespace

    async def create(
        self, kind: str, name: str, spec: dict[str, Any], **meta: Any
    ) -> dict[str, Any]:
        body = {
            "apiVersion": f"{GROUP}/{VERSION}",
            "kind": kind,
            "metadata": {"name": name, **meta},
            "spec": spec,
        }
        return custom_object(
            await self.custom.create_namespaced_custom_object(
                GROUP, VERSION, self.namespace, PLURALS[kind], body
            )
        )

    async def get(self, kind: str, name: str) -> dict[str, Any] | None:
        try:
            result = await self.custom.get_namespaced_custom_object(
                GROUP, VERSION, self.namespace, PLURALS[kind], name
            )
        except ApiException as error:
            if error.status == 404:
                return None
            raise
        return custom_object(result)

    async def patch(self, kind: str, name: str, patch: dict[str, Any]) -> dict[str, Any]:
        return custom_object(
            await self.custom.patch_namespaced_custom_object(
                GROUP, VERSION, self.namespace, PLURALS[kind], name, patch
            )
        )

    async def delete(self, kind: str, name: str) -> None:
        await self.custom.delete_namespaced_custom_object(
            GROUP, VERSION, self.namespace, PLURALS[kind], name
        )

    async def dataset(self, name: str) -> dict[str, Any] | None:
        try:
            result = await self.custom.get_namespaced_custom_object(
                *DATASETS[:2], self.namespace, DATASETS[2], name
            )
        except ApiException as error:
            if error.status == 404:
                return None
            raise
        return custom_object(result)

    async def datasets(self) -> list[dict[str, Any]]:
        listed = await self.custom.list_namespaced_custom_object(
            *DATASETS[:2], self.namespace, DATASETS[2]
        )
        return list(custom_object(listed)["items"])

    async def delete_dataset(self, name: str) -> None:
        await self.custom.delete_namespaced_custom_object(
            *DATASETS[:2], self.namespace, DATASETS[2], name
        )

    async def secret(self, name: str, data: dict[str, str]) -> None:
        await self.core.create_namespaced_secret(
            self.namespace,
            V1Secret(metadata=V1ObjectMeta(name=name), string_data=data, type="Opaque"),
        )

    async def annotate_namespace(self, annotations: dict[str, str]) -> None:
        await self.core.patch_namespace(self.namespace, {"metadata": {"annotations": annotations}})

    async def events(self, name: str | None = None) -> list[Any]:
        listed = await self.core.list_namespaced_event(self.namespace)
        return [e for e in listed.items if name is None or e.involved_object.name == name]

    async def wait_events(
        self, name: str, check: Callable[[list[Any]], bool], within: float = 15.0
    ) -> list[Any]:
        """Events are posted in the background: poll until `check(events of name)` holds."""
        deadline = time.monotonic() + within
        while True:
            events = await self.events(name)
            if check(events) or time.monotonic() > deadline:
                return events
            await asyncio.sleep(0.3)

    async def wait(
        self,
        kind: str,
        name: str,
        check: Callable[[dict[str, Any]], bool],
        within: float = 30.0,
        what: str = "",
    ) -> dict[str, Any]:
        """Poll the object until `check(body)` holds; fail with its last status otherwise."""
        deadline = time.monotonic() + within
        body: dict[str, Any] | None = None
        while time.monotonic() < deadline:
            body = await self.get(kind, name)
            if body is not None and check(body):
                return body
            await asyncio.sleep(0.2)
        status = (body or {}).get("status")
        pytest.fail(
            f"{kind} {name}: {what or 'condition'} not reached in {within}s; status={status}"
        )

    async def wait_phase(self, name: str, phase: str, within: float = 30.0) -> dict[str, Any]:
        return await self.wait(
            "ModelSync",
            name,
            lambda b: (b.get("status") or {}).get("phase") == phase,
            within,
            f"phase {phase}",
        )


def condition(body: dict[str, Any], type_: str) -> dict[str, Any]:
    for found in (body.get("status") or {}).get("conditions") or []:
        if found.get("type") == type_:
            return dict(found)
    return {}
