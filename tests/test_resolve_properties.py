"""Properties of spec resolution, checked on generated inputs (hypothesis)."""

from __future__ import annotations

import copy
import json
import re
from typing import Any

from hypothesis import assume, given, settings
from hypothesis import strategies as st

from modelfs.api.v1 import SourceType
from modelfs.pkg.dataset import (
    MAX_DATASET_NAME_LENGTH,
    RULES,
    Resolution,
    ResolutionError,
    dataset_name,
    ownership_conflict,
    resolve_bodies,
)
from tests.strategies import CONFIG_VALUES, SECRET_TYPES, valid_inputs

DNS_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
LABEL_VALUE = re.compile(r"^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$")
EXAMPLES = settings(max_examples=300, deadline=None)


def run(inputs: dict[str, Any]) -> Resolution:
    return resolve_bodies(inputs["source"], inputs["model"], inputs["sync"])


def the_version(inputs: dict[str, Any]) -> str:
    return str(inputs["sync"]["spec"]["version"])


@EXAMPLES
@given(valid_inputs())
def test_resolution_is_deterministic(inputs: dict[str, Any]) -> None:
    first = run(inputs).dataset.to_manifest()
    again = run(copy.deepcopy(inputs)).dataset.to_manifest()
    assert json.dumps(first, sort_keys=True) == json.dumps(again, sort_keys=True)


@EXAMPLES
@given(valid_inputs())
def test_dataset_is_well_formed(inputs: dict[str, Any]) -> None:
    manifest = run(inputs).dataset.to_manifest()
    name = manifest["metadata"]["name"]
    assert DNS_SUBDOMAIN.fullmatch(name) and len(name) <= MAX_DATASET_NAME_LENGTH
    assert manifest["metadata"]["namespace"] == inputs["sync"]["metadata"]["namespace"]
    assert manifest["spec"]["source"]["type"] == inputs["source"]["spec"]["type"]
    labels = manifest["metadata"]["labels"]
    assert labels["app.kubernetes.io/managed-by"] == "modelfs"
    assert all(len(v) <= 63 for v in labels.values())
    options = manifest["spec"]["source"].get("options", {})
    allowed = RULES[SourceType(inputs["source"]["spec"]["type"])].options
    assert set(options) <= allowed
    assert "status" not in manifest


@settings(max_examples=1000, deadline=None)
@given(
    st.from_regex(r"\A[a-z0-9]([-a-z0-9.]{0,250}[a-z0-9])?\Z"),
    st.from_regex(r"\A[a-z0-9]([-a-z0-9.]{0,61}[a-z0-9])?\Z"),
)
def test_every_name_is_a_short_valid_subdomain_and_stable(model: str, version: str) -> None:
    name = dataset_name(model, version)
    assert DNS_SUBDOMAIN.fullmatch(name)
    assert len(name) <= MAX_DATASET_NAME_LENGTH
    assert dataset_name(model, version) == name
    # What the Dataset operator builds from it stays valid: Job name and label value.
    job = f"dataset-{name}-round-1"
    assert len(job) <= 63 and DNS_SUBDOMAIN.fullmatch(job)
    assert LABEL_VALUE.fullmatch(name)
    written = f"{model}-{version}"
    if len(written) <= MAX_DATASET_NAME_LENGTH and DNS_SUBDOMAIN.fullmatch(written):
        assert name == written  # as the user wrote it


@settings(max_examples=500, deadline=None)
@given(
    st.from_regex(r"\A[a-z0-9]{1,40}\Z"),
    st.from_regex(r"\A[a-z0-9]{1,40}\Z"),
    st.from_regex(r"\A[a-z0-9]{1,40}\Z"),
)
def test_model_version_boundaries(a: str, b: str, c: str) -> None:
    """`a-b`+`c` and `a`+`b-c` spell one readable name when it fits (the operator refuses the
    second ModelSync as a conflict, since the Dataset is owned by the first), and two distinct
    names once the name is shortened, since the hash covers the parts separately."""
    left, right = dataset_name(f"{a}-{b}", c), dataset_name(a, f"{b}-{c}")
    if len(f"{a}-{b}-{c}") <= MAX_DATASET_NAME_LENGTH:
        assert left == right == f"{a}-{b}-{c}"
    else:
        assert left != right


