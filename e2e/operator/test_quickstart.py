"""The seed README's Quick Start, end to end: the several-pattern include is refused with a way
out, the corrected source syncs to READY."""

from __future__ import annotations

from e2e.operator.kube import Kube, condition
from modelfs.controllers.modelsync import ATTEMPTS_ANNOTATION, SERVED_ROUND_ANNOTATION

HF_CONFIG = {"endpoint": "https://huggingface.co", "exclude": "*.bin"}
QWEN_VERSIONS = {"v2.5.0": {"repo": "qwen/Qwen2.5-7B-Instruct", "repoConfig": {"revision": "main"}}}


async def test_quick_start_as_the_seed_wrote_it_is_refused_then_fixed(kube: Kube) -> None:
    seed_config = {**HF_CONFIG, "include": "*.safetensors,*.json"}
    await kube.create(
        "ModelSource", "huggingface-source", {"type": "HUGGING_FACE", "config": seed_config}
    )
    await kube.create(
        "Model", "qwen-model", {"sourceRef": "huggingface-source", "versionConfigs": QWEN_VERSIONS}
    )
    await kube.create("ModelSync", "qwen-sync", {"modelRef": "qwen-model", "version": "v2.5.0"})

    source = await kube.wait(
        "ModelSource",
        "huggingface-source",
        lambda b: condition(b, "Ready").get("reason") == "InvalidConfig",
        what="Ready=False InvalidConfig",
    )
    ready = condition(source, "Ready")
    assert ready["status"] == "False"
    assert "spec.config.include" in ready["message"]
    assert "ONE glob" in ready["message"] and "exclude" in ready["message"]
    sync = await kube.wait_phase("qwen-sync", "FAILED")
    assert condition(sync, "Resolved")["reason"] == "InvalidConfig"
    assert await kube.datasets() == []  # nothing half-written
    events = await kube.wait_events(
        "huggingface-source", lambda found: any(e.type == "Warning" for e in found)
    )
    warnings = [e for e in events if e.type == "Warning"]
    assert any("ONE glob" in (e.message or "") for e in warnings)

    await kube.patch("ModelSource", "huggingface-source", {"spec": {"config": {"include": None}}})
    sync = await kube.wait_phase("qwen-sync", "READY")
    status = sync["status"]
    assert status["datasetName"] == "qwen-model-v2.5.0"
    assert status["pvcName"] == "qwen-model-v2.5.0"
    assert status["source"] == {
        "type": "HUGGING_FACE",
        "uri": "huggingface://qwen/Qwen2.5-7B-Instruct",
    }
    assert status["observedSyncRound"] == 1 and status["datasetRound"] == 1
    assert "not pinned" in condition(sync, "Resolved")["message"]
    assert condition(sync, "DatasetJob")["reason"] == "JobReady"
    dataset = await kube.dataset("qwen-model-v2.5.0")
    assert dataset is not None
    assert dataset["spec"]["source"]["options"] == HF_CONFIG
    labels = dataset["metadata"]["labels"]
    assert labels["app.kubernetes.io/managed-by"] == "modelfs"
    assert labels["model.samzong.dev/model"] == "qwen-model"
    assert labels["model.samzong.dev/version"] == "v2.5.0"
    (owner,) = dataset["metadata"]["ownerReferences"]
    assert (owner["kind"], owner["name"], owner["controller"]) == ("ModelSync", "qwen-sync", True)
    # Nothing of kopf's lands on a Dataset; modelfs's only annotations are the round record
    # (the syncRound and retries the round serves, written with it); finalizers are the engine's.
    annotations = dataset["metadata"].get("annotations", {})
    assert not any(k.startswith("kopf") for k in annotations)
    ours = {k: v for k, v in annotations.items() if k.startswith("model.samzong.dev")}
    assert ours == {SERVED_ROUND_ANNOTATION: "1", ATTEMPTS_ANNOTATION: "0"}
    assert "model.samzong.dev/finalizer" not in dataset["metadata"].get("finalizers", [])

    model = await kube.wait(
        "Model",
        "qwen-model",
        lambda b: any(
            v.get("phase") == "READY" for v in (b.get("status") or {}).get("versions", [])
        ),
        what="version READY in Model status",
    )
    assert model["status"]["versions"] == [
        {
            "name": "v2.5.0",
            "sync": "qwen-sync",
            "phase": "READY",
            "lastSyncTime": status["lastSyncTime"],
            "size": (status.get("catalog") or {}).get("size") or "-",
        }
    ]
    assert condition(model, "Ready")["status"] == "True"
    source = await kube.wait(
        "ModelSource", "huggingface-source", lambda b: condition(b, "Ready").get("status") == "True"
    )
    assert source["status"]["models"] == 1
