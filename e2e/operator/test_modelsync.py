"""ModelSync scenarios against the real API server, the operator and the fake Dataset controller."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from kubernetes.aio.client import V1Namespace, V1PersistentVolumeClaim

from e2e.helpers import custom_object
from e2e.operator.kube import Kube, condition

FAIL_ROUNDS = "fake.dataset.baizeai.io/fail-rounds"

# One realistic source per type: (type, config, secret data, repo, expected URI).
SOURCES: list[tuple[str, dict[str, str], dict[str, str] | None, str, str]] = [
    (
        "HUGGING_FACE",
        {"endpoint": "https://hf-mirror.com", "include": "*.safetensors"},
        {"token": "hf_secret_value_1"},
        "Qwen/Qwen2.5-0.5B",
        "huggingface://Qwen/Qwen2.5-0.5B",
    ),
    (
        "MODEL_SCOPE",
        {"repoType": "MODEL"},
        {"token": "ms-secret"},
        "qwen/Qwen2.5-7B",
        "modelscope://qwen/Qwen2.5-7B",
    ),
    (
        "S3",
        {"provider": "MINIO", "endpoint": "http://minio.storage:9000"},
        {"access-key": "AKIAEXAMPLE", "secret-key": "s3-secret-value"},
        "models/llama-3-8b",
        "s3://models/llama-3-8b",
    ),
    (
        "HTTP",
        {"endpoint": "https://files.example.com/models"},
        None,
        "gpt2/",
        "https://files.example.com/models/gpt2/",
    ),
    (
        "GIT",
        {"endpoint": "https://git.example.com", "depth": "1"},
        None,
        "ml/tiny.git",
        "https://git.example.com/ml/tiny.git",
    ),
    ("PVC", {}, None, "shared-weights/llama", "pvc://shared-weights/llama"),
    (
        "NFS",
        {},
        None,
        "nfs.storage.internal/exports/qwen",
        "nfs://nfs.storage.internal/exports/qwen",
    ),
    ("CONDA", {"python": "3.11"}, None, "vllm-env", "conda://vllm-env?python=3.11"),
]


async def model_and_source(
    kube: Kube,
    source_type: str = "HTTP",
    config: dict[str, str] | None = None,
    repo: str = "https://files.example.com/gpt2/",
    versions: dict[str, Any] | None = None,
    secret: str | None = None,
) -> None:
    spec: dict[str, Any] = {"type": source_type, "config": config or {}}
    if secret:
        spec["secretRef"] = secret
    await kube.create("ModelSource", "src", spec)
    await kube.create(
        "Model", "mdl", {"sourceRef": "src", "versionConfigs": versions or {"v1": {"repo": repo}}}
    )


@pytest.mark.parametrize(
    ("source_type", "config", "secret", "repo", "uri"), SOURCES, ids=[s[0] for s in SOURCES]
)
async def test_each_source_type_reaches_ready(
    kube: Kube,
    source_type: str,
    config: dict[str, str],
    secret: dict[str, str] | None,
    repo: str,
    uri: str,
) -> None:
    if secret:
        await kube.secret("creds", secret)
    if source_type == "PVC":  # the catalog step refuses a claim that does not exist
        claim = {
            "metadata": {"name": repo.split("/")[0]},
            "spec": {
                "accessModes": ["ReadWriteMany"],
                "resources": {"requests": {"storage": "1Gi"}},
            },
        }
        await kube.core.create_namespaced_persistent_volume_claim(
            kube.namespace, V1PersistentVolumeClaim.model_validate(claim)
        )
    await model_and_source(kube, source_type, config, repo, secret="creds" if secret else None)
    await kube.create("ModelSync", "sync", {"modelRef": "mdl", "version": "v1"})
    sync = await kube.wait_phase("sync", "READY")
    assert sync["status"]["source"] == {"type": source_type, "uri": uri}
    dataset = await kube.dataset("mdl-v1")
    assert dataset is not None
    assert dataset["spec"]["source"]["uri"] == uri
    assert dataset["spec"].get("secretRef") == ("creds" if secret else None)


async def test_a_reference_source_reads_a_shared_dataset(kube: Kube) -> None:
    """REFERENCE as a ModelSource type: the Dataset operator's own sharing rules apply."""
    other = f"{kube.namespace[:50]}-src"
    await kube.core.create_namespace(V1Namespace.model_validate({"metadata": {"name": other}}))
    try:
        await kube.custom.create_namespaced_custom_object(
            "dataset.baizeai.io",
            "v1alpha1",
            other,
            "datasets",
            {
                "apiVersion": "dataset.baizeai.io/v1alpha1",
                "kind": "Dataset",
                "metadata": {"name": "qwen-v1"},
                "spec": {
                    "source": {"type": "HTTP", "uri": "https://files.example.com/qwen/"},
                    "share": True,
                },
            },
        )
        for _ in range(100):  # the Dataset operator does not wait for the source; modelfs users do
            source = custom_object(
                await kube.custom.get_namespaced_custom_object(
                    "dataset.baizeai.io", "v1alpha1", other, "datasets", "qwen-v1"
                )
            )
            if (source.get("status") or {}).get("phase") == "READY":
                break
            await asyncio.sleep(0.2)
        await model_and_source(kube, "REFERENCE", {}, f"{other}/qwen-v1")
        await kube.create("ModelSync", "sync", {"modelRef": "mdl", "version": "v1"})
        sync = await kube.wait_phase("sync", "READY")
        assert sync["status"]["source"] == {
            "type": "REFERENCE",
            "uri": f"dataset://{other}/qwen-v1",
        }
    finally:
        await kube.core.delete_namespace(other)


