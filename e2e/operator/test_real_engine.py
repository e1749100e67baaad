"""What the real BaizeAI/dataset controller showed that the fake hid (issue: B1-B6), one test each.

Each test here failed before its fix when run on the real controller (`--dataset-controller=real`,
the default). They need what only the real one does: the spec write-back of its finalizer Update,
failed rounds without an end time, no Job for PVC/NFS/REFERENCE.
"""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime
from typing import Any

import pytest
from kubernetes.aio.client import ApiClient, V1Namespace, V1PersistentVolumeClaim

from e2e.operator.conftest import OperatorEnv
from e2e.operator.kube import DATASETS, Kube, condition
from modelfs.testing.controlplane import ControlPlane

FAIL_ROUNDS = "fake.dataset.baizeai.io/fail-rounds"
ROUND_DURATION = "fake.dataset.baizeai.io/round-duration"
WRITES = {"create", "update", "patch", "delete"}


@pytest.fixture(autouse=True)
def real_engine_only(request: pytest.FixtureRequest) -> None:
    if request.config.getoption("--dataset-controller") != "real":
        pytest.skip("shows what the real Dataset controller does (--dataset-controller=real)")


def writes(
    control_plane: ControlPlane, resource: str, namespace: str, since: datetime
) -> list[dict[str, Any]]:
    """The audit entries of every write request on `resource` in `namespace` since `since`."""
    found = []
    for entry in control_plane.audit_events():
        ref = entry.get("objectRef") or {}
        if (
            entry.get("stage") == "ResponseComplete"
            and entry.get("verb") in WRITES
            and ref.get("resource") == resource
            and ref.get("namespace") == namespace
            and received(entry) >= since
        ):
            found.append(entry)
    return found


def received(entry: dict[str, Any]) -> datetime:
    return datetime.fromisoformat(entry["requestReceivedTimestamp"].replace("Z", "+00:00"))


def user_of(entry: dict[str, Any]) -> str:
    return str(entry.get("user", {}).get("username", ""))


def dataset_writes(
    control_plane: ControlPlane, user: str, namespace: str, since: datetime
) -> list[str]:
    """The operator's write requests on Datasets of `namespace` since `since` (audit log)."""
    return [
        f"{entry['verb']} {entry['requestURI']}"
        for entry in writes(control_plane, DATASETS[2], namespace, since)
        if user_of(entry) == user
    ]


async def hugging_face_sync(kube: Kube, storage: dict[str, Any] | None = None) -> None:
    await kube.create("ModelSource", "hf", {"type": "HUGGING_FACE"})
    spec: dict[str, Any] = {
        "sourceRef": "hf",
        "versionConfigs": {"v2.5.0": {"repo": "Qwen/Qwen2.5-0.5B"}},
    }
    if storage is not None:
        spec["storage"] = storage
    await kube.create("Model", "qwen", spec)
    await kube.create("ModelSync", "sync", {"modelRef": "qwen", "version": "v2.5.0"})


async def test_b1_b2_the_finalizer_write_back_is_not_reapplied_nor_reverted(
    kube: Kube, operator_env: OperatorEnv, k8s_control_plane: ControlPlane
) -> None:
    """B1: a Dataset with a volumeClaimTemplate was re-applied every few seconds, because the
    controller's finalizer Update writes empty `resources`/`metadata`/`status` into the spec.
    B2: every new Dataset got DatasetUpdated and 'DatasetReverted: Reverted a hand edit'."""
    start = datetime.now(UTC)
    storage = {"size": "20Gi", "accessModes": ["ReadWriteOnce"]}
    await hugging_face_sync(kube, storage)
    await kube.wait_phase("sync", "READY", within=90)
    dataset = await kube.dataset("qwen-v2.5.0")
    assert dataset is not None
    # The write-back happened: the real controller's Update left its empty shells in the spec.
    template = dataset["spec"]["volumeClaimTemplate"]
    assert template.get("metadata") == {} and template.get("status") == {}, template
    await asyncio.sleep(12)  # two of the controller's 5 s polls, and its status writes
    writes = dataset_writes(k8s_control_plane, operator_env.user, kube.namespace, start)
    assert len(writes) == 1, writes  # the one apply that created it
    reasons = [e.reason for e in await kube.events("sync")]
    assert "DatasetUpdated" not in reasons and "DatasetReverted" not in reasons, reasons


