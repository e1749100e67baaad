"""The catalogs the sandbox serves locally, so that the samples' lookups get an answer with no
internet: a Hub and a ModelScope (modelfs.testing.catalog.hub), a file server, moto's S3 and a
git smart-HTTP endpoint (when `git` is installed), each on a free loopback port, filled with
the repositories, files and objects the samples name, at their real sizes (the Hub, ModelScope
and file servers hold sizes, not bytes; moto holds small placeholder objects whose listed size
is set to the real one).

The samples in config/samples keep their real endpoints. The sandbox applies them through a
kustomization of its own (`overlay`), `resources: [config/samples]` plus one patch per
ModelSource pointing its `endpoint` at the local server; ModelScope sources have no endpoint
option, so the operator is started with `--catalog-modelscope-endpoint` instead.
"""

from __future__ import annotations

import contextlib
import os
import shutil
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import yaml

from modelfs.testing.catalog.files import FileServer
from modelfs.testing.catalog.hub import Catalog, HubServer, ModelScopeServer, Repo

# What the samples name, at the sizes the real repositories have.
QWEN_05B = Repo(
    "Qwen/Qwen2.5-0.5B-Instruct",
    {
        ".gitattributes": 1_519,
        "LICENSE": 11_343,
        "README.md": 4_917,
        "config.json": 659,
        "generation_config.json": 242,
        "merges.txt": 1_671_839,
        "model.safetensors": 988_097_824,
        "tokenizer.json": 7_031_645,
        "tokenizer_config.json": 7_305,
        "vocab.json": 2_776_833,
    },
    parameters=494_032_768,
    architecture="Qwen2ForCausalLM",
    license="apache-2.0",
)
DEEPSEEK_15B = Repo(
    "deepseek-ai/DeepSeek-R1-Distill-Qwen-1.5B",
    {
        ".gitattributes": 1_519,
        "LICENSE": 1_064,
        "README.md": 16_616,
        "config.json": 679,
        "configuration.json": 73,
        "figures/benchmark.jpg": 777_110,
        "generation_config.json": 181,
        "model.safetensors": 3_554_214_752,
        "tokenizer.json": 7_031_660,
        "tokenizer_config.json": 3_071,
    },
    default_branch="master",  # ModelScope's
    license="mit",
)
S3_OBJECTS: dict[str, dict[str, int]] = {
    "models": {
        "llama-3-8b-instruct/config.json": 654,
        "llama-3-8b-instruct/generation_config.json": 187,
        "llama-3-8b-instruct/model-00001-of-00004.safetensors": 4_976_698_672,
        "llama-3-8b-instruct/model-00002-of-00004.safetensors": 5_000_005_472,
        "llama-3-8b-instruct/model-00003-of-00004.safetensors": 4_915_916_176,
        "llama-3-8b-instruct/model-00004-of-00004.safetensors": 1_168_138_808,
        "llama-3-8b-instruct/model.safetensors.index.json": 23_950,
        "llama-3-8b-instruct/special_tokens_map.json": 73,
        "llama-3-8b-instruct/tokenizer.json": 9_085_698,
        "llama-3-8b-instruct/tokenizer_config.json": 50_977,
    }
}
"""Bucket -> key -> size."""
HTTP_FILES: dict[str, int] = {"/models/gpt2/model.safetensors": 548_105_171}
"""Path -> size, served by size only."""
GIT_REPOS: dict[str, dict[str, str]] = {
    "TinyLlama/TinyLlama-1.1B-Chat-v1.0": {
        "README.md": "# TinyLlama-1.1B-Chat-v1.0 (the sandbox's local copy)\n",
        "config.json": '{"architectures": ["LlamaForCausalLM"]}\n',
    }
}
"""Repository path (as the sample names it, no `.git`) -> files of its one commit."""