async def test_raising_sync_round_starts_exactly_one_round(kube: Kube) -> None:
    await model_and_source(kube)
    await kube.create("ModelSync", "sync", {"modelRef": "mdl", "version": "v1"})
    await kube.wait_phase("sync", "READY")
    await kube.patch("ModelSync", "sync", {"spec": {"syncRound": 5}})
    sync = await kube.wait(
        "ModelSync",
        "sync",
        lambda b: b["status"].get("observedSyncRound") == 5 and b["status"].get("phase") == "READY",
        what="trigger 5 served and READY",
    )
    assert sync["status"]["datasetRound"] == 2
    dataset = await kube.dataset("mdl-v1")
    assert dataset is not None and dataset["spec"]["dataSyncRound"] == 2
    rounds = [r["round"] for r in dataset["status"]["syncRoundStatuses"]]
    assert rounds == [1, 2]
    events = await kube.wait_events(
        "sync", lambda found: any(e.reason == "RoundStarted" for e in found)
    )
    started = [e for e in events if e.reason == "RoundStarted"]
    assert len(started) == 1 and "round 2" in started[0].message


async def test_a_trigger_during_a_round_waits_for_it(kube: Kube) -> None:
    await kube.annotate_namespace({"fake.dataset.baizeai.io/round-duration": "3s"})
    await model_and_source(kube)
    await kube.create("ModelSync", "sync", {"modelRef": "mdl", "version": "v1"})
    await kube.wait_phase("sync", "PROCESSING")
    await kube.patch("ModelSync", "sync", {"spec": {"syncRound": 2}})
    await asyncio.sleep(1)
    dataset = await kube.dataset("mdl-v1")
    assert dataset is not None and dataset["spec"]["dataSyncRound"] == 1  # not while running
    sync = await kube.wait(
        "ModelSync",
        "sync",
        lambda b: b["status"].get("datasetRound") == 2 and b["status"].get("phase") == "READY",
        within=20,
        what="round 2 READY",
    )
    dataset = await kube.dataset("mdl-v1")
    assert dataset is not None
    statuses = dataset["status"]["syncRoundStatuses"]
    assert statuses[0]["endTime"] <= statuses[1]["startTime"]  # never two Jobs at once
    assert sync["status"]["observedSyncRound"] == 2


