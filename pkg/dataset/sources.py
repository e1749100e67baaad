"""What each source type accepts: config keys, their values, the repo form and Secret keys.

These rules follow what the BaizeAI/dataset loader really does (docs/dataset-controller.md#options,
docs/decisions.md): an option it would silently mangle is refused here with the reason, instead of
becoming a Dataset that "succeeds" without the weights.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

from modelfs.api.v1 import SourceType
from modelfs.api.v1.rules import check_option_value
from modelfs.pkg.dataset.errors import Reason

OPTION_KEY = re.compile(r"^\w+$", re.ASCII)
WHITESPACE = re.compile(r"\s")
HTTP_URL = re.compile(r"^https?://[^/\s?#]+(/[^\s?#]*)?$")
GIT_URL = re.compile(r"^(https?|git)://[^/\s?#]+/[^\s?#]+$")
HUB_REPO = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$", re.ASCII)
HF_REPO = re.compile(r"^[A-Za-z0-9][\w.-]*(/[\w.-]+)?$", re.ASCII)
S3_BUCKET = re.compile(r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$")
DNS_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?$")
DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$")
HOST = re.compile(r"^[A-Za-z0-9]([A-Za-z0-9.-]*[A-Za-z0-9])?(:[0-9]+)?$")
SAFE_PATH = re.compile(r"^[^\s?#]*$")
CONDA_ENV = re.compile(r"^[A-Za-z0-9][\w.-]*$", re.ASCII)
PYTHON_VERSION = re.compile(r"^[0-9]+(\.[0-9]+){0,2}$")
DIGITS = re.compile(r"^[0-9]+$")

MULTI_GLOB_HINT = (
    "the Dataset loader passes {key} as ONE glob to the downloader, so a list of several patterns "
    "matches nothing and the download 'succeeds' without weights. Use a single pattern (e.g. "
    "'*.safetensors'), or leave include unset and exclude the one kind of file you don't want "
    "(e.g. exclude: '*.bin'); to fetch two kinds of files, use two versions or a single glob that "
    "matches both"
)


class RepoError(ValueError):
    """`repo` (or the config it combines with) cannot form the type's URI."""

    def __init__(self, message: str, reason: Reason = Reason.INVALID_REPO, key: str = "") -> None:
        super().__init__(message)
        self.reason = reason
        self.key = key


UriBuilder = Callable[[str, Mapping[str, str]], str]


@dataclass(frozen=True)
class SourceRules:
    """How one source type turns config and repo into a Dataset source."""

    options: frozenset[str]
    """Keys passed on to the Dataset as source options."""
    consumed: frozenset[str]
    """Keys modelfs reads itself (to build the URI, or to report on) and does not pass on."""
    build_uri: UriBuilder
    repo_form: str
    values: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    """Keys whose value must be one of these."""
    secret_key_sets: tuple[frozenset[str], ...] = ()
    """A Secret must carry every key of at least one set. Empty: the type reads no Secret."""
    refused: Mapping[str, str] = field(default_factory=dict)
    """Keys that look plausible but break the loader, with why and what to do instead."""
    loader_job: bool = True
    """Whether the Dataset operator runs a loader Job per round. PVC, NFS and REFERENCE mount
    the data where it is: a raised dataSyncRound downloads nothing on them, and turns a
    REFERENCE Dataset FAILED for good (docs/dataset-controller.md#no-loader-job)."""

    @property
    def allowed(self) -> frozenset[str]:
        return self.options | self.consumed


def _no_query(repo: str) -> None:
    if "?" in repo or "#" in repo:
        raise RepoError("must not contain '?' or '#': the Dataset loader ignores a URI's query")


def _hub_uri(scheme: str, pattern: re.Pattern[str], form: str) -> UriBuilder:
    def build(repo: str, config: Mapping[str, str]) -> str:
        _no_query(repo)
        if not pattern.fullmatch(repo):
            raise RepoError(f"must be a repository id like {form}, not {repo!r}")
        return f"{scheme}://{repo}"

    return build


def _joined_url(repo: str, config: Mapping[str, str], absolute: re.Pattern[str]) -> str:
    _no_query(repo)
    if "://" in repo:
        if not absolute.fullmatch(repo):
            raise RepoError(f"{repo!r} is not a URL this source type can download")
        return repo
    endpoint = config.get("endpoint")
    if not endpoint:
        raise RepoError(
            f"{repo!r} is not a URL and config.endpoint is not set: give a full URL, or set "
            "endpoint on the ModelSource and a path here"
        )
    url = f"{endpoint.rstrip('/')}/{repo.lstrip('/')}"
    if not absolute.fullmatch(url):
        raise RepoError(f"endpoint + repo gives {url!r}, which is not a valid URL")
    return url


