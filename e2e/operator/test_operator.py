"""The operator as a whole: crash and restart mid-rollout, Secret values kept out of everything,
an idle cluster left alone, metrics."""

from __future__ import annotations

import asyncio
import json
import re
import secrets
import time
from collections import Counter
from datetime import UTC, datetime
from typing import Any

import pytest
from kubernetes.aio.client import ApiClient, BatchV1Api

from e2e.helpers import custom_object
from e2e.operator.conftest import OperatorEnv
from e2e.operator.kube import Kube, condition
from modelfs.testing.controlplane import ControlPlane

WRITE_VERBS = {"create", "update", "patch", "delete", "deletecollection"}


async def all_ready(kube: Kube, names: list[str]) -> bool:
    listed = await kube.custom.list_namespaced_custom_object(
        "model.samzong.dev", "v1", kube.namespace, "modelsyncs"
    )
    items = custom_object(listed)["items"]
    phases = {i["metadata"]["name"]: (i.get("status") or {}).get("phase") for i in items}
    return all(phases.get(name) == "READY" for name in names)


async def test_killed_mid_rollout_of_50_then_restarted_converges(
    kube: Kube, operator_env: OperatorEnv
) -> None:
    versions = {f"v{i}": {"repo": f"https://files.example.com/m/{i}/"} for i in range(50)}
    await kube.create("ModelSource", "src", {"type": "HTTP"})
    await kube.create("Model", "mdl", {"sourceRef": "src", "versionConfigs": versions})
    names = [f"sync-{i}" for i in range(50)]
    await asyncio.gather(
        *(
            kube.create("ModelSync", name, {"modelRef": "mdl", "version": f"v{i}"})
            for i, name in enumerate(names)
        )
    )
    for _ in range(100):  # kill it once the rollout is under way, not before
        if await kube.datasets():
            break
        await asyncio.sleep(0.05)
    operator_env.operator.kill()
    created_while_up = len(await kube.datasets())
    operator_env.operator.start()
    deadline = time.monotonic() + 120
    while not await all_ready(kube, names):
        assert time.monotonic() < deadline, "not every ModelSync READY after the restart"
        await asyncio.sleep(0.5)

    datasets = await kube.datasets()
    syncs = {
        i["metadata"]["name"]: i
        for i in custom_object(
            await kube.custom.list_namespaced_custom_object(
                "model.samzong.dev", "v1", kube.namespace, "modelsyncs"
            )
        )["items"]
    }
    assert len(datasets) == 50, f"{len(datasets)} Datasets for 50 ModelSyncs"
    owners: Counter[str] = Counter()
    for dataset in datasets:
        refs = dataset["metadata"].get("ownerReferences") or []
        assert len(refs) == 1, f"{dataset['metadata']['name']} has owners {refs}"
        owner = syncs[refs[0]["name"]]
        assert refs[0]["uid"] == owner["metadata"]["uid"]
        assert owner["status"]["datasetName"] == dataset["metadata"]["name"]
        assert dataset["spec"]["dataSyncRound"] == 1  # the restart started no extra round
        owners[refs[0]["name"]] += 1
    assert set(owners) == set(names) and set(owners.values()) == {1}
    print(f"\nkilled with {created_while_up}/50 Datasets created; converged after restart")


async def test_secret_values_are_in_no_object_event_or_log(
    kube: Kube, operator_env: OperatorEnv, k8s_api: ApiClient
) -> None:
    token, access, secret_key = (f"canary-{secrets.token_hex(12)}" for _ in range(3))
    await kube.secret("hf", {"token": token})
    await kube.secret("s3", {"access-key": access, "secret-key": secret_key})
    await kube.secret("half", {"access-key": access})
    await kube.create("ModelSource", "hf", {"type": "HUGGING_FACE", "secretRef": "hf"})
    await kube.create(
        "ModelSource", "s3", {"type": "S3", "config": {"region": "us-east-1"}, "secretRef": "s3"}
    )
    await kube.create(
        "ModelSource",
        "half",
        {"type": "S3", "config": {"region": "us-east-1"}, "secretRef": "half"},
    )
    for source, repo in (("hf", "org/model"), ("s3", "bucket/dir"), ("half", "bucket/dir")):
        await kube.create(
            "Model", source, {"sourceRef": source, "versionConfigs": {"v1": {"repo": repo}}}
        )
        await kube.create("ModelSync", source, {"modelRef": source, "version": "v1"})
    await kube.wait_phase("hf", "READY")
    await kube.wait_phase("s3", "READY")
    half = await kube.wait_phase("half", "FAILED")
    assert condition(half, "Ready")["reason"] == "SecretKeyMissing"

    custom, batch = kube.custom, BatchV1Api(k8s_api)
    dumps: list[Any] = [await kube.datasets()]
    for plural in ("modelsources", "models", "modelsyncs"):
        dumps.append(
            await custom.list_namespaced_custom_object(
                "model.samzong.dev", "v1", kube.namespace, plural
            )
        )
    dumps.append([e.to_dict() for e in await kube.events()])
    dumps.append(
        (await kube.core.list_namespaced_persistent_volume_claim(kube.namespace)).to_dict()
    )
    dumps.append((await kube.core.list_namespaced_config_map(kube.namespace)).to_dict())
    dumps.append((await batch.list_namespaced_job(kube.namespace)).to_dict())
    text = json.dumps(dumps, default=str) + operator_env.operator.log_text()
    for value in (token, access, secret_key):
        assert value not in text