async def test_schedule_starts_a_new_round(kube: Kube) -> None:
    await model_and_source(kube)
    await kube.create(
        "ModelSync", "sync", {"modelRef": "mdl", "version": "v1", "schedule": {"interval": "10s"}}
    )
    await kube.wait_phase("sync", "READY")
    sync = await kube.wait(
        "ModelSync",
        "sync",
        lambda b: (b["status"].get("datasetRound") or 0) >= 2 and b["status"]["phase"] == "READY",
        within=40,
        what="a scheduled round",
    )
    assert sync["status"]["observedSyncRound"] == 1  # the schedule is not a user trigger
    events = await kube.wait_events(
        "sync", lambda found: any("scheduled" in (e.message or "") for e in found)
    )
    assert any("scheduled" in (e.message or "") for e in events)


async def test_failed_rounds_are_retried_up_to_the_limit(kube: Kube) -> None:
    await kube.annotate_namespace({FAIL_ROUNDS: "all"})
    await model_and_source(kube)
    await kube.create(
        "ModelSync",
        "sync",
        {"modelRef": "mdl", "version": "v1", "retry": {"limit": 2, "backoff": "1s"}},
    )
    sync = await kube.wait(
        "ModelSync",
        "sync",
        lambda b: condition(b, "Ready").get("reason") == "RetryLimitReached",
        within=40,
        what="RetryLimitReached",
    )
    assert sync["status"]["phase"] == "FAILED"
    assert sync["status"]["attempts"] == 2
    assert sync["status"]["datasetRound"] == 3  # the first round and two retries
    events = await kube.wait_events(
        "sync", lambda found: sum(e.reason == "RoundRetried" for e in found) >= 2
    )
    retried = [e for e in events if e.reason == "RoundRetried"]
    assert len(retried) == 2
    assert "round 3 failed" in condition(sync, "Ready")["message"]


async def test_a_retry_that_succeeds_resets_attempts(kube: Kube) -> None:
    await kube.annotate_namespace({FAIL_ROUNDS: "1"})
    await model_and_source(kube)
    await kube.create(
        "ModelSync", "sync", {"modelRef": "mdl", "version": "v1", "retry": {"backoff": "1s"}}
    )
    sync = await kube.wait(
        "ModelSync",
        "sync",
        lambda b: (
            b.get("status", {}).get("phase") == "READY"
            and b.get("status", {}).get("datasetRound") == 2
        ),
        within=30,
        what="READY after one retry",
    )
    assert sync["status"]["attempts"] == 0


async def test_delete_policy_delete_removes_the_dataset(kube: Kube) -> None:
    await model_and_source(kube)
    await kube.create("ModelSync", "sync", {"modelRef": "mdl", "version": "v1"})
    await kube.wait_phase("sync", "READY")
    await kube.delete("ModelSync", "sync")
    for _ in range(150):
        if await kube.dataset("mdl-v1") is None:
            break
        await asyncio.sleep(0.2)
    assert await kube.dataset("mdl-v1") is None  # garbage collection followed the owner


async def test_delete_policy_retain_keeps_the_dataset_without_owner(kube: Kube) -> None:
    await model_and_source(kube)
    await kube.create(
        "ModelSync", "sync", {"modelRef": "mdl", "version": "v1", "deletionPolicy": "Retain"}
    )
    synced = await kube.wait_phase("sync", "READY")
    assert "model.samzong.dev/finalizer" in synced["metadata"]["finalizers"]
    await kube.delete("ModelSync", "sync")
    for _ in range(100):
        if await kube.get("ModelSync", "sync") is None:
            break
        await asyncio.sleep(0.2)
    assert await kube.get("ModelSync", "sync") is None
    await asyncio.sleep(2)  # give the garbage collector its chance to get it wrong
    dataset = await kube.dataset("mdl-v1")
    assert dataset is not None
    assert not dataset["metadata"].get("ownerReferences")