def _http_uri(repo: str, config: Mapping[str, str]) -> str:
    return _joined_url(repo, config, HTTP_URL)


def _git_uri(repo: str, config: Mapping[str, str]) -> str:
    return _joined_url(repo, config, GIT_URL)


def _s3_uri(repo: str, config: Mapping[str, str]) -> str:
    _no_query(repo)
    path = repo.removeprefix("s3://")
    bucket, _, directory = path.partition("/")
    if not S3_BUCKET.fullmatch(bucket):
        raise RepoError(f"must be 'bucket/dir' with a valid S3 bucket name, not {repo!r}")
    if not SAFE_PATH.fullmatch(directory):
        raise RepoError("the directory part must not contain whitespace")
    if config.get("provider", "AWS") == "AWS" and not config.get("region"):
        raise RepoError(
            "S3 on AWS needs config.region (or set provider: MINIO with an endpoint)",
            Reason.INVALID_CONFIG,
            "region",
        )
    if config.get("provider") == "MINIO" and not config.get("endpoint"):
        raise RepoError(
            "S3 with provider MINIO needs config.endpoint, the MinIO server URL",
            Reason.INVALID_CONFIG,
            "endpoint",
        )
    return f"s3://{path}"


def _pvc_uri(repo: str, config: Mapping[str, str]) -> str:
    _no_query(repo)
    claim, _, path = repo.removeprefix("pvc://").partition("/")
    if not DNS_SUBDOMAIN.fullmatch(claim) or not SAFE_PATH.fullmatch(path):
        raise RepoError(f"must be 'pvc-name/path' with a valid PVC name, not {repo!r}")
    return f"pvc://{claim}/{path}"


def _nfs_uri(repo: str, config: Mapping[str, str]) -> str:
    _no_query(repo)
    rest = repo.removeprefix("nfs://")
    if config.get("endpoint"):
        host, path = config["endpoint"].removeprefix("nfs://").rstrip("/"), rest.lstrip("/")
    else:
        host, _, path = rest.partition("/")
    if not HOST.fullmatch(host) or not path or not SAFE_PATH.fullmatch(path):
        raise RepoError(
            f"must be 'host/export/path' (or a path with config.endpoint as the host), not {repo!r}"
        )
    return f"nfs://{host}/{path}"


def _conda_uri(repo: str, config: Mapping[str, str]) -> str:
    if not CONDA_ENV.fullmatch(repo):
        raise RepoError(f"must be a conda environment name, not {repo!r}")
    python = config.get("python")
    return f"conda://{repo}?python={python}" if python else f"conda://{repo}"


def _reference_uri(repo: str, config: Mapping[str, str]) -> str:
    _no_query(repo)
    namespace, _, dataset = repo.removeprefix("dataset://").partition("/")
    if not DNS_LABEL.fullmatch(namespace) or not DNS_SUBDOMAIN.fullmatch(dataset):
        raise RepoError(f"must be 'namespace/dataset', not {repo!r}")
    return f"dataset://{namespace}/{dataset}"


_OFFLINE = "must not be set: the loader fails to parse it as a boolean"
_GIT_REVISION = "is not a GIT option: set branch (a branch or tag) or commit (a commit SHA)"

