"""The catalog step on the real API server and the real Dataset controller, against real local
catalog servers (a local Hub proven faithful with huggingface_hub's client, moto's S3, a file
server, `git http-backend`): each refusal leaves no Dataset, a catalog that cannot be reached
lets a BestEffort download go ahead and holds a Required one, a schedule tick starts a round
only when the upstream moved."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest

from e2e.kustomize import kubectl as run_kubectl
from e2e.operator.conftest import OperatorEnv
from e2e.operator.kube import Kube, condition
from modelfs.testing.catalog.files import FileServer
from modelfs.testing.catalog.git import GitServer, make_repo
from modelfs.testing.catalog.hub import CATALOG_TOKEN, Catalog, HubServer, Repo
from modelfs.testing.catalog.s3 import ACCESS_KEY, SECRET_KEY, S3Server

WEIGHTS = {"config.json": 700, "model.safetensors": 5 * 2**20}
"""5 MiB and a bit: more than a 1Mi storage, the sizes the local Hub reports."""


def ready(body: dict[str, Any]) -> dict[str, Any]:
    return condition(body, "Ready")


async def sync_of(
    kube: Kube,
    source: dict[str, Any],
    version: dict[str, Any],
    *,
    storage: str | None = None,
    schedule: str | None = None,
) -> float:
    """ModelSource `src`, Model `mdl` (version v1), ModelSync `sync`; when it was created."""
    await kube.create("ModelSource", "src", source)
    model: dict[str, Any] = {"sourceRef": "src", "versionConfigs": {"v1": version}}
    if storage:
        model["storage"] = {"size": storage}
    await kube.create("Model", "mdl", model)
    spec: dict[str, Any] = {"modelRef": "mdl", "version": "v1"}
    if schedule:
        spec["schedule"] = {"interval": schedule}
    started = time.monotonic()
    await kube.create("ModelSync", "sync", spec)
    return started


def hub_source(hub: HubServer, **config: str) -> dict[str, Any]:
    return {"type": "HUGGING_FACE", "config": {"endpoint": hub.url, **config}}


async def refused(kube: Kube, reason: str, started: float) -> tuple[dict[str, Any], float]:
    """Wait for the refusal; check it left no Dataset and posted one Warning."""
    body = await kube.wait(
        "ModelSync",
        "sync",
        lambda b: ready(b).get("reason") == reason,
        within=40,
        what=f"Ready reason {reason}",
    )
    took = time.monotonic() - started
    assert body["status"]["phase"] == "FAILED"
    assert ready(body)["status"] == "False"
    assert (condition(body, "Catalog")["status"], condition(body, "Catalog")["reason"]) == (
        "False",
        reason,
    )
    assert await kube.datasets() == []
    events = await kube.wait_events(
        "sync", lambda found: any(e.reason == reason for e in found), within=10
    )
    assert [(e.type, e.reason) for e in events if e.reason == reason] == [("Warning", reason)]
    return body, took


# ----------------------------------------------------------------------------- refusals


# RevisionNotFound is not among them: the loader ignores a Hub revision (the lookup too, and
# the Resolved condition says so), and a ModelScope source has no endpoint option to point at
# the local ModelScope (the lookup's own tests refuse a missing revision there).
@pytest.mark.parametrize(
    "case", ["RepoNotFound", "GatedRepo", "NoFilesMatched", "InsufficientStorage"]
)
async def test_a_hub_refusal_leaves_no_dataset(
    kube: Kube, hub_server: HubServer, hub_catalog: Catalog, case: str
) -> None:
    repo = f"e2e-{kube.namespace}/{case.lower()}"
    gated = case == "GatedRepo"
    if case != "RepoNotFound":
        hub_catalog.add(
            Repo(repo, dict(WEIGHTS), gated="manual" if gated else False, tokens=frozenset())
        )
    config = {"include": "*.gguf"} if case == "NoFilesMatched" else {}
    version: dict[str, Any] = {"repo": repo}
    started = await sync_of(
        kube,
        hub_source(hub_server, **config),
        version,
        storage="1Mi" if case == "InsufficientStorage" else None,
    )
    body, took = await refused(kube, case, started)
    message = ready(body)["message"]
    if case == "InsufficientStorage":
        assert "1Mi (1048576 bytes)" in message and "5.0MiB (5243580 bytes)" in message
    if case == "NoFilesMatched":
        assert "*.gguf" in message and "model.safetensors" in message
    print(f"\n{case}: HUGGING_FACE {repo} {config or ''} -> {case} in {took:.1f}s: {message}")


async def test_an_empty_s3_prefix_is_refused(kube: Kube, s3_server: S3Server) -> None:
    s3_server.put("e2e-catalog", {"other/a.safetensors": b"x"})
    await kube.secret("s3", {"access-key": ACCESS_KEY, "secret-key": SECRET_KEY})
    source = {
        "type": "S3",
        "config": {"provider": "MINIO", "endpoint": s3_server.url},
        "secretRef": "s3",
    }
    started = await sync_of(kube, source, {"repo": f"e2e-catalog/{kube.namespace}"})
    _, took = await refused(kube, "SourceObjectNotFound", started)
    print(f"\nSourceObjectNotFound: S3 empty prefix -> in {took:.1f}s")


async def test_an_http_404_is_refused(kube: Kube, file_server: FileServer) -> None:
    source = {"type": "HTTP", "config": {"endpoint": file_server.url}}
    started = await sync_of(kube, source, {"repo": f"{kube.namespace}/missing/"})
    _, took = await refused(kube, "SourceObjectNotFound", started)
    print(f"\nSourceObjectNotFound: HTTP 404 -> in {took:.1f}s")


async def test_a_missing_git_branch_is_refused(
    kube: Kube, git_server: GitServer, git_root: Path
) -> None:
    make_repo(git_root, kube.namespace, {"README.md": "weights"})
    source = {"type": "GIT", "config": {"endpoint": git_server.url}}
    version = {"repo": f"{kube.namespace}.git", "repoConfig": {"branch": "no-such-branch"}}
    started = await sync_of(kube, source, version)
    body, took = await refused(kube, "RefNotFound", started)
    print(f"\nRefNotFound: GIT branch -> in {took:.1f}s: {ready(body)['message']}")


async def test_a_missing_claim_is_refused(kube: Kube) -> None:
    started = await sync_of(kube, {"type": "PVC"}, {"repo": "no-such-claim/models"})
    body, took = await refused(kube, "SourceObjectNotFound", started)
    assert "'no-such-claim'" in ready(body)["message"]
    print(f"\nSourceObjectNotFound: PVC claim -> in {took:.1f}s")


CANARY = "hf_e2eCANARYtoken_9f8e7d"


async def test_a_secret_value_reaches_no_log_event_status_or_metric(
    kube: Kube, hub_server: HubServer, hub_catalog: Catalog, operator_env: OperatorEnv
) -> None:
    """The Hub refuses the token: the refusal names the key, never the value."""
    repo = hub_catalog.add(Repo(f"e2e-{kube.namespace}/canary", dict(WEIGHTS), private=True))
    await kube.secret("hub", {"token": CANARY})
    source = {**hub_source(hub_server), "secretRef": "hub"}
    started = await sync_of(kube, source, {"repo": repo.id})
    body, _ = await refused(kube, "GatedRepo", started)
    assert "token" in ready(body)["message"]
    assert hub_server.requests(repo.id), "the lookup did not reach the Hub"
    shown = [
        repr(await kube.get(kind, name))
        for kind, name in (("ModelSync", "sync"), ("ModelSource", "src"), ("Model", "mdl"))
    ]
    shown += [f"{e.reason} {e.message}" for e in await kube.events()]
    shown += [operator_env.operator.log_text(), operator_env.operator.metrics()]
    assert not [text for text in shown if CANARY in text]


# ----------------------------------------------------------------------------- unreachable


async def test_best_effort_against_a_stopped_server_goes_ahead(
    kube: Kube, stopped_url: str
) -> None:
    await sync_of(
        kube, {"type": "HUGGING_FACE", "config": {"endpoint": stopped_url}}, {"repo": "org/m"}
    )
    body = await kube.wait_phase("sync", "READY", within=60)
    found = condition(body, "Catalog")
    assert (found["status"], found["reason"]) == ("Unknown", "CatalogUnreachable"), found
    assert "goes ahead" in found["message"]
    assert (body["status"].get("catalog") or {}).get("size") is None


async def test_required_against_a_stopped_server_holds_the_download(
    kube: Kube, stopped_url: str
) -> None:
    source = {
        "type": "HUGGING_FACE",
        "config": {"endpoint": stopped_url},
        "catalog": "Required",
    }
    await sync_of(kube, source, {"repo": "org/m"})
    body = await kube.wait(
        "ModelSync",
        "sync",
        lambda b: ready(b).get("reason") == "CatalogUnreachable",
        what="Ready CatalogUnreachable",
    )
    assert body["status"]["phase"] == "PENDING"
    assert condition(body, "Catalog")["status"] == "Unknown"
    assert await kube.datasets() == []


# ----------------------------------------------------------------------------- schedule


async def test_a_schedule_tick_starts_a_round_only_when_the_upstream_moved(
    kube: Kube, hub_server: HubServer, hub_catalog: Catalog, kubectl: str, k8s_kubeconfig: Path
) -> None:
    repo = hub_catalog.add(Repo(f"e2e-{kube.namespace}/moving", dict(WEIGHTS)))
    first = repo.snapshot(None)
    assert first is not None
    await kube.secret("hub", {"token": CATALOG_TOKEN})
    source = {**hub_source(hub_server), "secretRef": "hub"}
    await sync_of(kube, source, {"repo": repo.id}, schedule="10s")
    body = await kube.wait_phase("sync", "READY", within=60)
    catalog = body["status"]["catalog"]
    assert (catalog["revision"], catalog["files"], catalog["size"]) == (first.sha, 2, "5.0MiB")
    assert condition(body, "Catalog")["reason"] == "CatalogFound"
    synced = await kube.wait_events(
        "sync", lambda found: any(e.reason == "Synced" for e in found), within=15
    )
    [fetched] = [e.message for e in synced if e.reason == "Synced"]
    assert fetched.startswith(f"Fetched revision {first.sha[:12]} (2 files, 5.0MiB)"), fetched
    # What a user sees: SIZE and REVISION, and the version's size on the Model's wide view.
    get = run_kubectl(kubectl, k8s_kubeconfig, "get", "msync", "-n", kube.namespace).stdout
    header, row = get.splitlines()[:2]
    assert header.split()[:6] == ["NAME", "MODEL", "VERSION", "PHASE", "SIZE", "REVISION"]
    assert row.split()[:6] == ["sync", "mdl", "v1", "READY", "5.0MiB", first.sha], get
    await kube.wait("Model", "mdl", lambda b: b["status"]["versions"][0].get("size") == "5.0MiB")
    wide = run_kubectl(kubectl, k8s_kubeconfig, "get", "mdl", "-o", "wide", "-n", kube.namespace)
    header, row = wide.stdout.splitlines()[:2]
    assert "VERSIONS" in header and "SIZES" in header, wide.stdout
    assert row.split()[-3:-1] == ["v1", "5.0MiB"], wide.stdout
    # The tick finds the same commit: no round, said on Catalog.
    body = await kube.wait(
        "ModelSync",
        "sync",
        lambda b: condition(b, "Catalog").get("reason") == "ScheduleSkipped",
        within=40,
        what="a skipped tick",
    )
    dataset = await kube.dataset(body["status"]["datasetName"])
    assert dataset is not None and dataset["spec"]["dataSyncRound"] == 1
    # A new commit: the next tick starts round 2, which fetches it.
    second = repo.push({**WEIGHTS, "extra.json": 10})
    body = await kube.wait(
        "ModelSync",
        "sync",
        lambda b: (
            (b["status"].get("catalog") or {}).get("revision") == second
            and b["status"].get("datasetRound") == 2
            and b["status"].get("phase") == "READY"
        ),
        within=60,
        what="round 2 of the new commit READY",
    )
    assert body["status"]["catalog"]["files"] == 3
    events = await kube.wait_events(
        "sync", lambda found: sum(e.reason == "Synced" for e in found) >= 2, within=15
    )
    assert sum(e.reason == "Synced" for e in events) == 2
    assert any(e.reason == "RoundStarted" and "(scheduled)" in e.message for e in events)