async def test_b3_the_resync_posts_events_and_rechecks_secrets(kube: Kube) -> None:
    """B3: an Event posted from the resync raised LookupError (kopf's event queue exists only in
    handlers), which stopped the resync: a deleted Secret went unnoticed for good."""
    await kube.secret("hf-token", {"token": "hf_canary"})
    await kube.create("ModelSource", "hf", {"type": "HUGGING_FACE", "secretRef": "hf-token"})
    await kube.wait(
        "ModelSource", "hf", lambda b: condition(b, "Ready").get("status") == "True", within=30
    )
    await kube.core.delete_namespaced_secret("hf-token", kube.namespace)
    # Nothing watches Secrets: the resync's re-check (every 60 s) must find it.
    source = await kube.wait(
        "ModelSource",
        "hf",
        lambda b: condition(b, "Ready").get("reason") == "SecretMissing",
        within=100,
        what="SecretMissing from the resync",
    )
    assert condition(source, "Ready")["status"] == "False"
    events = await kube.wait_events(
        "hf", lambda found: any(e.reason == "SecretMissing" for e in found)
    )
    assert any(e.reason == "SecretMissing" and e.type == "Warning" for e in events)


async def test_b4_a_reference_dataset_creation_posts_its_event(
    kube: Kube, operator_env: OperatorEnv, k8s_api: ApiClient
) -> None:
    """B4: creating a REFERENCE Dataset raised UnboundLocalError and lost DatasetCreated (the
    autouse log check fails this test on any Traceback, too)."""
    await kube.create("ModelSource", "src", {"type": "HTTP"})
    await kube.create(
        "Model",
        "mdl",
        {
            "sourceRef": "src",
            "versionConfigs": {"v1": {"repo": "https://h/x/"}},
            # every namespace, written explicitly (an empty selector is refused)
            "share": {
                "namespaceSelector": {
                    "matchExpressions": [
                        {"key": "kubernetes.io/metadata.name", "operator": "Exists"}
                    ]
                }
            },
        },
    )
    await kube.create("ModelSync", "sync", {"modelRef": "mdl", "version": "v1"})
    await kube.wait_phase("sync", "READY", within=60)
    consumer_ns = f"{kube.namespace[:55]}-c"
    await kube.core.create_namespace(
        V1Namespace.model_validate({"metadata": {"name": consumer_ns}})
    )
    try:
        consumer = Kube(k8s_api, consumer_ns)
        await consumer.create(
            "ModelReference",
            "ref",
            {"modelRef": {"namespace": kube.namespace, "name": "mdl"}, "version": "v1"},
        )
        ref = await consumer.wait(
            "ModelReference",
            "ref",
            lambda b: (b.get("status") or {}).get("phase") == "READY",
            within=60,
            what="READY",
        )
        assert ref["status"]["pvcName"]
        events = await consumer.wait_events(
            "ref", lambda found: any(e.reason == "DatasetCreated" for e in found)
        )
        created = [e for e in events if e.reason == "DatasetCreated"]
        assert len(created) == 1, [(e.reason, e.message) for e in events]
        assert f"reading {kube.namespace}/mdl-v1" in created[0].message
    finally:
        await kube.core.delete_namespace(consumer_ns)


async def test_b5_the_retry_backoff_counts_from_the_failure(kube: Kube) -> None:
    """B5: a failed round has no endTime, so the backoff was counted from the round's start: a
    loader slower to fail than the backoff was retried at once, and FAILED never showed."""
    await kube.annotate_namespace({FAIL_ROUNDS: "1", ROUND_DURATION: "12s"})
    await kube.create("ModelSource", "src", {"type": "HTTP"})
    await kube.create(
        "Model", "mdl", {"sourceRef": "src", "versionConfigs": {"v1": {"repo": "https://h/x/"}}}
    )
    await kube.create(
        "ModelSync", "sync", {"modelRef": "mdl", "version": "v1", "retry": {"backoff": "10s"}}
    )
    failed = await kube.wait_phase("sync", "FAILED", within=90)
    seen = time.monotonic()
    assert condition(failed, "Ready")["reason"] == "RoundFailed"
    assert failed["status"]["lastFailureTime"]
    assert failed["status"]["datasetRound"] == 1
    ready = await kube.wait(
        "ModelSync",
        "sync",
        lambda b: b["status"].get("phase") == "READY" and b["status"].get("datasetRound") == 2,
        within=120,
        what="READY after the retry",
    )
    assert time.monotonic() - seen >= 8, "retried before its backoff"
    assert ready["status"]["attempts"] == 0
    events = await kube.events("sync")
    retried = [e for e in events if e.reason == "RoundRetried"]
    assert len(retried) == 1
    failure = datetime.fromisoformat(ready["status"]["lastFailureTime"].replace("Z", "+00:00"))
    waited = (retried[0].first_timestamp - failure).total_seconds()
    assert waited >= 9, f"retried {waited:.1f}s after the failure, backoff 10s"


