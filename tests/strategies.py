"""hypothesis strategies for valid and invalid modelfs objects, per source type."""

from __future__ import annotations

from typing import Any

from hypothesis import strategies as st

from modelfs.api.v1 import SourceType

NAMESPACE = "team-a"

dns_label = st.from_regex(r"\A[a-z0-9]([-a-z0-9]{0,20}[a-z0-9])?\Z")
# A DNS subdomain (what the API server accepts as a name): dot-separated DNS labels.
long_dns_name = st.from_regex(
    r"\A[a-z0-9]([-a-z0-9]{0,60}[a-z0-9])?([.][a-z0-9]([-a-z0-9]{0,28}[a-z0-9])?){0,2}\Z"
)
version_name = st.from_regex(r"\A[a-z0-9]([-a-z0-9.]{0,40}[a-z0-9])?\Z")
word = st.from_regex(r"\A[A-Za-z0-9][A-Za-z0-9_.-]{0,15}\Z")
glob = st.sampled_from(["*.safetensors", "*.json", "*.bin", "model-*.gguf", "tokenizer*"])
http_url = st.builds(lambda host, path: f"https://{host}.example.com/{path}", dns_label, dns_label)

# Valid config values per source type and key.
CONFIG_VALUES: dict[SourceType, dict[str, st.SearchStrategy[str]]] = {
    SourceType.HUGGING_FACE: {
        "repoType": st.sampled_from(["MODEL", "DATASET"]),
        "endpoint": http_url,
        "include": glob,
        "exclude": glob,
        "revision": word,
    },
    SourceType.MODEL_SCOPE: {
        "repoType": st.sampled_from(["MODEL", "DATASET"]),
        "include": glob,
        "exclude": glob,
        "revision": word,
    },
    SourceType.S3: {
        "region": st.sampled_from(["us-east-1", "eu-west-1", "cn-north-1"]),
        "syncMode": st.sampled_from(["sync", "copy"]),
    },
    SourceType.HTTP: {"syncMode": st.sampled_from(["sync", "copy"])},
    SourceType.GIT: {
        "branch": word,
        "commit": st.from_regex(r"\A[0-9a-f]{7,40}\Z"),
        "depth": st.integers(1, 50).map(str),
        "submodules": st.sampled_from(["true", "false"]),
    },
    SourceType.PVC: {},
    SourceType.NFS: {},
    SourceType.CONDA: {
        "python": st.sampled_from(["3.10", "3.11", "3.12"]),
        "pipRequirementsTxt": word,
    },
    SourceType.REFERENCE: {},
}

REPOS: dict[SourceType, st.SearchStrategy[str]] = {
    SourceType.HUGGING_FACE: st.builds(lambda a, b: f"{a}/{b}", word, word),
    SourceType.MODEL_SCOPE: st.builds(lambda a, b: f"{a}/{b}", word, word),
    SourceType.S3: st.builds(
        lambda a, b: f"{a}/{b}", dns_label.filter(lambda s: len(s) >= 3), word
    ),
    SourceType.HTTP: http_url,
    SourceType.GIT: st.builds(lambda u, r: f"{u}/{r}.git", http_url, dns_label),
    SourceType.PVC: st.builds(lambda a, b: f"{a}/{b}", dns_label, word),
    SourceType.NFS: st.builds(lambda a, b: f"{a}.internal/{b}", dns_label, word),
    SourceType.CONDA: word,
    SourceType.REFERENCE: st.builds(lambda a, b: f"{a}/{b}", dns_label, dns_label),
}

SECRET_TYPES = {
    SourceType.HUGGING_FACE,
    SourceType.MODEL_SCOPE,
    SourceType.S3,
    SourceType.HTTP,
    SourceType.GIT,
}


@st.composite
def config_for(draw: st.DrawFn, source_type: SourceType) -> dict[str, str]:
    values = CONFIG_VALUES[source_type]
    keys = draw(st.lists(st.sampled_from(sorted(values)), unique=True)) if values else []
    return {key: draw(values[key]) for key in keys}


@st.composite
def valid_inputs(draw: st.DrawFn) -> dict[str, Any]:
    """Bodies of a ModelSource, Model and ModelSync that resolve."""
    source_type = draw(st.sampled_from(list(SourceType)))
    model_name = draw(long_dns_name)
    version = draw(version_name)
    source_name = draw(dns_label)
    source_spec: dict[str, Any] = {
        "type": source_type.value,
        "config": draw(config_for(source_type)),
    }
    if source_type == SourceType.S3 and "region" not in source_spec["config"]:
        source_spec["config"]["region"] = "us-east-1"
    if source_type in SECRET_TYPES and draw(st.booleans()):
        source_spec["secretRef"] = draw(dns_label)
    return {
        "source": {"metadata": {"name": source_name, "namespace": NAMESPACE}, "spec": source_spec},
        "model": {
            "metadata": {"name": model_name, "namespace": NAMESPACE},
            "spec": {
                "sourceRef": source_name,
                "versionConfigs": {
                    version: {
                        "repo": draw(REPOS[source_type]),
                        "repoConfig": draw(config_for(source_type)),
                    }
                },
            },
        },
        "sync": {
            "metadata": {"name": draw(dns_label), "namespace": NAMESPACE, "uid": "uid-1"},
            "spec": {"modelRef": model_name, "version": version},
        },
    }