@EXAMPLES
@given(valid_inputs(), st.data())
def test_version_config_overrides_source_config_key_by_key(
    inputs: dict[str, Any], data: st.DataObject
) -> None:
    source_type = SourceType(inputs["source"]["spec"]["type"])
    values = CONFIG_VALUES[source_type]
    assume(values)
    key = data.draw(st.sampled_from(sorted(values)))
    source_value, version_value = data.draw(values[key]), data.draw(values[key])
    inputs["source"]["spec"]["config"][key] = source_value
    version = the_version(inputs)
    repo_config = inputs["model"]["spec"]["versionConfigs"][version]["repoConfig"]
    repo_config.pop(key, None)
    without_override = run(inputs)

    repo_config[key] = version_value
    with_override = run(inputs)
    options = with_override.dataset.spec.source.options
    if key in RULES[source_type].options:
        assert without_override.dataset.spec.source.options[key] == source_value
        assert options[key] == version_value
    # Every other source key keeps the source's value.
    for other, value in inputs["source"]["spec"]["config"].items():
        if other != key and other not in repo_config and other in RULES[source_type].options:
            assert options[other] == value


# A prefix no input, manifest key or name can contain: a canary is found only if it leaked.
CANARY_PREFIX = "CANARY\u2603SECRET:"


@EXAMPLES
@given(valid_inputs(), st.lists(st.text(min_size=1, max_size=40), min_size=1, max_size=4))
def test_no_secret_value_reaches_the_dataset(inputs: dict[str, Any], tails: list[str]) -> None:
    source_type = SourceType(inputs["source"]["spec"]["type"])
    assume(source_type in SECRET_TYPES)
    inputs["source"]["spec"]["secretRef"] = "creds"
    secrets = [f"{CANARY_PREFIX}{tail}" for tail in tails]
    assert CANARY_PREFIX not in json.dumps(inputs, ensure_ascii=False)
    # The Secret's data exists beside the inputs; resolution is given its name, never its data.
    secret_data = {f"key{index}": value for index, value in enumerate(secrets)}
    manifest = json.dumps(run(inputs).dataset.to_manifest(), ensure_ascii=False)
    assert '"secretRef": "creds"' in manifest
    for value in secret_data.values():
        assert value not in manifest


def mutate(inputs: dict[str, Any], choice: int, data: st.DataObject) -> tuple[str, str]:
    """Break one field; return the kind and field path the error must name."""
    version = the_version(inputs)
    source_spec = inputs["source"]["spec"]
    version_spec = inputs["model"]["spec"]["versionConfigs"][version]
    source_type = SourceType(source_spec["type"])
    if choice == 0:
        key = data.draw(st.sampled_from(["foo", "token", "password", "bogusKey"]))
        source_spec["config"][key] = "x"
        return "ModelSource", f"spec.config.{key}"
    if choice == 1:
        key = data.draw(st.sampled_from(sorted(CONFIG_VALUES[source_type]) or ["nothing"]))
        version_spec["repoConfig"][key] = "a b"
        return "Model", f"spec.versionConfigs[{version}].repoConfig.{key}"
    if choice == 2:
        inputs["sync"]["spec"]["version"] = version + "-missing"
        return "ModelSync", "spec.version"
    if choice == 3:
        inputs["sync"]["spec"]["modelRef"] = "someone-else"
        return "ModelSync", "spec.modelRef"
    if choice == 4:
        inputs["model"]["spec"]["sourceRef"] = "another-source"
        return "Model", "spec.sourceRef"
    if choice == 5:
        version_spec["repo"] = "?query=1 with spaces"
        return "Model", f"spec.versionConfigs[{version}].repo"
    if choice == 6:
        key = (
            "include" if source_type in (SourceType.HUGGING_FACE, SourceType.MODEL_SCOPE) else "x y"
        )
        source_spec["config"][key] = "*.json,*.safetensors"
        return "ModelSource", f"spec.config.{key}"
    if choice == 7:
        source_spec["type"] = "FTP"
        return "ModelSource", "spec.type"
    if choice == 8:
        version_spec["storage"] = {"size": "lots"}
        return "Model", f"spec.versionConfigs[{version}].storage.size"
    inputs["sync"]["spec"].pop("modelRef")
    return "ModelSync", "spec.modelRef"


