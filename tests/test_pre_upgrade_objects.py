"""Objects stored before the admission rules existed (the CRD's CEL bypassed) get the same
verdict from the controllers: a False Ready condition naming the field, a Warning event, and no
Dataset. Run through the real reconcilers on the in-memory cluster (tests/memcluster.py)."""

from __future__ import annotations

from typing import Any

import pytest
from kubernetes.aio.client import ApiClient

from modelfs.controllers import triggers
from modelfs.pkg.kube import client as kube_client
from modelfs.pkg.kube.client import ObjectClient
from tests.memcluster import MemCluster, obj

NS = "team-a"
SOURCE = {"type": "HUGGING_FACE", "config": {}}
MODEL = {"sourceRef": "src", "versionConfigs": {"v1": {"repo": "org/model"}}}
SYNC = {"modelRef": "mdl", "version": "v1"}


def cluster_with(source: dict[str, Any], model: dict[str, Any], sync: dict[str, Any]) -> MemCluster:
    cluster = MemCluster()
    cluster.namespace(NS)
    cluster.put(obj("ModelSource", NS, "src", source))
    cluster.put(obj("Model", NS, "mdl", model))
    cluster.put(obj("ModelSync", NS, "sync", sync))
    return cluster


def ready(cluster: MemCluster, plural: str, name: str) -> dict[str, Any]:
    status = cluster.objects[plural][(NS, name)].get("status") or {}
    return next(c for c in status.get("conditions", []) if c["type"] == "Ready")


CASES = [
    # (what is wrong, source spec, model spec, sync spec, the object that names it, the field)
    (
        "backoff overflow",
        SOURCE,
        MODEL,
        {**SYNC, "retry": {"backoff": "100000000h"}},
        "sync",
        "spec.retry.backoff",
    ),
    (
        "backoff past Go",
        SOURCE,
        MODEL,
        {**SYNC, "retry": {"backoff": "2562048h"}},
        "sync",
        "spec.retry.backoff",
    ),
    (
        "interval too short",
        SOURCE,
        MODEL,
        {**SYNC, "schedule": {"interval": "1s"}},
        "sync",
        "spec.schedule.interval",
    ),
    ("size 0", SOURCE, {**MODEL, "storage": {"size": "0"}}, SYNC, "model", "spec.storage.size"),
    (
        "size 60 digits",
        SOURCE,
        {**MODEL, "storage": {"size": "9" * 60}},
        SYNC,
        "model",
        "spec.storage.size",
    ),
    (
        "size Ei",
        SOURCE,
        {**MODEL, "storage": {"size": "99999999999999999999999Ei"}},
        SYNC,
        "model",
        "spec.storage.size",
    ),
    (
        "empty share",
        SOURCE,
        {**MODEL, "share": {"namespaceSelector": {}}},
        SYNC,
        "model",
        "spec.share.namespaceSelector",
    ),
    (
        "bad selector key",
        SOURCE,
        {**MODEL, "share": {"namespaceSelector": {"matchLabels": {"a b": "x"}}}},
        SYNC,
        "model",
        "spec.share.namespaceSelector.matchLabels",
    ),
    ("secretRef path", {**SOURCE, "secretRef": "../x"}, MODEL, SYNC, "source", "spec.secretRef"),
    ("secretRef dots", {**SOURCE, "secretRef": ".."}, MODEL, SYNC, "source", "spec.secretRef"),
    (
        "NUL",
        {**SOURCE, "config": {"include": "a\x00b"}},
        MODEL,
        SYNC,
        "source",
        "spec.config.include",
    ),
    (
        "BEL",
        {**SOURCE, "config": {"exclude": "a\x07"}},
        MODEL,
        SYNC,
        "source",
        "spec.config.exclude",
    ),
    (
        "U+202E",
        {**SOURCE, "config": {"include": "a\u202eb"}},
        MODEL,
        SYNC,
        "source",
        "spec.config.include",
    ),
    (
        "empty include",
        {**SOURCE, "config": {"include": ""}},
        MODEL,
        SYNC,
        "source",
        "spec.config.include",
    ),
    (
        "leading dash",
        SOURCE,
        {
            **MODEL,
            "versionConfigs": {"v1": {"repo": "org/model", "repoConfig": {"include": "-rf"}}},
        },
        SYNC,
        "model",
        "spec.versionConfigs[v1].repoConfig.include",
    ),
]
PLURALS = {"source": "modelsources", "model": "models", "sync": "modelsyncs"}
NAMES = {"source": "src", "model": "mdl", "sync": "sync"}


@pytest.mark.parametrize(
    ("source", "model", "sync", "target", "field"),
    [case[1:] for case in CASES],
    ids=[case[0] for case in CASES],
)
async def test_a_pre_upgrade_object_is_refused_on_its_status_without_a_dataset(
    source: dict[str, Any], model: dict[str, Any], sync: dict[str, Any], target: str, field: str
) -> None:
    cluster = cluster_with(source, model, sync)
    async with cluster.running():
        await cluster.settle()
    # the object at fault says why, naming the field
    verdict = ready(cluster, PLURALS[target], NAMES[target])
    assert verdict["status"] == "False" and field in verdict["message"], verdict
    # the ModelSync that would use it is FAILED, and no Dataset exists
    assert cluster.objects["modelsyncs"][(NS, "sync")]["status"]["phase"] == "FAILED"
    assert ready(cluster, "modelsyncs", "sync")["status"] == "False"
    assert cluster.objects["datasets"] == {}
    warnings = [event for event in cluster.events if event[1] == "Warning"]
    assert any(event[0] == (NS, NAMES[target]) for event in warnings), cluster.events