async def test_a_dataset_owned_by_someone_else_is_never_taken_over(kube: Kube) -> None:
    await model_and_source(kube)
    await kube.custom.create_namespaced_custom_object(
        "dataset.baizeai.io",
        "v1alpha1",
        kube.namespace,
        "datasets",
        {
            "apiVersion": "dataset.baizeai.io/v1alpha1",
            "kind": "Dataset",
            "metadata": {"name": "mdl-v1"},
            "spec": {"source": {"type": "HTTP", "uri": "https://elsewhere.example.com/x/"}},
        },
    )
    await kube.create("ModelSync", "sync", {"modelRef": "mdl", "version": "v1"})
    sync = await kube.wait_phase("sync", "FAILED")
    ready = condition(sync, "Ready")
    assert ready["reason"] == "DatasetConflict"
    assert "mdl-v1" in ready["message"] and "not owned by modelfs" in ready["message"]
    dataset = await kube.dataset("mdl-v1")
    assert dataset is not None
    assert dataset["spec"]["source"]["uri"] == "https://elsewhere.example.com/x/"


async def test_a_second_modelsync_for_the_same_version_is_refused(kube: Kube) -> None:
    await model_and_source(kube)
    await kube.create("ModelSync", "first", {"modelRef": "mdl", "version": "v1"})
    await kube.wait_phase("first", "READY")
    await kube.create("ModelSync", "second", {"modelRef": "mdl", "version": "v1"})
    second = await kube.wait_phase("second", "FAILED")
    ready = condition(second, "Ready")
    assert ready["reason"] == "DuplicateModelSync" and "'first'" in ready["message"]
    assert len(await kube.datasets()) == 1
    first = await kube.get("ModelSync", "first")
    assert first is not None and first["status"]["phase"] == "READY"


async def test_a_source_config_change_reaches_the_dataset_options(kube: Kube) -> None:
    await model_and_source(kube, "S3", {"region": "us-east-1"}, "models/llama")
    await kube.create("ModelSync", "sync", {"modelRef": "mdl", "version": "v1"})
    await kube.wait_phase("sync", "READY")
    await kube.patch("ModelSource", "src", {"spec": {"config": {"syncMode": "copy"}}})
    dataset = None
    for _ in range(100):
        dataset = await kube.dataset("mdl-v1")
        if dataset and dataset["spec"]["source"].get("options", {}).get("syncMode") == "copy":
            break
        await asyncio.sleep(0.2)
    assert dataset is not None
    assert dataset["spec"]["source"]["options"] == {"region": "us-east-1", "syncMode": "copy"}
    assert dataset["spec"]["dataSyncRound"] == 1  # takes effect at the next round, as upstream
    events = await kube.wait_events(
        "sync", lambda found: any(e.reason == "DatasetUpdated" for e in found)
    )
    assert any(e.reason == "DatasetUpdated" for e in events)


async def test_a_version_repo_config_change_reaches_the_dataset(kube: Kube) -> None:
    await model_and_source(kube, "GIT", {}, "https://git.example.com/ml/tiny.git")
    await kube.create("ModelSync", "sync", {"modelRef": "mdl", "version": "v1"})
    await kube.wait_phase("sync", "READY")
    await kube.patch(
        "Model", "mdl", {"spec": {"versionConfigs": {"v1": {"repoConfig": {"commit": "9f2c1e7"}}}}}
    )
    for _ in range(100):
        dataset = await kube.dataset("mdl-v1")
        if dataset and dataset["spec"]["source"].get("options", {}).get("commit") == "9f2c1e7":
            break
        await asyncio.sleep(0.2)
    else:
        pytest.fail("the version's commit did not reach the Dataset")


