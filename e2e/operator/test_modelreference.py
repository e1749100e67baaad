"""Cross-namespace sharing: allowed only by the Model's opt-in, evaluated by modelfs itself."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest
from kubernetes.aio.client import V1Namespace, V1ObjectMeta
from kubernetes.aio.client.exceptions import ApiException

from e2e.operator.kube import Kube, condition

Namespaces = Callable[..., Awaitable[Kube]]


@pytest.fixture
async def consumer(kube: Kube) -> AsyncIterator[Namespaces]:
    """Makes consumer namespaces with labels; deletes them after the test."""
    made: list[str] = []

    async def make(suffix: str = "b", **labels: str) -> Kube:
        name = f"{kube.namespace[:55]}-{suffix}"
        await kube.core.create_namespace(
            V1Namespace(metadata=V1ObjectMeta(name=name, labels=labels))
        )
        made.append(name)
        return Kube.__new__(Kube).__class__(kube.custom.api_client, name)

    yield make
    for name in made:
        try:
            await kube.core.delete_namespace(name)
        except ApiException as error:
            if error.status != 404:
                raise


# Sharing with every namespace is written explicitly (an empty selector is refused).
EVERY_NAMESPACE = {
    "matchExpressions": [{"key": "kubernetes.io/metadata.name", "operator": "Exists"}]
}


async def shared_model(
    kube: Kube, selector: dict[str, Any] | None, sync: bool = True, versions: int = 1
) -> None:
    await kube.create("ModelSource", "src", {"type": "HTTP"})
    spec: dict[str, Any] = {
        "sourceRef": "src",
        "versionConfigs": {f"v{i + 1}": {"repo": f"https://h/x{i}/"} for i in range(versions)},
    }
    if selector is not None:
        spec["share"] = {"namespaceSelector": selector}
    await kube.create("Model", "mdl", spec)
    if sync:
        await kube.create("ModelSync", "sync", {"modelRef": "mdl", "version": "v1"})


async def reference(consumer: Kube, source: Kube, name: str = "ref", version: str = "v1") -> None:
    await consumer.create(
        "ModelReference",
        name,
        {"modelRef": {"namespace": source.namespace, "name": "mdl"}, "version": version},
    )


async def wait_ref(kube: Kube, phase: str, name: str = "ref", within: float = 30) -> dict[str, Any]:
    return await kube.wait(
        "ModelReference",
        name,
        lambda b: (b.get("status") or {}).get("phase") == phase,
        within,
        f"phase {phase}",
    )


async def wait_gone(kube: Kube, dataset: str, within: float = 30) -> None:
    for _ in range(int(within / 0.2)):
        if await kube.dataset(dataset) is None:
            return
        await asyncio.sleep(0.2)
    pytest.fail(f"Dataset {kube.namespace}/{dataset} still exists")


async def test_allowed_by_match_labels(kube: Kube, consumer: Namespaces) -> None:
    await shared_model(kube, {"matchLabels": {"team": "ml"}})
    await kube.wait_phase("sync", "READY")
    b = await consumer(team="ml")
    await reference(b, kube)
    ref = await wait_ref(b, "READY")
    status = ref["status"]
    assert status["readOnly"] is True
    assert status["source"] == {"namespace": kube.namespace, "dataset": "mdl-v1"}
    assert status["pvcName"] and status["datasetName"] == "ref"
    assert [condition(ref, t)["status"] for t in ("Allowed", "SourceReady", "Ready")] == [
        "True"
    ] * 3
    dataset = await b.dataset("ref")
    assert dataset is not None
    assert dataset["spec"]["source"] == {
        "type": "REFERENCE",
        "uri": f"dataset://{kube.namespace}/mdl-v1",
    }
    assert dataset["metadata"]["ownerReferences"][0]["kind"] == "ModelReference"
    source = await kube.dataset("mdl-v1")
    assert source is not None
    assert source["spec"]["share"] is True
    assert source["spec"]["shareToNamespaceSelector"] == {"matchLabels": {"team": "ml"}}
    model = await kube.wait(
        "Model",
        "mdl",
        lambda m: any(v.get("references") for v in (m.get("status") or {}).get("versions", [])),
    )
    assert model["status"]["versions"][0]["references"] == [f"{b.namespace}/ref"]


async def test_allowed_by_match_expressions(kube: Kube, consumer: Namespaces) -> None:
    selector = {
        "matchExpressions": [
            {"key": "tier", "operator": "In", "values": ["gpu", "inference"]},
            {"key": "quarantine", "operator": "DoesNotExist"},
        ]
    }
    await shared_model(kube, selector)
    await kube.wait_phase("sync", "READY")
    b = await consumer(tier="inference")
    await reference(b, kube)
    await wait_ref(b, "READY")
    source = await kube.dataset("mdl-v1")
    assert source is not None and source["spec"]["shareToNamespaceSelector"] == selector


async def test_denied_without_share(kube: Kube, consumer: Namespaces) -> None:
    await shared_model(kube, None)
    await kube.wait_phase("sync", "READY")
    b = await consumer(team="ml")
    await reference(b, kube)
    ref = await wait_ref(b, "FAILED")
    assert condition(ref, "Allowed")["reason"] == "NotShared"
    assert await b.datasets() == []
    source = await kube.dataset("mdl-v1")
    assert source is not None
    assert "share" not in source["spec"] and "shareToNamespaceSelector" not in source["spec"]
    events = await b.wait_events("ref", lambda found: any(e.reason == "NotShared" for e in found))
    assert any(e.type == "Warning" and e.reason == "NotShared" for e in events)


async def test_denied_for_a_namespace_the_selector_does_not_match(
    kube: Kube, consumer: Namespaces
) -> None:
    await shared_model(kube, {"matchLabels": {"team": "ml"}})
    await kube.wait_phase("sync", "READY")
    b = await consumer(team="web")
    await reference(b, kube)
    ref = await wait_ref(b, "FAILED")
    allowed = condition(ref, "Allowed")
    assert allowed["reason"] == "NamespaceNotSelected" and b.namespace in allowed["message"]
    assert await b.datasets() == []
    source = await kube.dataset("mdl-v1")
    assert source is not None
    assert source["spec"]["shareToNamespaceSelector"] == {"matchLabels": {"team": "ml"}}


async def test_a_reference_waits_for_the_source_then_becomes_ready(
    kube: Kube, consumer: Namespaces
) -> None:
    await kube.annotate_namespace({"fake.dataset.baizeai.io/round-duration": "4s"})
    await shared_model(kube, EVERY_NAMESPACE)
    b = await consumer()
    await reference(b, kube)
    ref = await wait_ref(b, "PENDING")
    assert condition(ref, "SourceReady")["status"] == "False"
    assert await b.datasets() == []  # not before the source is READY
    await kube.wait_phase("sync", "READY", within=30)
    await wait_ref(b, "READY")


async def test_relabelling_revokes_then_restores(kube: Kube, consumer: Namespaces) -> None:
    await shared_model(kube, {"matchLabels": {"team": "ml"}})
    await kube.wait_phase("sync", "READY")
    b = await consumer(team="ml")
    await reference(b, kube)
    await wait_ref(b, "READY")
    await b.core.patch_namespace(b.namespace, {"metadata": {"labels": {"team": None}}})
    ref = await wait_ref(b, "FAILED")
    assert condition(ref, "Allowed")["reason"] == "NamespaceNotSelected"
    await wait_gone(b, "ref")
    events = await b.wait_events(
        "ref", lambda found: any(e.reason == "DatasetDeleted" for e in found)
    )
    assert any(e.reason == "DatasetDeleted" for e in events)
    await b.core.patch_namespace(b.namespace, {"metadata": {"labels": {"team": "ml"}}})
    await wait_ref(b, "READY")
    assert await b.dataset("ref") is not None


async def test_removing_share_from_the_model_revokes(kube: Kube, consumer: Namespaces) -> None:
    await shared_model(kube, EVERY_NAMESPACE)
    await kube.wait_phase("sync", "READY")
    b = await consumer()
    await reference(b, kube)
    await wait_ref(b, "READY")
    await kube.patch("Model", "mdl", {"spec": {"share": None}})
    ref = await wait_ref(b, "FAILED")
    assert condition(ref, "Allowed")["reason"] == "NotShared"
    await wait_gone(b, "ref")
    for _ in range(50):
        source = await kube.dataset("mdl-v1")
        if source is not None and "share" not in source["spec"]:
            break
        await asyncio.sleep(0.2)
    else:
        pytest.fail("the source Dataset is still shared")


async def test_deleting_the_source_modelsync_marks_the_reference_lost(
    kube: Kube, consumer: Namespaces
) -> None:
    await shared_model(kube, EVERY_NAMESPACE)
    await kube.wait_phase("sync", "READY")
    b = await consumer()
    await reference(b, kube)
    await wait_ref(b, "READY")
    await kube.delete("ModelSync", "sync")
    ref = await b.wait(
        "ModelReference", "ref", lambda r: condition(r, "SourceReady").get("reason") == "SourceLost"
    )
    assert ref["status"]["phase"] == "PENDING"
    await wait_gone(b, "ref")


async def test_two_namespaces_read_one_source(kube: Kube, consumer: Namespaces) -> None:
    await shared_model(kube, {"matchLabels": {"team": "ml"}})
    await kube.wait_phase("sync", "READY")
    b, c = await consumer("b", team="ml"), await consumer("c", team="ml")
    await reference(b, kube, "ref-b")
    await reference(c, kube, "ref-c")
    await wait_ref(b, "READY", "ref-b")
    await wait_ref(c, "READY", "ref-c")
    model = await kube.wait(
        "Model",
        "mdl",
        lambda m: len((m.get("status") or {}).get("versions", [{}])[0].get("references", [])) == 2,
    )
    assert model["status"]["versions"][0]["references"] == sorted(
        [f"{b.namespace}/ref-b", f"{c.namespace}/ref-c"]
    )


async def test_a_version_without_modelsync_says_so(kube: Kube, consumer: Namespaces) -> None:
    await shared_model(kube, EVERY_NAMESPACE, versions=2)
    await kube.wait_phase("sync", "READY")
    b = await consumer()
    await reference(b, kube, version="v2")
    ref = await wait_ref(b, "PENDING")
    source_ready = condition(ref, "SourceReady")
    assert source_ready["reason"] == "NoModelSync" and "v2" in source_ready["message"]
    assert await b.datasets() == []
