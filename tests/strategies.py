"""hypothesis strategies for valid and invalid modelfs objects, per source type."""

from __future__ import annotations

import copy
from collections.abc import Callable
from dataclasses import dataclass
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


# ---------------------------------------------------------------------------- refused values
# One generated value that a rule of api/v1/rules.py refuses, where it goes, and the field each
# side names: the API server (CEL; map keys as `[key]`) and resolution (map keys as `.key`).
# Both the pure test (tests/test_admission_rules.py) and the API server test (e2e/test_crds.py)
# draw from these, so the two verdicts are compared on the same values.

HOSTILE_SOURCE = {"type": "HUGGING_FACE", "config": {}}
HOSTILE_VERSION = "v1"


def hostile_bodies() -> dict[str, Any]:
    """Valid bodies of the four kinds, in NAMESPACE, that a refused value is put into."""
    meta = {"namespace": NAMESPACE}
    return {
        "source": {"metadata": {"name": "src", **meta}, "spec": copy.deepcopy(HOSTILE_SOURCE)},
        "model": {
            "metadata": {"name": "mdl", **meta},
            "spec": {
                "sourceRef": "src",
                "versionConfigs": {HOSTILE_VERSION: {"repo": "org/model", "repoConfig": {}}},
                "storage": {"size": "10Gi"},
                "share": {"namespaceSelector": {"matchLabels": {"team": "b"}}},
            },
        },
        "sync": {
            "metadata": {"name": "sync", "uid": "uid-1", **meta},
            "spec": {"modelRef": "mdl", "version": HOSTILE_VERSION},
        },
        "reference": {
            "metadata": {"name": "ref", **meta},
            "spec": {"modelRef": {"namespace": "team-b", "name": "mdl"}, "version": "v1"},
        },
    }


@dataclass(frozen=True)
class Refused:
    """`value` put at `path` (keys under the body's spec) of body `target`."""

    target: str
    path: tuple[str, ...]
    value: Any
    crd_field: str
    resolution_field: str

    def apply(self, bodies: dict[str, Any]) -> dict[str, Any]:
        node = bodies[self.target]["spec"]
        for key in self.path[:-1]:
            node = node.setdefault(key, {})
        node[self.path[-1]] = self.value
        return bodies


def _same(target: str, path: tuple[str, ...], field: str) -> Callable[[Any], Refused]:
    return lambda value: Refused(target, path, value, field, field)


refused_chars = st.characters(codec="utf-8", categories=["Cc", "Cf", "Co"])
bad_names = st.sampled_from(["../x", "A", "a_b", "-a", "a-", "a/b", "a..b", "x" * 254, "é"])
bad_label_keys = st.sampled_from(["a b", "-a", "", "a/b/c", "x" * 64, "A_/b", "a/", "/a"])
bad_label_values = st.sampled_from(["a b", "x" * 64, "-a", "a-", "a/b", "é"])
bad_option_values = st.one_of(
    st.just(""),
    st.builds(lambda w: f"-{w}", word),
    st.builds(lambda w: f"--{w}=x", word),
    st.builds(lambda a, c, b: f"{a}{c}{b}", word, refused_chars, word),
)
bad_backoffs = st.one_of(
    st.integers(25, 10**60).map(lambda n: f"{n}h"),
    st.integers(0, 999).map(lambda n: f"{n}ms"),
    st.just("2562048h"),
    st.just("100000000h"),
)
bad_intervals = st.one_of(
    st.integers(0, 9).map(lambda n: f"{n}s"),
    st.integers(8761, 10**60).map(lambda n: f"{n}h"),
)
bad_sizes = st.one_of(
    st.sampled_from(["0", "0.0", "0Gi", "99999999999999999999999Ei"]),
    st.integers(10**16, 10**60).map(str),
    st.integers(2, 10**30).map(lambda n: f"{n}Pi"),
)

SELECTOR = "spec.share.namespaceSelector"
REQUIREMENT = f"{SELECTOR}.matchExpressions[0]"


def _expression(key: str, operator: str, values: list[str]) -> dict[str, Any]:
    requirement: dict[str, Any] = {"key": key, "operator": operator}
    if values:
        requirement["values"] = values
    return {"matchExpressions": [requirement]}


def _selector(selector: dict[str, Any], field: str) -> Refused:
    return Refused("model", ("share", "namespaceSelector"), selector, field, field)


refused_values = st.one_of(
    bad_names.map(_same("source", ("secretRef",), "spec.secretRef")),
    bad_names.map(_same("model", ("sourceRef",), "spec.sourceRef")),
    bad_names.map(_same("sync", ("modelRef",), "spec.modelRef")),
    bad_names.filter(lambda n: len(n) <= 253).map(
        _same("model", ("storage", "storageClassName"), "spec.storage.storageClassName")
    ),
    bad_sizes.map(_same("model", ("storage", "size"), "spec.storage.size")),
    bad_backoffs.map(_same("sync", ("retry", "backoff"), "spec.retry.backoff")),
    bad_intervals.map(_same("sync", ("schedule", "interval"), "spec.schedule.interval")),
    st.tuples(st.sampled_from(["include", "exclude", "revision"]), bad_option_values).map(
        lambda kv: Refused(
            "source",
            ("config", kv[0]),
            kv[1],
            f"spec.config[{kv[0]}]",
            f"spec.config.{kv[0]}",
        )
    ),
    st.tuples(st.sampled_from(["include", "exclude"]), bad_option_values).map(
        lambda kv: Refused(
            "model",
            ("versionConfigs", HOSTILE_VERSION, "repoConfig", kv[0]),
            kv[1],
            f"spec.versionConfigs[{HOSTILE_VERSION}].repoConfig[{kv[0]}]",
            f"spec.versionConfigs[{HOSTILE_VERSION}].repoConfig.{kv[0]}",
        )
    ),
    bad_label_keys.map(lambda k: _selector(_expression(k, "Exists", []), f"{REQUIREMENT}.key")),
    bad_label_keys.map(lambda k: _selector({"matchLabels": {k: "v"}}, f"{SELECTOR}.matchLabels")),
    bad_label_values.map(
        lambda v: _selector({"matchLabels": {"k": v}}, f"{SELECTOR}.matchLabels[k]")
    ),
    bad_label_values.map(
        lambda v: _selector(_expression("k", "In", [v]), f"{REQUIREMENT}.values[0]")
    ),
    st.sampled_from(["In", "NotIn"]).map(
        lambda op: _selector(_expression("k", op, []), f"{REQUIREMENT}.values")
    ),
    st.sampled_from(["Exists", "DoesNotExist"]).map(
        lambda op: _selector(_expression("k", op, ["a"]), f"{REQUIREMENT}.values")
    ),
    st.just(_selector({}, SELECTOR)),
)
