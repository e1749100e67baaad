"""The samples are safe to apply on a real cluster, and agree with the README.

Every Model whose type downloads sizes its PVC (without storage each Dataset asks for the
BaizeAI/dataset operator's default, ReadWriteMany 100Ti); a source that needs infrastructure the
samples do not bring says so; the workload samples mount the claim the minimal sample's
ModelSync names, read-only; and the README uses the samples' sharing label key and the release's
version and tag format."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import yaml

from modelfs import __version__
from modelfs.api.v1.common import SourceType
from modelfs.pkg.dataset.naming import dataset_name
from modelfs.pkg.dataset.sources import RULES

ROOT = Path(__file__).resolve().parent.parent
SAMPLES = ROOT / "config" / "samples"
README = ROOT / "README.md"
CONSUMER_LABEL = "model.samzong.dev/consumer"


def documents(folder: Path) -> list[dict[str, Any]]:
    kustomization = yaml.safe_load((folder / "kustomization.yaml").read_text())
    found: list[dict[str, Any]] = []
    for name in kustomization["resources"]:
        found += [d for d in yaml.safe_load_all((folder / name).read_text()) if d]
    return found


def by_kind(docs: list[dict[str, Any]], kind: str) -> list[dict[str, Any]]:
    return [d for d in docs if d["kind"] == kind]


def test_every_model_that_downloads_sets_its_storage() -> None:
    for folder in (SAMPLES, SAMPLES / "minimal"):
        docs = documents(folder)
        types = {d["metadata"]["name"]: d["spec"]["type"] for d in by_kind(docs, "ModelSource")}
        for model in by_kind(docs, "Model"):
            spec = model["spec"]
            if not RULES[SourceType(types[spec["sourceRef"]])].loader_job:
                continue  # PVC, NFS, REFERENCE: mounted where the data is, nothing downloaded
            for version, config in spec["versionConfigs"].items():
                storage = config.get("storage") or spec.get("storage") or {}
                assert storage.get("size"), (
                    f"{folder.name}: Model {model['metadata']['name']} {version}"
                )


def test_the_shared_dataset_of_the_samples_is_sized() -> None:
    (dataset,) = by_kind(documents(SAMPLES), "Dataset")
    assert dataset["spec"]["volumeClaimTemplate"]["spec"]["resources"]["requests"]["storage"]


def test_sources_that_need_infrastructure_say_so() -> None:
    text = (SAMPLES / "modelsources.yaml").read_text()
    for doc in text.split("\n---\n"):
        if any(host in doc for host in ("example.com", ".internal", ".svc")) or "type: PVC" in doc:
            assert "NEEDS INFRASTRUCTURE" in doc, doc


def test_the_minimal_sample_is_one_public_model() -> None:
    docs = documents(SAMPLES / "minimal")
    assert [d["kind"] for d in docs] == ["ModelSource", "Model", "ModelSync"]
    assert all("namespace" not in d["metadata"] for d in docs)  # follows `-n`
    (source,) = by_kind(docs, "ModelSource")
    assert source["spec"]["config"]["endpoint"] == "https://huggingface.co"
    assert "secretRef" not in source["spec"]


def test_the_workload_mounts_the_minimal_syncs_claim_read_only() -> None:
    (sync,) = by_kind(documents(SAMPLES / "minimal"), "ModelSync")
    claim = dataset_name(sync["spec"]["modelRef"], sync["spec"]["version"])
    workloads = [
        *documents(SAMPLES / "workload"),
        yaml.safe_load((SAMPLES / "workload" / "vllm-deployment.yaml").read_text()),
    ]
    assert workloads
    for workload in workloads:
        pod = (
            workload["spec"]["template"]["spec"]
            if workload["kind"] == "Deployment"
            else workload["spec"]
        )
        (volume,) = pod["volumes"]
        assert volume["persistentVolumeClaim"] == {"claimName": claim, "readOnly": True}
        for container in pod["containers"]:
            (mount,) = container["volumeMounts"]
            assert mount["readOnly"] is True and mount["mountPath"] == "/models/qwen"


def test_the_reference_workload_reads_the_samples_reference() -> None:
    (ref,) = by_kind(documents(SAMPLES), "ModelReference")
    pod = yaml.safe_load((SAMPLES / "workload" / "reference-pod.yaml").read_text())
    assert pod["metadata"]["namespace"] == ref["metadata"]["namespace"]
    (volume,) = pod["spec"]["volumes"]
    assert volume["persistentVolumeClaim"]["readOnly"] is True


def test_readme_and_samples_use_one_sharing_label_key() -> None:
    namespaces = by_kind(documents(SAMPLES), "Namespace")
    assert any(CONSUMER_LABEL in (n["metadata"].get("labels") or {}) for n in namespaces)
    for page in (README, *sorted((ROOT / "docs").glob("*.md"))):
        keys = set(re.findall(r"[\w.]+/consumer\b", page.read_text()))
        assert keys <= {CONSUMER_LABEL}, f"{page.name}: {keys}"


def test_readme_names_the_release_version_in_one_format() -> None:
    text = README.read_text()
    versions = re.findall(r"charts/modelfs --version (\S+)", text)
    assert versions and set(versions) <= {__version__, "<new>"}, versions
    assert f"modelfs:{__version__}" in text and f"newTag: {__version__}" in text
    # Images and charts are published as <version>; git tags (and so ?ref=) as v<version>.
    assert not re.search(r"modelfs:v\d", text) and not re.search(r"newTag: v\d", text)
    refs = re.findall(r"\?ref=(\S+?)[\s\]`]", text)
    assert refs and set(refs) <= {f"v{__version__}", "v<new>"}, refs
    assert f"v{__version__}" in refs
    assert "github.com/samzong/modelfs/config/default\n" not in text


def test_readme_names_the_tested_dataset_version() -> None:
    env = (ROOT / "hack" / "versions.env").read_text()
    (tested,) = re.findall(r"^DATASET_VERSION=(\S+)$", env, re.MULTILINE)
    text = README.read_text()
    assert re.findall(r"baizeai/dataset --version (\S+)", text) == [tested.removeprefix("v")]
    assert f"BaizeAI/dataset | {tested}," in text


def readme_script(name: str) -> str:
    """The ```bash block after `<!-- quickstart-script: name -->` in the README (also run by
    e2e/operator/test_quickstart.py)."""
    text = README.read_text()
    found = re.search(rf"<!-- quickstart-script: {name} -->\n```bash\n(.*?)```", text, re.S)
    assert found, f"README has no quickstart script {name!r}"
    return found.group(1)


def heredoc(script: str) -> list[dict[str, Any]]:
    (body,) = re.findall(r"<<'YAML'\n(.*?)\nYAML\n", script, re.S)
    return [d for d in yaml.safe_load_all(body) if d]


def test_the_quick_start_applies_the_minimal_sample() -> None:
    assert heredoc(readme_script("download")) == documents(SAMPLES / "minimal")


def test_the_quick_start_pod_is_the_workload_sample() -> None:
    (pod,) = heredoc(readme_script("workload"))
    (sample,) = documents(SAMPLES / "workload")
    assert pod["metadata"]["name"] == sample["metadata"]["name"]
    assert pod["spec"] == sample["spec"]
