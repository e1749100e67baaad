"""An object stored before a schema check existed, on the real API server: the CRD's check is
lifted while it is created (as an older CRD would have stored it), then put back."""

from __future__ import annotations

import asyncio
import time
from typing import Any

from kubernetes.aio.client import ApiClient, ApiextensionsV1Api
from kubernetes.aio.client.exceptions import ApiException

from e2e.helpers import wire
from e2e.operator.kube import Kube, condition

CRD = "modelsyncs.model.samzong.dev"
VERSION_MAX = "/spec/versions/0/schema/openAPIV3Schema/properties/spec/properties/version/maxLength"


async def create_until_accepted(kube: Kube, spec: dict[str, Any], within: float = 20.0) -> None:
    """The CRD change reaches the API server's validation a moment after it is written."""
    deadline = time.monotonic() + within
    while True:
        try:
            await kube.create("ModelSync", "old", spec)
            return
        except ApiException as error:
            if error.status != 422 or time.monotonic() > deadline:
                raise
            await asyncio.sleep(0.3)


async def test_a_modelsync_that_no_longer_parses_gets_its_verdict_on_the_status(
    kube: Kube, k8s_api: ApiClient
) -> None:
    crds = ApiextensionsV1Api(k8s_api)
    crd = wire(await crds.read_custom_resource_definition(CRD))
    schema = crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
    limit = schema["properties"]["spec"]["properties"]["version"]["maxLength"]
    assert limit == 63
    too_long = "v" * 64
    await crds.patch_custom_resource_definition(CRD, [{"op": "remove", "path": VERSION_MAX}])
    try:
        await create_until_accepted(kube, {"modelRef": "mdl", "version": too_long})
    finally:
        await crds.patch_custom_resource_definition(
            CRD, [{"op": "add", "path": VERSION_MAX, "value": limit}]
        )
    sync = await kube.wait(
        "ModelSync",
        "old",
        lambda b: condition(b, "Ready").get("reason") == "InvalidSpec",
        within=30,
        what="Ready InvalidSpec",
    )
    ready = condition(sync, "Ready")
    assert ready["status"] == "False"
    assert ready["message"] == "ModelSync spec.version: String should have at most 63 characters"
    assert sync["status"]["phase"] == "FAILED"
    assert sync["spec"]["version"] == too_long  # the status patch left the spec alone
    await asyncio.sleep(3)  # resyncs and watch echoes add no event
    events = (await kube.core.list_namespaced_event(kube.namespace)).items
    mine = [e for e in events if e.involved_object.name == "old"]
    assert [(e.type, e.reason, e.count or 1) for e in mine] == [("Warning", "InvalidSpec", 1)]
    assert await kube.datasets() == []