async def test_a_secret_name_that_is_no_name_is_never_requested(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """`..` in a URL path would read the namespace's Secret list."""

    async def no_requests(
        api: ApiClient, method: str, path: str, *args: Any, **kwargs: Any
    ) -> tuple[int, dict[str, Any] | None]:
        raise AssertionError(f"requested {method} {path}")

    monkeypatch.setattr(kube_client, "request", no_requests)
    async with ApiClient() as api:
        client = ObjectClient(api)
        for name in ("..", "../x", ".", "a/b", "A"):
            assert await client.secret_keys(NS, name) is None
        assert await client.secret_keys("../kube-system", "creds") is None


UNPARSED = [
    # (what is wrong, kind, plural, spec, the field named, whether it has a phase)
    ("source type enum", "ModelSource", "modelsources", {"type": "FTP"}, "spec.type", False),
    (
        "model sourceRef too long",
        "Model",
        "models",
        {**MODEL, "sourceRef": "s" * 300},
        "spec.sourceRef",
        False,
    ),
    (
        "sync version too long",
        "ModelSync",
        "modelsyncs",
        {**SYNC, "version": "v" * 64},
        "spec.version",
        True,
    ),
    (
        "reference modelRef name",
        "ModelReference",
        "modelreferences",
        {"modelRef": {"namespace": NS, "name": "x" * 300}, "version": "v1"},
        "spec.modelRef.name",
        True,
    ),
]


@pytest.mark.parametrize(
    ("kind", "plural", "spec", "field", "phase"),
    [case[1:] for case in UNPARSED],
    ids=[case[0] for case in UNPARSED],
)
async def test_an_object_that_no_longer_parses_is_refused_on_its_status_once(
    kind: str,
    plural: str,
    spec: dict[str, Any],
    field: str,
    phase: bool,
    caplog: pytest.LogCaptureFixture,
) -> None:
    cluster = MemCluster()
    cluster.namespace(NS)
    cluster.put(obj(kind, NS, "bad", spec))
    caplog.set_level("DEBUG")
    async with cluster.running():
        await cluster.settle()
        for _ in range(3):  # resyncs: no new write, event or warning
            cluster.operator.enqueue(triggers.everything(cluster.indexes))  # type: ignore[union-attr]
            await cluster.settle()
    status = cluster.objects[plural][(NS, "bad")]["status"]
    verdict = next(c for c in status["conditions"] if c["type"] == "Ready")
    assert verdict["status"] == "False" and verdict["reason"] == "InvalidSpec", verdict
    assert verdict["message"].startswith(f"{kind} {field}: "), verdict
    assert status["observedGeneration"] == 1
    assert status.get("phase") == ("FAILED" if phase else None)
    assert cluster.objects["datasets"] == {}
    assert [e for e in cluster.events if e[0] == (NS, "bad")] == [
        ((NS, "bad"), "Warning", "InvalidSpec")
    ]
    assert [w for w in cluster.writes if w[0] == "patch-status"] == [
        ("patch-status", plural, (NS, "bad"))
    ]
    warnings = [r for r in caplog.records if r.levelname == "WARNING"]
    assert len(warnings) == 1, [r.getMessage() for r in warnings]


@pytest.mark.parametrize(
    "selector",
    [{}, {"matchLabels": {"a b": "x"}}],
    ids=["empty", "bad key"],
)
async def test_an_invalid_share_stored_before_the_upgrade_shares_with_nobody(
    selector: dict[str, Any],
) -> None:
    """A Model whose share turned invalid: its Dataset loses the share it was created with
    (`{}` shared with every namespace), and the ModelReferences reading it are revoked."""
    consumers = "team-b"
    cluster = MemCluster()
    cluster.namespace(NS)
    cluster.namespace(consumers, team="b")
    cluster.put(obj("ModelSource", NS, "src", {"type": "HTTP"}))
    shared = {
        "sourceRef": "src",
        "versionConfigs": {"v1": {"repo": "https://h/x/"}},
        "share": {"namespaceSelector": {"matchLabels": {"team": "b"}}},
    }
    cluster.put(obj("Model", NS, "mdl", shared))
    cluster.put(obj("ModelSync", NS, "sync", SYNC))
    cluster.put(
        obj(
            "ModelReference",
            consumers,
            "ref",
            {"modelRef": {"namespace": NS, "name": "mdl"}, "version": "v1"},
        )
    )
    async with cluster.running():
        await cluster.settle()
        cluster.ready_all_datasets()
        await cluster.settle()
        cluster.ready_all_datasets()
        await cluster.settle()
        assert cluster.objects["datasets"][(NS, "mdl-v1")]["spec"]["share"] is True
        reference_datasets = [k for k in cluster.objects["datasets"] if k[0] == consumers]
        assert len(reference_datasets) == 1
        model = cluster.objects["models"][(NS, "mdl")]
        cluster.put({**model, "spec": {**shared, "share": {"namespaceSelector": selector}}})
        await cluster.settle()
        for _ in range(2):  # resyncs change nothing more
            cluster.operator.enqueue(triggers.everything(cluster.indexes))  # type: ignore[union-attr]
            await cluster.settle()
    source = cluster.objects["datasets"][(NS, "mdl-v1")]
    assert "share" not in source["spec"] and "shareToNamespaceSelector" not in source["spec"]
    assert [k for k in cluster.objects["datasets"] if k[0] == consumers] == []
    assert ready(cluster, "models", "mdl")["status"] == "False"
    assert "spec.share.namespaceSelector" in ready(cluster, "models", "mdl")["message"]
    withdrawn = [e for e in cluster.events if e[2] == "DatasetShareWithdrawn"]
    assert withdrawn == [((NS, "sync"), "Normal", "DatasetShareWithdrawn")]
    status = cluster.objects["modelreferences"][(consumers, "ref")]["status"]
    assert status["phase"] == "FAILED"