@pytest.mark.parametrize("kind", ["PVC", "REFERENCE"])
async def test_b6_a_round_trigger_on_a_type_without_loader_job_ends_clearly(
    kube: Kube, kind: str
) -> None:
    """B6: raising syncRound on a REFERENCE (or PVC, NFS) ModelSync left it PENDING 'waiting
    for the loader Job' forever, and the REFERENCE Dataset FAILED for good."""
    if kind == "PVC":
        await kube.core.create_namespaced_persistent_volume_claim(
            kube.namespace,
            V1PersistentVolumeClaim.model_validate(
                {
                    "metadata": {"name": "weights"},
                    "spec": {
                        "accessModes": ["ReadWriteMany"],
                        "resources": {"requests": {"storage": "1Gi"}},
                    },
                }
            ),
        )
        repo = "weights/models/qwen"
    else:  # a shared Dataset of this namespace, as the platform team makes one
        await kube.custom.create_namespaced_custom_object(
            *DATASETS[:2],
            kube.namespace,
            DATASETS[2],
            {
                "apiVersion": f"{DATASETS[0]}/{DATASETS[1]}",
                "kind": "Dataset",
                "metadata": {"name": "shared"},
                "spec": {
                    "source": {"type": "HTTP", "uri": "https://h/shared/"},
                    "share": True,
                },
            },
        )
        repo = f"{kube.namespace}/shared"
    await kube.create("ModelSource", "src", {"type": kind})
    await kube.create(
        "Model", "mdl", {"sourceRef": "src", "versionConfigs": {"v1": {"repo": repo}}}
    )
    await kube.create("ModelSync", "sync", {"modelRef": "mdl", "version": "v1"})
    await kube.wait_phase("sync", "READY", within=90)

    await kube.patch("ModelSync", "sync", {"spec": {"syncRound": 2}})
    sync = await kube.wait(
        "ModelSync",
        "sync",
        lambda b: b["status"].get("observedSyncRound") == 2,
        within=30,
        what="trigger 2 served",
    )
    rounds = condition(sync, "Rounds")
    assert (rounds.get("status"), rounds.get("reason")) == ("False", "NoLoaderJob"), rounds
    assert "syncRound 2" in rounds["message"] and kind in rounds["message"]
    await asyncio.sleep(8)  # the Dataset controller's next polls change nothing
    again = await kube.get("ModelSync", "sync")
    assert again is not None and again["status"]["phase"] == "READY", again
    assert condition(again, "Ready")["status"] == "True"
    dataset = await kube.dataset("mdl-v1")
    assert dataset is not None and dataset["spec"]["dataSyncRound"] == 1
    assert dataset["status"]["phase"] == "READY"
    events = await kube.wait_events(
        "sync", lambda found: any(e.reason == "RoundNotStarted" for e in found)
    )
    assert any(e.reason == "RoundNotStarted" for e in events)


def status_writes(
    control_plane: ControlPlane, resource: str, namespace: str, since: datetime
) -> list[tuple[datetime, str]]:
    """(received, user) of every status write on `resource` in `namespace` since `since`."""
    return [
        (received(entry), user_of(entry))
        for entry in writes(control_plane, resource, namespace, since)
        if (entry.get("objectRef") or {}).get("subresource") == "status"
    ]


async def test_a_new_modelsync_shows_pending_at_once_and_its_first_status_says_processing(
    kube: Kube, operator_env: OperatorEnv, k8s_control_plane: ControlPlane
) -> None:
    """The API server shows a new ModelSync as PENDING (the CRD's default): modelfs writes its
    first status once the Dataset has started, not a PENDING the Dataset leaves at once."""
    start = datetime.now(UTC)
    await kube.create("ModelSource", "http", {"type": "HTTP", "catalog": "Disabled"})
    versions = {"v1": {"repo": "https://files.example.com/gpt2/"}}
    await kube.create("Model", "gpt2", {"sourceRef": "http", "versionConfigs": versions})
    created = await kube.create("ModelSync", "sync", {"modelRef": "gpt2", "version": "v1"})
    assert created["status"] == {"phase": "PENDING"}, created.get("status")
    await kube.wait_phase("sync", "READY", within=90)
    syncs = status_writes(k8s_control_plane, "modelsyncs", kube.namespace, start)
    ours = [moment for moment, user in syncs if user == operator_env.user]
    started = [
        moment
        for moment, user in status_writes(k8s_control_plane, "datasets", kube.namespace, start)
        if user != operator_env.user
    ]
    assert ours and started, (syncs, started)
    assert ours[0] > started[0], "the first ModelSync status came before the Dataset had one"
    synced = await kube.get("ModelSync", "sync")
    assert synced is not None and synced["status"]["datasetName"] == "gpt2-v1"