@dataclass
class SandboxCatalogs:
    """The local catalog servers, started by `start()` and stopped by `stop()`."""

    hub: HubServer | None = None
    modelscope: ModelScopeServer | None = None
    files: FileServer | None = None
    s3: Any = None
    """A modelfs.testing.catalog.s3.S3Server, None when moto is not installed."""
    git: Any = None
    """A modelfs.testing.catalog.git.GitServer, None when `git` is not installed."""
    notes: list[str] = field(default_factory=list)
    """What could not be served, and why (said by the sandbox)."""

    def start(self, state: Path, tokens: Iterable[str] = ()) -> SandboxCatalogs:
        """Start every server. `tokens` are the Hub/ModelScope tokens of the samples' Secrets,
        accepted as valid (the Hub refuses a token it does not know, as GatedRepo)."""
        catalog = Catalog(users={token: "modelfs-sandbox" for token in tokens})
        catalog.add(QWEN_05B)
        catalog.add(DEEPSEEK_15B)
        self.hub = HubServer(catalog).start()
        self.modelscope = ModelScopeServer(catalog).start()
        self.files = FileServer()
        self.files.sizes.update(HTTP_FILES)
        self.files.start()
        self._start_s3()
        self._start_git(state / "git")
        return self

    def _start_s3(self) -> None:
        try:
            from modelfs.testing.catalog.s3 import S3Server

            server = S3Server().start()
        except ImportError as error:
            self.notes.append(f"no local S3 (moto is not installed: {error})")
            return
        self.s3 = server
        for bucket, objects in S3_OBJECTS.items():
            server.put(bucket, {key: b"\0" for key in objects})
            _set_listed_sizes(bucket, objects)

    def _start_git(self, root: Path) -> None:
        if shutil.which("git") is None:
            self.notes.append("no local Git server (`git` is not installed)")
            return
        from modelfs.testing.catalog.git import GitServer, _git, commit

        for name, files in GIT_REPOS.items():
            bare = root / name
            bare.parent.mkdir(parents=True, exist_ok=True)
            _git("init", "--bare", "-q", "-b", "main", str(bare))
            commit(bare, files, "main")
        self.git = GitServer(root).start()

    def stop(self) -> None:
        for server in (self.hub, self.modelscope, self.files, self.s3, self.git):
            if server is not None:
                with contextlib.suppress(Exception):
                    server.stop()

    def endpoint_for(self, source_type: str, endpoint: str | None) -> str | None:
        """The local endpoint that stands for a ModelSource's `endpoint` (None: not served)."""
        path = urlsplit(endpoint).path.rstrip("/") if endpoint else ""
        if source_type == "HUGGING_FACE" and self.hub is not None:
            return self.hub.url
        if source_type == "S3" and self.s3 is not None:
            return str(self.s3.url)
        if source_type == "HTTP" and self.files is not None and endpoint:
            return f"{self.files.url}{path}"
        if source_type == "GIT" and self.git is not None and endpoint:
            return f"{self.git.url}{path}"
        return None

    def summary(self) -> str:
        parts = [
            f"{what} {server.url}"
            for what, server in (
                ("Hub", self.hub),
                ("ModelScope", self.modelscope),
                ("files", self.files),
                ("S3 (moto)", self.s3),
                ("Git", self.git),
            )
            if server is not None
        ]
        return ", ".join(parts)


def _set_listed_sizes(bucket: str, sizes: Mapping[str, int]) -> None:
    """Make moto list each object at its real size while holding one byte (moto's in-memory
    backend, in this process). Best effort: with another moto, the objects list as 1 byte."""
    with contextlib.suppress(Exception):
        from moto.core.models import DEFAULT_ACCOUNT_ID
        from moto.s3.models import s3_backends

        backend = s3_backends[DEFAULT_ACCOUNT_ID]["aws"]
        for key, size in sizes.items():
            found = backend.get_object(bucket, key)
            if found is not None:
                found.contentsize = size


def sample_tokens(documents: Iterable[Mapping[str, Any]]) -> list[str]:
    """The `token` values of the samples' Secrets (fake ones), for the local Hub to accept."""
    found = []
    for doc in documents:
        if doc.get("kind") == "Secret":
            token = (doc.get("stringData") or {}).get("token")
            if token:
                found.append(str(token))
    return found


def endpoint_patches(
    documents: Iterable[Mapping[str, Any]], catalogs: SandboxCatalogs
) -> list[dict[str, Any]]:
    """One kustomize patch per ModelSource whose endpoint a local server stands for."""
    patches = []
    for doc in documents:
        if doc.get("kind") != "ModelSource":
            continue
        spec = doc.get("spec") or {}
        config = spec.get("config") or {}
        local = catalogs.endpoint_for(str(spec.get("type") or ""), config.get("endpoint"))
        if local is None:
            continue
        meta = doc["metadata"]
        operation = (
            {"op": "add", "path": "/spec/config/endpoint", "value": local}
            if "config" in spec
            else {"op": "add", "path": "/spec/config", "value": {"endpoint": local}}
        )
        patches.append(
            {
                "target": {
                    "kind": "ModelSource",
                    "namespace": meta.get("namespace", ""),
                    "name": meta["name"],
                },
                "patch": yaml.safe_dump([operation]),
            }
        )
    return patches


def overlay(
    samples: Path,
    directory: Path,
    documents: Iterable[Mapping[str, Any]],
    catalogs: SandboxCatalogs,
) -> Path:
    """Write `directory/kustomization.yaml`: the samples, their endpoints pointed at
    `catalogs`. Returns `directory`."""
    directory.mkdir(parents=True, exist_ok=True)
    kustomization = {
        "apiVersion": "kustomize.config.k8s.io/v1beta1",
        "kind": "Kustomization",
        # kustomize takes no absolute path for a base: the samples, relative to the overlay.
        "resources": [os.path.relpath(samples.resolve(), directory.resolve())],
        "patches": endpoint_patches(documents, catalogs),
    }
    header = (
        "# modelfs sandbox: the samples, with each ModelSource's endpoint pointed at the\n"
        "# sandbox's local catalog servers (their lookups need no internet).\n"
    )
    (directory / "kustomization.yaml").write_text(
        header + yaml.safe_dump(kustomization, sort_keys=False)
    )
    return directory