RULES: Mapping[SourceType, SourceRules] = {
    SourceType.HUGGING_FACE: SourceRules(
        options=frozenset({"repoType", "endpoint", "include", "exclude"}),
        consumed=frozenset({"revision"}),
        build_uri=_hub_uri("huggingface", HF_REPO, "'org/name'"),
        repo_form="org/name",
        values={"repoType": ("MODEL", "DATASET")},
        secret_key_sets=(frozenset({"token"}),),
        refused={"offline": _OFFLINE},
    ),
    SourceType.MODEL_SCOPE: SourceRules(
        options=frozenset({"repoType", "include", "exclude"}),
        consumed=frozenset({"revision"}),
        build_uri=_hub_uri("modelscope", HUB_REPO, "'org/model'"),
        repo_form="org/model",
        values={"repoType": ("MODEL", "DATASET")},
        secret_key_sets=(frozenset({"token"}),),
        refused={"offline": _OFFLINE},
    ),
    SourceType.S3: SourceRules(
        options=frozenset({"provider", "region", "endpoint", "syncMode"}),
        consumed=frozenset(),
        build_uri=_s3_uri,
        repo_form="bucket/dir",
        values={"provider": ("AWS", "MINIO"), "syncMode": ("sync", "copy")},
        secret_key_sets=(frozenset({"access-key", "secret-key"}),),
    ),
    SourceType.HTTP: SourceRules(
        options=frozenset({"syncMode"}),
        consumed=frozenset({"endpoint"}),
        build_uri=_http_uri,
        repo_form="https://host/dir, or a path under config.endpoint",
        values={"syncMode": ("sync", "copy")},
        secret_key_sets=(frozenset({"username", "password"}),),
    ),
    SourceType.GIT: SourceRules(
        options=frozenset({"branch", "commit", "depth", "submodules"}),
        consumed=frozenset({"endpoint"}),
        build_uri=_git_uri,
        repo_form="https://host/owner/repo.git, or owner/repo under config.endpoint",
        values={"submodules": ("true", "false")},
        secret_key_sets=(
            frozenset({"token"}),
            frozenset({"username", "password"}),
            frozenset({"ssh-privatekey"}),
        ),
        refused={"revision": _GIT_REVISION},
    ),
    SourceType.PVC: SourceRules(
        loader_job=False,
        options=frozenset(),
        consumed=frozenset(),
        build_uri=_pvc_uri,
        repo_form="pvc-name/path",
    ),
    SourceType.NFS: SourceRules(
        loader_job=False,
        options=frozenset(),
        consumed=frozenset({"endpoint"}),
        build_uri=_nfs_uri,
        repo_form="host/export/path",
    ),
    SourceType.CONDA: SourceRules(
        options=frozenset({"condaEnvironmentYml", "pipRequirementsTxt"}),
        consumed=frozenset({"python"}),
        build_uri=_conda_uri,
        repo_form="environment-name",
    ),
    SourceType.REFERENCE: SourceRules(
        loader_job=False,
        options=frozenset(),
        consumed=frozenset(),
        build_uri=_reference_uri,
        repo_form="namespace/dataset",
    ),
}


def check_value(source_type: SourceType, key: str, value: str) -> str | None:
    """Why `key: value` is not allowed for `source_type`, or None when it is."""
    rules = RULES[source_type]
    if not OPTION_KEY.fullmatch(key):
        return "is not a valid key: the Dataset loader accepts only letters, digits and '_'"
    if key in rules.refused:
        return rules.refused[key]
    if key not in rules.allowed:
        allowed = ", ".join(sorted(rules.allowed)) or "none"
        return f"is not a {source_type} key; allowed keys: {allowed}"
    problem = check_option_value(value)
    if problem is not None:
        return problem
    if WHITESPACE.search(value):
        return (
            "must not contain whitespace: the Dataset loader passes the value as one unparsed "
            "argument, so whitespace reaches it wrapped in quotes and breaks it"
        )
    if key in rules.values and value not in rules.values[key]:
        return f"must be one of {', '.join(rules.values[key])}, not {value!r}"
    if key in ("include", "exclude") and "," in value:
        return f"{value!r} is several patterns, but " + MULTI_GLOB_HINT.format(key=key)
    if key == "endpoint" and source_type != SourceType.NFS and not HTTP_URL.fullmatch(value):
        return f"must be an http(s) URL without query, not {value!r}"
    if key == "depth" and not DIGITS.fullmatch(value):
        return f"must be a whole number, not {value!r}"
    if key == "python" and not PYTHON_VERSION.fullmatch(value):
        return f"must be a Python version such as 3.11, not {value!r}"
    return None


def secret_key_sets(source_type: SourceType) -> tuple[frozenset[str], ...]:
    """The sets of Secret keys the type reads; a Secret must carry one whole set."""
    return RULES[source_type].secret_key_sets


def missing_secret_keys(source_type: SourceType, present: set[str]) -> list[str] | None:
    """The keys a Secret with `present` keys lacks for `source_type` (the closest set), or None."""
    sets = secret_key_sets(source_type)
    if not sets or any(s <= present for s in sets):
        return None
    closest = min(sets, key=lambda s: (len(s - present), sorted(s)))
    return sorted(closest - present)


def describe_secret_keys(source_type: SourceType) -> str:
    return " or ".join("+".join(sorted(s)) for s in secret_key_sets(source_type))
