"""The sandbox's local catalogs (modelfs/testing/sandbox_catalogs.py): the lookups the samples
make get the answers the sandbox promises (SIZE and REVISION for the Hub, ModelScope, S3, HTTP
samples), and the kustomization it applies points exactly the samples' ModelSources at them."""

from __future__ import annotations

import asyncio
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from modelfs.controllers.catalog import human_size
from modelfs.pkg.catalog.lookup import Catalog as Lookups
from modelfs.pkg.catalog.net import NetSettings
from modelfs.pkg.catalog.types import CatalogEntry, CatalogRequest, Credentials
from modelfs.pkg.dataset.types import DatasetType
from modelfs.testing.sandbox_catalogs import (
    SandboxCatalogs,
    endpoint_patches,
    overlay,
    sample_tokens,
)

SAMPLES = Path(__file__).resolve().parents[1] / "config" / "samples"


def sample_documents() -> list[dict[str, Any]]:
    documents: list[dict[str, Any]] = []
    for path in sorted(SAMPLES.glob("*.yaml")):
        if path.name != "kustomization.yaml":
            documents += [d for d in yaml.safe_load_all(path.read_text()) if d]
    return documents


def by_name(documents: list[dict[str, Any]], kind: str) -> dict[str, dict[str, Any]]:
    return {d["metadata"]["name"]: d for d in documents if d["kind"] == kind}


@pytest.fixture(scope="module")
def catalogs(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SandboxCatalogs]:
    documents = sample_documents()
    started = SandboxCatalogs().start(tmp_path_factory.mktemp("catalogs"), sample_tokens(documents))
    yield started
    started.stop()


def test_the_samples_lookups_find_sizes_and_revisions(catalogs: SandboxCatalogs) -> None:
    """Each sample, looked up as the operator would with the endpoint the sandbox gives it and
    the (fake) Secret values of the samples."""
    assert catalogs.modelscope is not None and catalogs.files is not None
    documents = sample_documents()
    sources = by_name(documents, "ModelSource")
    models = by_name(documents, "Model")
    secrets = {
        name: Credentials(dict(d.get("stringData") or {}))
        for name, d in by_name(documents, "Secret").items()
    }
    patched = {
        p["target"]["name"]: yaml.safe_load(p["patch"])
        for p in endpoint_patches(documents, catalogs)
    }

    def request(model: str) -> tuple[CatalogRequest, Credentials]:
        spec = models[model]["spec"]
        ((_, version),) = spec["versionConfigs"].items()
        source = sources[spec["sourceRef"]]["spec"]
        options = dict(source.get("config") or {}) | dict(version.get("repoConfig") or {})
        if spec["sourceRef"] in patched:
            options["endpoint"] = patched[spec["sourceRef"]][0]["value"]
        repo = version["repo"]
        kind = DatasetType(source["type"])
        uri = {
            DatasetType.HUGGING_FACE: f"huggingface://{repo}",
            DatasetType.MODEL_SCOPE: f"modelscope://{repo}",
            DatasetType.S3: f"s3://{repo}",
        }.get(kind, f"{options.get('endpoint', '')}/{repo}")
        credentials = secrets.get(source.get("secretRef", ""), Credentials())
        return CatalogRequest.of(kind, uri, options), credentials

    lookups = Lookups(NetSettings(modelscope_endpoint=catalogs.modelscope.url, timeout=5))
    expected = {
        "qwen2-5-instruct": ("953.3MiB", True),
        "deepseek-r1-distill": ("3.3GiB", True),
        "llama-3-8b": ("15.0GiB", False),  # S3: the listing is the state, no revision
        "gpt2": ("522.7MiB", True),  # HTTP: the ETag
    }

    async def look() -> dict[str, Any]:
        return {m: await lookups.lookup(*request(m)) for m in [*expected, "tinyllama"]}

    found = asyncio.run(look())
    for model, (size, has_revision) in expected.items():
        entry = found[model]
        assert isinstance(entry, CatalogEntry), (model, entry)
        assert entry.bytes is not None and human_size(entry.bytes) == size, (model, entry)
        assert (entry.revision is not None) == has_revision, (model, entry)
    assert found["qwen2-5-instruct"].parameters == 494_032_768
    tinyllama = found["tinyllama"]
    if catalogs.git is not None:
        assert isinstance(tinyllama, CatalogEntry)
        assert tinyllama.revision == "fe8a4ea1ffedaf415f4da2f062534de366a451e6"


def test_the_overlay_points_only_the_served_sources_at_the_local_catalogs(
    catalogs: SandboxCatalogs, tmp_path: Path
) -> None:
    documents = sample_documents()
    patches = {p["target"]["name"]: p for p in endpoint_patches(documents, catalogs)}
    served = {"huggingface", "minio", "http-files"} | ({"git"} if catalogs.git else set())
    assert set(patches) == served
    assert catalogs.files is not None
    http = yaml.safe_load(patches["http-files"]["patch"])
    assert http == [
        {"op": "add", "path": "/spec/config/endpoint", "value": f"{catalogs.files.url}/models"}
    ]
    written = overlay(SAMPLES, tmp_path / "samples", documents, catalogs)
    kustomization = yaml.safe_load((written / "kustomization.yaml").read_text())
    (base,) = kustomization["resources"]
    assert not Path(base).is_absolute() and (written / base).resolve() == SAMPLES.resolve()
    kubectl = shutil.which("kubectl") or str(Path(__import__("sys").executable).parent / "kubectl")
    if Path(kubectl).exists():
        from modelfs.testing.sandbox import kustomize

        built = by_name(kustomize(kubectl, written), "ModelSource")
        assert built["minio"]["spec"]["config"]["endpoint"] == catalogs.s3.url
        assert built["nfs"]["spec"]["config"]["endpoint"] == "nfs.storage.internal"
    # config/samples itself keeps the real endpoints.
    assert (
        by_name(sample_documents(), "ModelSource")["huggingface"]["spec"]["config"]["endpoint"]
        == "https://hf-mirror.com"
    )


def test_the_operator_asks_the_modelscope_it_is_given() -> None:
    """`modelfs run --catalog-modelscope-endpoint URL` (what the sandbox passes): the
    MODEL_SCOPE lookups' endpoint; without it, ModelScope's own."""
    from modelfs.cli import build_parser
    from modelfs.operator import CatalogOptions, new_catalog
    from modelfs.pkg.catalog.net import MODELSCOPE_ENDPOINT

    args = build_parser().parse_args(
        ["run", "-A", "--catalog-modelscope-endpoint", "http://127.0.0.1:9"]
    )
    assert args.catalog_modelscope_endpoint == "http://127.0.0.1:9"
    assert build_parser().parse_args(["run", "-A"]).catalog_modelscope_endpoint is None
    for given, expected in (
        ("http://127.0.0.1:9", "http://127.0.0.1:9"),
        (None, MODELSCOPE_ENDPOINT),
    ):
        catalog = new_catalog(None, CatalogOptions(True, None, given))  # type: ignore[arg-type]
        assert catalog is not None
        lookups = catalog.lookup.__self__  # type: ignore[attr-defined]
        try:
            assert lookups.settings.modelscope_endpoint == expected
        finally:
            lookups.close()