async def test_missing_secret_and_missing_key_are_reported(kube: Kube) -> None:
    await model_and_source(kube, "S3", {"region": "eu-west-1"}, "models/x", secret="s3-creds")
    await kube.create("ModelSync", "sync", {"modelRef": "mdl", "version": "v1"})
    source = await kube.wait(
        "ModelSource", "src", lambda b: condition(b, "Ready").get("reason") == "SecretMissing"
    )
    assert "'s3-creds'" in condition(source, "Ready")["message"]
    sync = await kube.wait_phase("sync", "FAILED")
    assert condition(sync, "Ready")["reason"] == "SecretMissing"
    assert await kube.datasets() == []

    await kube.secret("s3-creds", {"access-key": "AKIAEXAMPLE"})
    await kube.patch("ModelSource", "src", {"metadata": {"labels": {"poke": "1"}}})
    source = await kube.wait(
        "ModelSource",
        "src",
        lambda b: condition(b, "Ready").get("reason") == "SecretKeyMissing",
        within=90,
    )
    assert "secret-key" in condition(source, "Ready")["message"]
    sync = await kube.wait(
        "ModelSync", "sync", lambda b: condition(b, "Ready").get("reason") == "SecretKeyMissing"
    )


async def test_an_unknown_version_is_reported(kube: Kube) -> None:
    await model_and_source(kube)
    await kube.create("ModelSync", "sync", {"modelRef": "mdl", "version": "v9"})
    sync = await kube.wait_phase("sync", "FAILED")
    resolved = condition(sync, "Resolved")
    assert resolved["reason"] == "VersionNotFound"
    assert "spec.version" in resolved["message"] and "available: v1" in resolved["message"]
    events = await kube.wait_events(
        "sync", lambda found: any(e.reason == "VersionNotFound" for e in found)
    )
    assert any(e.type == "Warning" and e.reason == "VersionNotFound" for e in events)


async def test_a_dataset_deleted_by_hand_is_restored(kube: Kube) -> None:
    await model_and_source(kube)
    await kube.create("ModelSync", "sync", {"modelRef": "mdl", "version": "v1"})
    await kube.wait_phase("sync", "READY")
    before = await kube.dataset("mdl-v1")
    assert before is not None
    await kube.delete_dataset("mdl-v1")
    for _ in range(300):
        after = await kube.dataset("mdl-v1")
        if after and after["metadata"]["uid"] != before["metadata"]["uid"]:
            break
        await asyncio.sleep(0.2)
    else:
        pytest.fail("the Dataset was not put back within a minute")
    await kube.wait_phase("sync", "READY")


async def test_a_dataset_edited_by_hand_is_put_back(kube: Kube) -> None:
    await model_and_source(kube)
    await kube.create("ModelSync", "sync", {"modelRef": "mdl", "version": "v1"})
    await kube.wait_phase("sync", "READY")
    await kube.custom.patch_namespaced_custom_object(
        "dataset.baizeai.io",
        "v1alpha1",
        kube.namespace,
        "datasets",
        "mdl-v1",
        {"spec": {"secretRef": "someone-elses", "source": {"options": {"syncMode": "copy"}}}},
    )
    for _ in range(300):
        dataset = await kube.dataset("mdl-v1")
        if (
            dataset
            and "secretRef" not in dataset["spec"]
            and not dataset["spec"]["source"].get("options")
        ):
            break
        await asyncio.sleep(0.2)
    else:
        pytest.fail("the hand edit was not reverted within a minute")
    events = await kube.wait_events(
        "sync", lambda found: any(e.reason == "DatasetReverted" for e in found)
    )
    assert any(e.reason == "DatasetReverted" for e in events)


async def test_deleting_the_model_leaves_a_clear_condition(kube: Kube) -> None:
    await model_and_source(kube)
    await kube.create("ModelSync", "sync", {"modelRef": "mdl", "version": "v1"})
    await kube.wait_phase("sync", "READY")
    await kube.delete("Model", "mdl")
    sync = await kube.wait(
        "ModelSync", "sync", lambda b: condition(b, "Resolved").get("reason") == "ModelNotFound"
    )
    assert sync["status"]["phase"] == "FAILED"
    assert await kube.dataset("mdl-v1") is not None  # the weights stay
    await kube.delete("ModelSource", "src")
    for _ in range(50):
        if await kube.get("ModelSource", "src") is None:
            break
        await asyncio.sleep(0.2)
    else:
        pytest.fail("the ModelSource was not deleted: no finalizer may hold it")