async def test_an_idle_cluster_sees_no_writes_from_the_operator(
    kube: Kube, operator_env: OperatorEnv, k8s_control_plane: ControlPlane
) -> None:
    await kube.create("ModelSource", "src", {"type": "HTTP", "config": {"syncMode": "copy"}})
    await kube.create(
        "Model", "mdl", {"sourceRef": "src", "versionConfigs": {"v1": {"repo": "https://h/x/"}}}
    )
    await kube.create("ModelSync", "sync", {"modelRef": "mdl", "version": "v1"})
    await kube.create(
        "ModelSync", "bad", {"modelRef": "mdl", "version": "v9"}
    )  # a refused one must be quiet too
    await kube.wait_phase("sync", "READY")
    await kube.wait_phase("bad", "FAILED")
    await asyncio.sleep(2)  # let the last status writes land
    start = datetime.now(UTC)
    await asyncio.sleep(35)  # longer than the resync period
    end = datetime.now(UTC)
    writes = [
        entry
        for entry in audit_entries(k8s_control_plane)
        if entry["user"]["username"] == operator_env.user
        and entry["verb"] in WRITE_VERBS
        and start <= stamp(entry) <= end
    ]
    assert writes == [], [(w["verb"], w["requestURI"]) for w in writes]


def stamp(entry: dict[str, Any]) -> datetime:
    return datetime.fromisoformat(entry["requestReceivedTimestamp"].replace("Z", "+00:00"))


def audit_entries(control_plane: ControlPlane) -> list[dict[str, Any]]:
    entries = []
    for line in control_plane.audit_log.read_text().splitlines():
        entry = json.loads(line)
        if entry.get("stage") == "ResponseComplete":
            entries.append(entry)
    return entries


async def test_metrics_count_reconciles_phases_and_applies(
    kube: Kube, operator_env: OperatorEnv
) -> None:
    await kube.create("ModelSource", "src", {"type": "HTTP"})
    await kube.create(
        "Model", "mdl", {"sourceRef": "src", "versionConfigs": {"v1": {"repo": "https://h/x/"}}}
    )
    await kube.create("ModelSync", "sync", {"modelRef": "mdl", "version": "v1"})
    await kube.wait_phase("sync", "READY")
    text = operator_env.operator.metrics()

    def value(pattern: str) -> float:
        found = re.search(rf"^{pattern} ([0-9.e+]+)$", text, re.MULTILINE)
        assert found, f"{pattern} not in /metrics"
        return float(found.group(1))

    assert value(r'modelfs_reconciles_total\{kind="ModelSync"\}') >= 1
    assert value(r'modelfs_modelsyncs\{phase="READY"\}') >= 1
    assert value(r'modelfs_dataset_applies_total\{cause="create"\}') >= 1
    assert value(r"modelfs_sync_duration_seconds_count") >= 1
    assert "modelfs_retries_total" in text and "modelfs_reconcile_errors_total" in text


@pytest.mark.parametrize("fmt", ["json"])
def test_json_logs_carry_structured_fields(fmt: str, tmp_path: Any) -> None:
    import logging

    from modelfs.logs import configure

    configure(fmt)
    stream = logging.getLogger().handlers[-1]
    record = logging.LogRecord(
        "modelfs.modelsync", logging.INFO, "", 0, "Applied Dataset", (), None
    )
    record.dataset = "m-v1"
    line = stream.format(record)
    assert json.loads(line)["dataset"] == "m-v1"
    assert json.loads(line)["message"] == "Applied Dataset"