@settings(max_examples=500, deadline=None)
@given(valid_inputs(), st.integers(0, 9), st.data())
def test_every_invalid_input_names_the_field(
    inputs: dict[str, Any], choice: int, data: st.DataObject
) -> None:
    kind, field = mutate(inputs, choice, data)
    try:
        run(inputs)
    except ResolutionError as error:
        assert (error.kind, error.field) == (kind, field), str(error)
        assert error.message
        assert str(error).startswith(f"{kind} {field}: ")
    else:
        raise AssertionError(f"{kind} {field} was broken but resolved")


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=10),
    lambda children: (
        st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=10), children, max_size=3)
    ),
    max_leaves=10,
)


@settings(max_examples=500, deadline=None)
@given(valid_inputs(), st.sampled_from(["source", "model", "sync"]), st.data())
def test_arbitrary_bodies_give_a_resolution_or_a_resolution_error(
    inputs: dict[str, Any], which: str, data: st.DataObject
) -> None:
    """Whatever a body holds, resolution answers with a Dataset or a ResolutionError."""
    body = inputs[which]
    path = [data.draw(st.sampled_from(sorted(body)))]
    target = body[path[0]]
    while isinstance(target, dict) and target and data.draw(st.booleans()):
        path.append(data.draw(st.sampled_from(sorted(target))))
        target = target[path[-1]]
    parent = body
    for key in path[:-1]:
        parent = parent[key]
    parent[path[-1]] = data.draw(json_values)
    try:
        run(inputs)
    except ResolutionError as error:
        assert error.field and error.message


long_version = st.from_regex(r"\A[a-z0-9][-a-z0-9.]{4,40}[a-z0-9]\Z")


@EXAMPLES
@given(long_version, long_version)
def test_distinct_versions_of_one_model_never_share_a_shortened_name(v1: str, v2: str) -> None:
    model = "m" * 40
    assume(v1 != v2)
    assert dataset_name(model, v1) != dataset_name(model, v2)


@EXAMPLES
@given(
    st.from_regex(r"\A[a-z0-9]{1,12}\Z"),
    st.from_regex(r"\A[a-z0-9]{1,12}\Z"),
    st.from_regex(r"\A[a-z0-9]{1,12}\Z"),
)
def test_a_boundary_collision_is_refused_naming_the_first_owner(a: str, b: str, c: str) -> None:
    """Model `a-b` version `c` and Model `a` version `b-c` want one Dataset; the second
    ModelSync is refused, never handed the first one's Dataset."""
    first = make_sync_inputs(f"{a}-{b}", c, "first", "uid-1")
    second = make_sync_inputs(a, f"{b}-{c}", "second", "uid-2")
    first_dataset = run(first).dataset.to_manifest()
    second_dataset = run(second).dataset.to_manifest()
    assert first_dataset["metadata"]["name"] == second_dataset["metadata"]["name"]
    conflict = ownership_conflict(first_dataset, "uid-2")
    assert conflict is not None and "'first'" in conflict
    assert ownership_conflict(first_dataset, "uid-1") is None


def make_sync_inputs(model: str, version: str, sync: str, uid: str) -> dict[str, Any]:
    meta = {"namespace": "team-a"}
    return {
        "source": {"metadata": {"name": "s", **meta}, "spec": {"type": "PVC"}},
        "model": {
            "metadata": {"name": model, **meta},
            "spec": {"sourceRef": "s", "versionConfigs": {version: {"repo": "pvc/x"}}},
        },
        "sync": {
            "metadata": {"name": sync, "uid": uid, **meta},
            "spec": {"modelRef": model, "version": version},
        },
    }
