"""hypothesis strategies for the hostile-input suite (e2e/test_hostile.py).

A case is a valid object of one of the four kinds with at most ONE hostile mutation at a known
field path, so that its verdict is checkable: refused with HTTP 422 naming that field, or
accepted with a False condition naming it (and no Dataset), or, without a mutation, valid.

The hostile values are the ones the attack of issue 12 used (huge durations, emoji, NUL/BEL/U+202E,
an empty include, leading dashes, `../x`, bad selector keys and values, the `matchLabel:` typo,
storage sizes `0`, 60 digits and `99999999999999999999999Ei`), plus generated junk for every
field: wrong types, overlong strings, unicode, negative numbers, unknown enum values. The same
value pools are reused on every kind's fields of the same shape (names, option maps, ...).

`generate(strategy, n, seed)` draws a fixed list: the run is reproducible.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any

from hypothesis import HealthCheck, Phase, given, seed, settings
from hypothesis import strategies as st

from modelfs.api.v1 import SourceType
from modelfs.pkg.dataset.sources import RULES
from tests.strategies import CONFIG_VALUES, REPOS, SECRET_TYPES, config_for

SECRET_NAME = "creds"
"""The Secret every namespace of the suite has, with the keys of every source type."""
SECRET_DATA = {
    "token": "canary-token",
    "access-key": "canary-ak",
    "secret-key": "canary-sk",
    "username": "canary-user",
    "password": "canary-pw",
}
LOADER_TYPES = (
    SourceType.HUGGING_FACE,
    SourceType.MODEL_SCOPE,
    SourceType.S3,
    SourceType.HTTP,
    SourceType.GIT,
    SourceType.CONDA,
)
"""Types whose Dataset runs a loader Job: the ones a valid ModelSync of the suite uses."""

KINDS = ("ModelSource", "Model", "ModelSync", "ModelReference")
PREFIXES = {"ModelSource": "src", "Model": "mdl", "ModelSync": "syn", "ModelReference": "ref"}


@dataclass(frozen=True)
class Mutation:
    """One hostile change of a valid body.

    `path` is where it goes in the body (`("spec", "config", "include")`); `key` set means a
    new map entry `key: value` is added to the map at `path`. `field` is the path that a 422 or
    a condition must name; `entry` says `field` is a map whose entries carry the data (a CEL rule
    on the map names the map)."""

    kind: str
    path: tuple[str, ...]
    value: Any
    label: str
    key: str | None = None
    entry: bool = False
    tolerated: bool = False
    """The value may also be valid (an emoji in a glob): refused, marked or READY all pass."""

    @property
    def field(self) -> str:
        return ".".join(self.path)

    def apply(self, body: dict[str, Any]) -> dict[str, Any]:
        """A deep copy of `body` with the mutation."""
        copy: dict[str, Any] = _deep_copy(body)
        parent = copy
        for part in self.path[:-1]:
            child = parent.get(part)
            if not isinstance(child, dict):
                child = parent[part] = {}
            parent = child
        last = self.path[-1]
        if self.key is None:
            parent[last] = self.value
        else:
            target = parent.get(last)
            if not isinstance(target, dict):
                target = parent[last] = {}
            target[self.key] = self.value
        return copy


def _deep_copy(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _deep_copy(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_deep_copy(v) for v in value]
    return value


@dataclass
class Case:
    """One object under test: its kind, its valid spec, and at most one mutation."""

    kind: str
    spec: dict[str, Any]
    """The valid spec of the object under test."""
    source_type: SourceType
    version: str = "v1"
    mutation: Mutation | None = None
    extras: dict[str, Any] = field(default_factory=dict)
    """What its companions need: `repo` (for a ModelSource case's Model)."""
    index: int = 0
    """Its place in the suite's list, which names it (set by `numbered`)."""

    @property
    def name(self) -> str:
        return f"{PREFIXES[self.kind]}{self.index}"

    @property
    def companion(self) -> str:
        """The name of the objects made for it: a ModelSource case's Model and ModelSync, a
        Model case's ModelSync, a ModelSync case's Model."""
        return f"for-{self.name}"

    def numbered(self, index: int) -> Case:
        return replace(self, index=index)

    def body(self) -> dict[str, Any]:
        spec = _deep_copy(self.spec)
        if self.kind == "ModelSync":
            spec["modelRef"] = self.companion
        body = {"metadata": {"name": self.name}, "spec": spec}
        return self.mutation.apply(body) if self.mutation else body

    @property
    def label(self) -> str:
        if self.mutation is None:
            return "valid"
        added = f" + key {self.mutation.key!r}" if self.mutation.key is not None else ""
        return f"{self.mutation.field}{added}: {self.mutation.label}"


# ----------------------------------------------------------------------------- value pools

NUL, BEL, RLO = "\x00", "\x07", "\u202e"
HUGE_DURATIONS = ("100000000h", "2562048h")
HUGE_SIZES = ("0", "1" * 60, "99999999999999999999999Ei")
DASHES = ("-rf", "--flag=x")
BAD_LABEL_KEYS = ("a b", "-a", "", "a/b/c", "a" * 64, "💥")
BAD_LABEL_VALUES = ("a" * 64, "a b", "-a", "💥", "a\x00")

# Characters that no name, option value or URL may carry: controls and bidi/format marks.
control = st.characters(categories=["Cc", "Cf"], exclude_characters="\r\n\t")
# Printable non-ASCII (emoji, letters of other scripts): never part of a Kubernetes name.
non_ascii = st.characters(min_codepoint=0x80, categories=["L", "So", "Sm", "N"])
lowercase = st.text("abcdefghijklmnopqrstuvwxyz0123456789", min_size=1, max_size=8)


def with_char(chars: st.SearchStrategy[str]) -> st.SearchStrategy[str]:
    """A short word with one character from `chars` in it."""
    return st.builds(lambda a, c, b: f"{a}{c}{b}", lowercase, chars, lowercase)


def overlong(limit: int) -> st.SearchStrategy[str]:
    return st.integers(limit + 1, limit + 40).map(lambda n: "a" * n)


def labelled(
    pairs: st.SearchStrategy[Any], label: str | Callable[[Any], str]
) -> st.SearchStrategy[tuple[Any, str]]:
    name = label if callable(label) else (lambda _v: label)
    return pairs.map(lambda v: (v, name(v)))


def fixed(*values: Any) -> st.SearchStrategy[tuple[Any, str]]:
    return st.sampled_from([(v, f"{v!r}"[:40]) for v in values])


wrong_type_for_string = labelled(
    st.one_of(
        st.integers(-5, 5),
        st.booleans(),
        st.lists(st.integers(0, 3), max_size=2),
        st.just({"a": 1}),
    ),
    lambda v: f"wrong type {type(v).__name__}",
)
wrong_type_for_integer = labelled(
    st.one_of(
        lowercase,
        st.just(1.5),
        st.booleans(),
        st.just([1]),
        st.just({"a": 1}),
    ),
    lambda v: f"wrong type {type(v).__name__}",
)
wrong_type_for_object = labelled(
    st.one_of(lowercase, st.integers(-3, 3), st.just([1, 2]), st.booleans()),
    lambda v: f"wrong type {type(v).__name__}",
)

# A Kubernetes name (a ModelSource, Secret, Model, namespace, StorageClass): never any of these.
bad_names = st.one_of(
    fixed("../x", "-rf", "A_B", "a b", "💥", "a/b", "x\x00"),
    labelled(with_char(control), "control character"),
    labelled(with_char(non_ascii), "unicode"),
    labelled(overlong(253), "overlong"),
    wrong_type_for_string,
)
# A version (an RFC 1123 label, part of Dataset names).
bad_versions = st.one_of(
    fixed("V1", "a b", "-a", "a_b", "a" * 64, "💥", "../x", ""),
    labelled(with_char(non_ascii), "unicode"),
    labelled(with_char(control), "control character"),
)


def durations(below_minimum: bool) -> st.SearchStrategy[tuple[Any, str]]:
    """Durations no schedule or backoff can use: huge, malformed, negative or junk; with
    `below_minimum`, also under the schedule's 10s."""
    pools = [
        fixed(*HUGE_DURATIONS, "abc", "", "-1h", "1 h", "1d", "💥", "1h" * 17),
        labelled(st.integers(10**9, 10**18).map(lambda n: f"{n}h"), "huge duration"),
        labelled(with_char(control).map(lambda s: f"1{s}h"), "control character"),
        wrong_type_for_string,
    ]
    if below_minimum:
        pools.append(fixed("1s", "0s", "9s"))
    return st.one_of(*pools)


bad_sizes = st.one_of(
    fixed(*HUGE_SIZES, "0Gi", "0.0", "-1Gi", "1.5.5Gi", "abc", "1 Gi", "💥", "9" * 65),
    labelled(st.integers(25, 64).map(lambda n: "9" * n), "huge number"),
    labelled(st.integers(7, 20).map(lambda n: "9" * n + "Ei"), "huge quantity"),
    wrong_type_for_string,
)
bad_access_modes = st.one_of(
    fixed(["Bogus"], ["readwriteonce"], ["ReadWriteOnce"] * 5, "ReadWriteOnce", [1]),
    labelled(st.lists(lowercase, min_size=1, max_size=2), "unknown access mode"),
)
bad_integers = st.one_of(
    labelled(st.integers(max_value=-1), "negative"),
    labelled(st.just(10**59), "60-digit number"),
    wrong_type_for_integer,
)


def option_values(key: str) -> st.SearchStrategy[tuple[Any, str]]:
    """Values no loader option may take: controls, leading dashes, whitespace, too long."""
    pools = [
        fixed(f"a{NUL}b", f"a{BEL}b", f"a{RLO}b", *DASHES, "a b", "a\tb"),
        labelled(with_char(control), "control character"),
        labelled(st.sampled_from(DASHES).map(lambda d: d + "x"), "leading dash"),
        labelled(overlong(1024), "overlong"),
        wrong_type_for_string,
    ]
    if key in ("include", "exclude"):
        pools.append(fixed(""))
    return st.one_of(*pools)


bad_option_keys = st.one_of(
    fixed("a b", "-rf", "--flag", "", "💥", "a.b", "a-b", "a/b"),
    labelled(with_char(control), "control character in key"),
    labelled(with_char(non_ascii), "unicode key"),
)


def unknown_option_keys(source_type: SourceType) -> st.SearchStrategy[tuple[Any, str]]:
    rules = RULES[source_type]
    known = [*sorted(rules.refused), "bogus", "token", "password"]
    return st.sampled_from([k for k in known if k not in rules.allowed]).map(
        lambda k: (k, f"key {k!r} not for {source_type}")
    )


unknown_enum = labelled(
    st.one_of(lowercase, st.sampled_from(["", "FTP", "hugging_face", "Delete ", "💥"])),
    "unknown enum value",
)


# ----------------------------------------------------------------------------- valid bases

word = st.from_regex(r"\A[a-z0-9][a-z0-9]{0,10}\Z")


@st.composite
def source_spec(draw: st.DrawFn, source_type: SourceType, secret: bool = True) -> dict[str, Any]:
    spec: dict[str, Any] = {"type": source_type.value, "config": draw(config_for(source_type))}
    if source_type == SourceType.S3:
        spec["config"].setdefault("region", "us-east-1")
    if secret and source_type in SECRET_TYPES and draw(st.booleans()):
        spec["secretRef"] = SECRET_NAME
    return spec


@st.composite
def model_spec(
    draw: st.DrawFn, source_type: SourceType, source: str, version: str, options: bool = True
) -> dict[str, Any]:
    config: dict[str, Any] = {"repo": draw(REPOS[source_type])}
    if options:
        config["repoConfig"] = draw(config_for(source_type))
    spec: dict[str, Any] = {"sourceRef": source, "versionConfigs": {version: config}}
    if draw(st.booleans()):
        spec["storage"] = {"size": draw(st.sampled_from(["1Gi", "20Gi", "500Mi"]))}
    return spec


@st.composite
def sync_spec(draw: st.DrawFn, model: str, version: str) -> dict[str, Any]:
    spec: dict[str, Any] = {"modelRef": model, "version": version}
    if draw(st.booleans()):
        spec["retry"] = {
            "limit": draw(st.integers(0, 100)),
            "backoff": draw(st.sampled_from(["30s", "1m", "2m30s", "1h"])),
        }
    if draw(st.booleans()):
        spec["schedule"] = {"interval": draw(st.sampled_from(["24h", "90m", "12h", "1h30m"]))}
    if draw(st.booleans()):
        spec["deletionPolicy"] = draw(st.sampled_from(["Delete", "Retain"]))
    return spec


def shared_source(source_type: SourceType) -> str:
    """The valid ModelSource of this type that Model and ModelSync cases reuse."""
    return f"src-{source_type.value.lower().replace('_', '')}"


def shared_source_spec(source_type: SourceType) -> dict[str, Any]:
    spec: dict[str, Any] = {"type": source_type.value}
    if source_type == SourceType.S3:
        spec["config"] = {"region": "us-east-1"}
    return spec


# ----------------------------------------------------------------------------- mutations


@st.composite
def option_map_mutation(
    draw: st.DrawFn, kind: str, path: tuple[str, ...], source_type: SourceType
) -> Mutation:
    """A hostile entry in a map that becomes loader options (config, repoConfig)."""
    rules = RULES[source_type]
    choice = draw(st.sampled_from(["value", "value", "key", "unknown", "whole"]))
    if choice == "whole":
        value, label = draw(st.one_of(wrong_type_for_object, fixed(["include"])))
        return Mutation(kind, path, value, label)
    if choice == "key":
        key, label = draw(bad_option_keys)
        return Mutation(kind, path, "x", label, key=key, entry=True)
    if choice == "unknown" or not rules.options:
        key, label = draw(unknown_option_keys(source_type))
        return Mutation(kind, path, "x", label, key=key, entry=True)
    key = draw(st.sampled_from(sorted(rules.options)))
    value, label = draw(option_values(key))
    return Mutation(kind, (*path, key), value, label, entry=True)


@st.composite
def selector_mutation(draw: st.DrawFn, path: tuple[str, ...]) -> Mutation:
    """A label selector the API server's own validation would refuse, or the `matchLabel` typo."""
    choice = draw(st.sampled_from(["key", "value", "typo", "operator", "values", "expr-key"]))
    if choice == "typo":
        return Mutation(
            "Model", path, {"matchLabel": {"team": "a"}}, "matchLabel typo (pruned: shares all)"
        )
    if choice == "key":
        key, label = draw(fixed(*BAD_LABEL_KEYS))
        return Mutation("Model", (*path, "matchLabels"), "x", f"key {label}", key=key, entry=True)
    if choice == "value":
        value, label = draw(st.one_of(fixed(*BAD_LABEL_VALUES), wrong_type_for_string))
        return Mutation("Model", (*path, "matchLabels", "team"), value, label, entry=True)
    expression: dict[str, Any] = {"key": "team", "operator": "In", "values": ["a"]}
    if choice == "operator":
        expression["operator"], label = draw(unknown_enum)
    elif choice == "values":
        malformed: list[tuple[dict[str, Any], str]] = [
            ({"key": "team", "operator": "In", "values": []}, "In without values"),
            ({"key": "team", "operator": "NotIn"}, "NotIn without values"),
            ({"key": "team", "operator": "Exists", "values": ["a"]}, "Exists with values"),
            ({"key": "team", "operator": "In", "values": ["a b"]}, "value 'a b'"),
            ({"key": "team", "operator": "In", "values": ["a" * 64]}, "64-char value"),
        ]
        expression, label = draw(st.sampled_from(malformed))
    else:
        expression["key"], label = draw(fixed(*BAD_LABEL_KEYS))
    return Mutation("Model", (*path, "matchExpressions"), [expression], f"matchExpressions {label}")


@st.composite
def storage_mutation(draw: st.DrawFn, path: tuple[str, ...]) -> Mutation:
    choice = draw(st.sampled_from(["size", "size", "size", "modes", "class", "whole"]))
    if choice == "size":
        value, label = draw(bad_sizes)
        return Mutation("Model", (*path, "size"), value, f"size {label}")
    if choice == "modes":
        value, label = draw(bad_access_modes)
        return Mutation("Model", (*path, "accessModes"), value, label)
    if choice == "class":
        value, label = draw(bad_names)
        return Mutation("Model", (*path, "storageClassName"), value, label)
    value, label = draw(wrong_type_for_object)
    return Mutation("Model", path, value, label)


BAD_REPOS: dict[SourceType, tuple[str, ...]] = {
    SourceType.HUGGING_FACE: ("../x", "-rf", "a b/c", "💥/x", "org/x?rev=1", "a\x00b/c"),
    SourceType.MODEL_SCOPE: ("../x", "-rf", "noslash", "a b/c", "a\u202eb/c"),
    SourceType.S3: ("../x", "A/b", "bkt/a b", "-rf/x", "bkt/x\x07"),
    SourceType.HTTP: ("ftp://h/x", "https://h/a b", "https://h/x?y", "https://h/\x00"),
    SourceType.GIT: ("ssh://h/x.git", "https://h/a b.git", "git://h/x\x07"),
    SourceType.PVC: ("../x", "A_B/x", "pvc/a b"),
    SourceType.NFS: ("h", "-rf/x", "h/a b"),
    SourceType.CONDA: ("-rf", "../x", "a b", "💥"),
    SourceType.REFERENCE: ("../x", "a b/c", "ns", "-a/b"),
}


@st.composite
def mutated_case(draw: st.DrawFn) -> Case:
    # weighted by how many fields a kind has
    kind = draw(
        st.sampled_from(
            ["ModelSource"] * 3 + ["Model"] * 5 + ["ModelSync"] * 3 + ["ModelReference"] * 2
        )
    )
    return draw(MUTATORS[kind]())


@st.composite
def source_case(draw: st.DrawFn) -> Case:
    source_type = draw(st.sampled_from(list(SourceType)))
    spec = draw(source_spec(source_type))
    choice = draw(st.sampled_from(["type", "config", "config", "config", "secret", "name"]))
    if choice == "type":
        value, label = draw(st.one_of(unknown_enum, wrong_type_for_string))
        mutation = Mutation("ModelSource", ("spec", "type"), value, label)
    elif choice == "config":
        mutation = draw(option_map_mutation("ModelSource", ("spec", "config"), source_type))
    elif choice == "secret":
        if not RULES[source_type].secret_key_sets:  # a type that reads no Secret
            value, label = draw(st.one_of(st.just((SECRET_NAME, "secretRef unused")), bad_names))
        else:
            value, label = draw(bad_names)
        mutation = Mutation("ModelSource", ("spec", "secretRef"), value, label)
    else:
        value, label = draw(bad_names.filter(lambda p: isinstance(p[0], str)))
        mutation = Mutation("ModelSource", ("metadata", "name"), value, label)
    extras = {"repo": draw(REPOS[source_type])}
    return Case("ModelSource", spec, source_type, mutation=mutation, extras=extras)


@st.composite
def model_case(draw: st.DrawFn) -> Case:
    source_type = draw(st.sampled_from(list(SourceType)))
    version = draw(st.sampled_from(["v1", "v2.5.0", "main", "7b-instruct"]))
    spec = draw(model_spec(source_type, shared_source(source_type), version))
    at = ("spec", "versionConfigs", version)
    choice = draw(
        st.sampled_from(
            ["sourceRef", "versions", "repo", "repoConfig", "storage", "share", "share", "name"]
        )
    )
    if choice == "sourceRef":
        value, label = draw(st.one_of(bad_names, fixed("")))
        mutation = Mutation("Model", ("spec", "sourceRef"), value, label)
    elif choice == "versions":
        which = draw(st.sampled_from(["key", "empty", "whole"]))
        if which == "key":
            key, label = draw(bad_versions)
            spec["versionConfigs"] = {key: spec["versionConfigs"][version]}
            mutation = Mutation("Model", ("spec", "versionConfigs"), spec["versionConfigs"], label)
        elif which == "empty":
            mutation = Mutation("Model", ("spec", "versionConfigs"), {}, "no versions")
        else:
            value, label = draw(wrong_type_for_object)
            mutation = Mutation("Model", ("spec", "versionConfigs"), value, label)
    elif choice == "repo":
        value, label = draw(
            st.one_of(
                fixed(*BAD_REPOS[source_type], ""),
                labelled(overlong(1024), "overlong"),
                wrong_type_for_string,
            )
        )
        mutation = Mutation("Model", (*at, "repo"), value, label)
    elif choice == "repoConfig":
        mutation = draw(option_map_mutation("Model", (*at, "repoConfig"), source_type))
    elif choice == "storage":
        where = draw(st.sampled_from([("spec", "storage"), (*at, "storage")]))
        mutation = draw(storage_mutation(where))
    elif choice == "share":
        mutation = draw(
            st.one_of(
                selector_mutation(("spec", "share", "namespaceSelector")),
                wrong_type_for_object.map(lambda p: Mutation("Model", ("spec", "share"), *p)),
            )
        )
    else:
        value, label = draw(bad_names.filter(lambda p: isinstance(p[0], str)))
        mutation = Mutation("Model", ("metadata", "name"), value, label)
    return Case("Model", spec, source_type, version=version, mutation=mutation)


@st.composite
def sync_case(draw: st.DrawFn) -> Case:
    spec = draw(sync_spec("", "v1"))
    fields = ["modelRef", "version", "syncRound", "interval", "limit", "backoff", "backoff"]
    choice = draw(st.sampled_from([*fields, "policy", "name", "retry", "schedule"]))
    if choice == "modelRef":
        value, label = draw(st.one_of(bad_names, fixed("")))
        mutation = Mutation("ModelSync", ("spec", "modelRef"), value, label)
    elif choice == "version":
        value, label = draw(st.one_of(bad_versions, wrong_type_for_string))
        mutation = Mutation("ModelSync", ("spec", "version"), value, label)
    elif choice == "syncRound":
        value, label = draw(st.one_of(bad_integers, fixed(0)))
        mutation = Mutation("ModelSync", ("spec", "syncRound"), value, label)
    elif choice == "interval":
        value, label = draw(durations(below_minimum=True))
        mutation = Mutation("ModelSync", ("spec", "schedule", "interval"), value, label)
    elif choice == "limit":
        value, label = draw(st.one_of(bad_integers, fixed(101)))
        mutation = Mutation("ModelSync", ("spec", "retry", "limit"), value, label)
    elif choice == "backoff":
        value, label = draw(durations(below_minimum=False))
        mutation = Mutation("ModelSync", ("spec", "retry", "backoff"), value, label)
    elif choice == "policy":
        value, label = draw(st.one_of(unknown_enum, wrong_type_for_string))
        mutation = Mutation("ModelSync", ("spec", "deletionPolicy"), value, label)
    elif choice in ("retry", "schedule"):
        value, label = draw(wrong_type_for_object)
        mutation = Mutation("ModelSync", ("spec", choice), value, label)
    else:
        value, label = draw(bad_names.filter(lambda p: isinstance(p[0], str)))
        mutation = Mutation("ModelSync", ("metadata", "name"), value, label)
    return Case("ModelSync", spec, SourceType.HTTP, mutation=mutation)


@st.composite
def reference_case(draw: st.DrawFn) -> Case:
    """A ModelReference of the anchor Model's version (names filled in by the suite)."""
    spec = {"modelRef": {"namespace": "{good}", "name": "{anchor}"}, "version": "{version}"}
    choice = draw(st.sampled_from(["namespace", "name", "version", "modelRef", "name-meta"]))
    if choice == "namespace":
        value, label = draw(st.one_of(bad_names.filter(lambda p: p[0] != "a/b"), fixed("")))
        mutation = Mutation("ModelReference", ("spec", "modelRef", "namespace"), value, label)
    elif choice == "name":
        value, label = draw(st.one_of(bad_names, fixed("")))
        mutation = Mutation("ModelReference", ("spec", "modelRef", "name"), value, label)
    elif choice == "version":
        value, label = draw(st.one_of(bad_versions, wrong_type_for_string))
        mutation = Mutation("ModelReference", ("spec", "version"), value, label)
    elif choice == "modelRef":
        value, label = draw(st.one_of(wrong_type_for_object, fixed({"name": "x"})))
        mutation = Mutation("ModelReference", ("spec", "modelRef"), value, label)
    else:
        value, label = draw(bad_names.filter(lambda p: isinstance(p[0], str)))
        mutation = Mutation("ModelReference", ("metadata", "name"), value, label)
    return Case("ModelReference", spec, SourceType.REFERENCE, mutation=mutation)


MUTATORS: dict[str, Callable[[], st.SearchStrategy[Case]]] = {
    "ModelSource": source_case,
    "Model": model_case,
    "ModelSync": sync_case,
    "ModelReference": reference_case,
}


REPO_OF = {
    SourceType.HUGGING_FACE: "org/model",
    SourceType.S3: "bucket/models",
    SourceType.HTTP: "https://h.example.com/x/",
}


def issue_cases() -> list[Case]:
    """Every hostile value the issue lists, on its field, always in the suite."""
    hf, s3, http = SourceType.HUGGING_FACE, SourceType.S3, SourceType.HTTP
    cases: list[Case] = []

    def add(kind: str, spec: dict[str, Any], source_type: SourceType, mutation: Mutation) -> None:
        extras = {"repo": REPO_OF[source_type]}
        cases.append(Case(kind, spec, source_type, mutation=mutation, extras=extras))

    sync = {"modelRef": "", "version": "v1"}
    path: tuple[str, ...]
    for duration in HUGE_DURATIONS:
        path = ("spec", "retry", "backoff")
        add("ModelSync", dict(sync), http, Mutation("ModelSync", path, duration, "huge backoff"))
        path = ("spec", "schedule", "interval")
        add("ModelSync", dict(sync), http, Mutation("ModelSync", path, duration, "huge interval"))
    hf_source = {"type": "HUGGING_FACE"}
    for key in ("include", "exclude"):
        for value, label in (
            (f"*{NUL}*", "NUL"),
            (f"*{BEL}*", "BEL"),
            (f"*{RLO}*", "U+202E"),
            ("-rf", "leading dash"),
            ("--flag=x", "leading dashes"),
        ):
            path = ("spec", "config", key)
            add("ModelSource", dict(hf_source), hf, Mutation("ModelSource", path, value, label))
    path = ("spec", "config", "include")
    add("ModelSource", dict(hf_source), hf, Mutation("ModelSource", path, "", "empty include"))
    path = ("spec", "secretRef")
    add("ModelSource", dict(hf_source), hf, Mutation("ModelSource", path, "../x", "../x"))
    model = {"sourceRef": shared_source(hf), "versionConfigs": {"v1": {"repo": "org/m"}}}
    selector = ("spec", "share", "namespaceSelector")
    for key in BAD_LABEL_KEYS:
        mutation = Mutation("Model", (*selector, "matchLabels"), "x", f"key {key!r}", key, True)
        add("Model", _deep_copy(model), hf, mutation)
    for value in ("a" * 64, "a b"):
        path = (*selector, "matchLabels", "team")
        add("Model", _deep_copy(model), hf, Mutation("Model", path, value, repr(value), None, True))
    typo = Mutation("Model", selector, {"matchLabel": {"team": "a"}}, "matchLabel typo")
    add("Model", _deep_copy(model), hf, typo)
    for size in HUGE_SIZES:
        path = ("spec", "storage", "size")
        add("Model", _deep_copy(model), hf, Mutation("Model", path, size, f"size {size}"))
        path = ("spec", "versionConfigs", "v1", "storage", "size")
        add("Model", _deep_copy(model), hf, Mutation("Model", path, size, f"size {size}"))
    s3_source = {"type": "S3", "config": {"region": "us-east-1"}}
    path = ("spec", "config", "region")
    add("ModelSource", s3_source, s3, Mutation("ModelSource", path, "-rf", "leading dash"))
    return cases


def emoji_cases() -> list[Case]:
    """`include: 💥💥` blocked its ModelSync for good (issue defect 3). A glob of emoji may be
    valid: refused, marked or READY all pass, but it must not be left without a status."""
    out = []
    for kind, key in [("ModelSource", "include"), ("ModelSource", "exclude"), ("Model", "include")]:
        if kind == "ModelSource":
            spec: dict[str, Any] = {"type": "HUGGING_FACE"}
            path: tuple[str, ...] = ("spec", "config", key)
        else:
            spec = {
                "sourceRef": shared_source(SourceType.HUGGING_FACE),
                "versionConfigs": {"v1": {"repo": "org/m"}},
            }
            path = ("spec", "versionConfigs", "v1", "repoConfig", key)
        mutation = Mutation(kind, path, "💥💥", "emoji", entry=True, tolerated=True)
        extras = {"repo": REPO_OF[SourceType.HUGGING_FACE]}
        out.append(Case(kind, spec, SourceType.HUGGING_FACE, mutation=mutation, extras=extras))
    return out


@dataclass
class Bundle:
    """A valid ModelSource + Model (+ ModelSync) of a loader type, for the good namespace."""

    source_type: SourceType
    version: str
    source: dict[str, Any]
    model: dict[str, Any]
    sync: dict[str, Any] | None
    index: int = 0

    def names(self) -> dict[str, str]:
        return {kind: f"v{PREFIXES[kind]}{self.index}" for kind in KINDS[:3]}

    def numbered(self, index: int) -> Bundle:
        return replace(self, index=index)

    def bodies(self) -> dict[str, dict[str, Any]]:
        """The three bodies by kind, their references filled in."""
        names = self.names()
        found = {
            "ModelSource": self.source,
            "Model": {**self.model, "sourceRef": names["ModelSource"]},
        }
        if self.sync is not None:
            found["ModelSync"] = {**self.sync, "modelRef": names["Model"]}
        return {
            kind: {"metadata": {"name": names[kind]}, "spec": _deep_copy(spec)}
            for kind, spec in found.items()
        }


@st.composite
def valid_bundle(draw: st.DrawFn, with_sync: bool) -> Bundle:
    source_type = draw(st.sampled_from(LOADER_TYPES))
    version = draw(st.sampled_from(["v1", "v2.5.0", "main"]))
    sync = None
    if with_sync:
        sync = draw(sync_spec("", version))
        # READY must last: no Retain finalizer to take off when the namespace goes
        sync.pop("deletionPolicy", None)
    return Bundle(
        source_type,
        version,
        draw(source_spec(source_type)),
        draw(model_spec(source_type, "", version)),
        sync,
    )


# ----------------------------------------------------------------------------- drawing


def generate(
    strategy: st.SearchStrategy[Any], n: int, at: int, key: Callable[[Any], Any] = repr
) -> list[Any]:
    """`n` distinct examples (by `key`) of `strategy`, with hypothesis seeded by `at`.

    Drawn inside a @given run (generate phase only, no database): the same seed and hypothesis
    version give the same list, so a failing case can be found again by its index."""
    found: list[Any] = []
    seen: set[Any] = set()

    @seed(at)
    @settings(
        max_examples=n * 4,
        database=None,
        phases=[Phase.generate],
        deadline=None,
        suppress_health_check=list(HealthCheck),
    )
    @given(st.data())
    def collect(data: st.DataObject) -> None:
        drawn = data.draw(strategy)
        if len(found) < n and key(drawn) not in seen:
            seen.add(key(drawn))
            found.append(drawn)

    collect()
    return found


def case_key(case: Case) -> Any:
    """What makes two cases the same test: the kind, the mutation and the base's source type."""
    mutation = case.mutation
    if mutation is None:
        return (case.kind, case.source_type, repr(case.spec))
    return (case.kind, mutation.path, mutation.key, repr(mutation.value), case.source_type)


# Characters a condition message or API server error may quote a field with.
_BRACKETS = re.compile(r"\[([^\]]*)\]")


def normalize(text: str) -> str:
    """`spec.versionConfigs[v1].repo` and `spec.versionConfigs.v1.repo` alike."""
    return _BRACKETS.sub(lambda m: "." + m.group(1).strip("'\""), text)


def _find(text: str, path: str) -> int:
    """Where `path` occurs in `text` as a whole path (not `spec.storage.size` in `...sizeLimit`),
    or -1."""
    found = re.search(re.escape(path) + r"(?![A-Za-z0-9_])", text)
    return found.end() if found else -1


def names_field(message: str, mutation: Mutation) -> bool:
    """Whether `message` names the mutated field: its path; or an enclosing object's path
    followed by the field's own name (a CEL rule on an object reports the object and says which
    field in its message); or, for a map entry, the map's path (a CEL rule on a map reports the
    map: the entries are its data)."""
    text = normalize(message)
    path = list(mutation.path)
    if _find(text, ".".join(path)) >= 0:
        return True
    if mutation.entry:
        entry_map = path if mutation.key is not None else path[:-1]
        if _find(text, ".".join(entry_map)) >= 0:
            return True
    names = {path[-1]}
    if mutation.entry and mutation.key is None:
        names.add(path[-2])
    for depth in range(len(path) - 1, 1, -1):
        after = _find(text, ".".join(path[:depth]))
        if after >= 0 and any(re.search(rf"\b{re.escape(n)}\b", text[after:]) for n in names):
            return True
    return False


__all__ = [
    "KINDS",
    "LOADER_TYPES",
    "SECRET_DATA",
    "SECRET_NAME",
    "Bundle",
    "Case",
    "Mutation",
    "case_key",
    "emoji_cases",
    "generate",
    "issue_cases",
    "mutated_case",
    "names_field",
    "normalize",
    "shared_source",
    "shared_source_spec",
    "valid_bundle",
]

# Used by the valid bundles' configs: every loader type has its values in tests/strategies.
assert set(LOADER_TYPES) <= set(CONFIG_VALUES)
