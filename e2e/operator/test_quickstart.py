"""The README's quick start, end to end: its download and workload scripts run as written, in a
fresh shell, on the local control plane with the real Dataset controller. And the seed README's
Quick Start: the several-pattern include is refused with a way out, the corrected source syncs
to READY."""

from __future__ import annotations

import asyncio
import os
import subprocess
import time
from pathlib import Path

import pytest

from e2e.helpers import readme_block
from e2e.operator.conftest import OperatorEnv
from e2e.operator.kube import Kube, condition
from modelfs.controllers.modelsync import ATTEMPTS_ANNOTATION, SERVED_ROUND_ANNOTATION
from modelfs.testing.dataset_engine import DatasetEngine
from modelfs.testing.pytest_plugin import Cluster

REPO = Path(__file__).resolve().parents[2]
NAMESPACE = "llm"


def readme_script(name: str) -> str:
    return readme_block("quickstart-script", name)


def shell(script: str, kubectl: str, kubeconfig: Path, home: Path) -> str:
    """`script` in bash -e from the repository root, as a user's fresh shell (kubectl on PATH)."""
    home.mkdir(parents=True, exist_ok=True)
    env = {
        "HOME": str(home),
        "PATH": os.pathsep.join([os.path.dirname(kubectl), os.environ["PATH"]]),
        "KUBECONFIG": str(kubeconfig),
    }
    done = subprocess.run(
        ["bash", "-e", "-c", script],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, f"$ {script}\n{done.stdout}{done.stderr}"
    return done.stdout


async def test_the_readme_quick_start_runs_as_written(
    kube: Kube,
    operator_env: OperatorEnv,
    k8s_cluster: Cluster,
    kubectl: str,
    tmp_path: Path,
) -> None:
    if not isinstance(operator_env.engine, DatasetEngine) or k8s_cluster.mode != "local":
        pytest.skip("needs the real Dataset controller and its pod simulator (--k8s=local)")
    download = readme_script("download")
    workload = readme_script("workload")
    # The pod simulator runs no containers: there are no logs to read.
    (logs,) = [line for line in workload.splitlines() if line.startswith("kubectl logs ")]
    workload = workload.replace(logs + "\n", "")
    config, home = k8s_cluster.kubeconfig, tmp_path / "home"
    users = Kube(kube.custom.api_client, NAMESPACE)
    try:
        started = time.monotonic()
        out = await asyncio.to_thread(shell, download, kubectl, config, home)
        ready = time.monotonic() - started
        assert "condition met" in out, out
        out += await asyncio.to_thread(shell, workload, kubectl, config, home)
        print(f"\nREADME quick start, steps 3 and 4 as written ({ready:.1f} s to READY):\n{out}")

        sync = await users.get("ModelSync", "qwen")
        assert sync is not None and sync["status"]["phase"] == "READY"
        assert sync["status"]["pvcName"] == "qwen-0.5b-instruct"
        assert "qwen-0.5b-instruct" in out  # the jsonpath line printed the claim
        pod = users.core.api_client.sanitize_for_serialization(
            await users.core.read_namespaced_pod("qwen-files", NAMESPACE)
        )
        assert pod["spec"]["nodeName"]  # placed
        assert pod["status"]["phase"] == "Succeeded"
        (volume,) = [v for v in pod["spec"]["volumes"] if v["name"] == "weights"]
        assert volume["persistentVolumeClaim"] == {
            "claimName": sync["status"]["pvcName"],
            "readOnly": True,
        }
        (container,) = pod["spec"]["containers"]
        (mount,) = [m for m in container["volumeMounts"] if m["name"] == "weights"]
        assert mount["readOnly"] is True
        print(
            f"pod {pod['metadata']['name']} on {pod['spec']['nodeName']}: "
            f"{pod['status']['phase']}, claim {volume['persistentVolumeClaim']}, "
            f"mount {mount['mountPath']} readOnly={mount['readOnly']}"
        )
    finally:
        await asyncio.to_thread(
            shell,
            f"kubectl delete namespace {NAMESPACE} --ignore-not-found --wait=false",
            kubectl,
            config,
            home,
        )


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
