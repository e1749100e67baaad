"""The hostile-input suite's own logic: what counts as naming a field, how a mutation lands in a
body, and that the drawn cases are the same on every run."""

from __future__ import annotations

from typing import Any

from hypothesis import given, settings

from modelfs.api.v1 import SourceType
from tests.hostile_strategies import (
    Case,
    Mutation,
    case_key,
    generate,
    issue_cases,
    mutated_case,
    names_field,
    normalize,
)

REPO_CONFIG = ("spec", "versionConfigs", "v1", "repoConfig", "include")


def test_a_path_is_named_in_either_notation() -> None:
    value = Mutation("Model", REPO_CONFIG, "-rf", "dash", entry=True)
    assert names_field("Model spec.versionConfigs[v1].repoConfig.include: no", value)
    assert names_field('spec.versionConfigs["v1"].repoConfig.include: Invalid value', value)
    assert normalize("a[b].c[0]") == "a.b.c.0"


def test_a_map_entry_is_named_by_its_map_but_not_by_an_outer_map() -> None:
    value = Mutation("Model", REPO_CONFIG, "-rf", "dash", entry=True)
    assert names_field("spec.versionConfigs.v1.repoConfig: Invalid value: values must not", value)
    assert not names_field("spec.versionConfigs: Invalid value: version names must", value)
    key = Mutation("ModelSource", ("spec", "config"), "x", "bad key", key="a b", entry=True)
    assert names_field("spec.config: Invalid value: config keys may contain only", key)


def test_an_object_path_names_a_field_only_with_the_field_name_after_it() -> None:
    size = Mutation("Model", ("spec", "storage", "size"), "0", "size 0")
    assert names_field("spec.storage: Invalid value: size must be more than 0", size)
    assert not names_field("spec.storage: Invalid value: accessModes must be", size)
    assert not names_field("size is wrong somewhere", size)
    assert not names_field("spec.storage.sizeLimit: Invalid value", size)
    assert not names_field("spec.storage: Invalid value: sizeLimit must be", size)


def test_a_reference_that_does_not_exist_does_not_name_the_field() -> None:
    ref = Mutation("Model", ("spec", "sourceRef"), "../x", "../x")
    assert not names_field("ModelSource '../x' does not exist in this namespace", ref)
    assert names_field("spec.sourceRef: must be a DNS subdomain name, not '../x'", ref)


def test_a_mutation_changes_one_place_and_leaves_the_base_alone() -> None:
    base: dict[str, Any] = {
        "metadata": {"name": "m"},
        "spec": {"sourceRef": "s", "versionConfigs": {"v1": {}}},
    }
    added = Mutation("Model", ("spec", "share", "namespaceSelector", "matchLabels"), "x", "k", "")
    body = added.apply(base)
    assert body["spec"]["share"] == {"namespaceSelector": {"matchLabels": {"": "x"}}}
    assert "share" not in base["spec"]
    replaced = Mutation("Model", ("spec", "versionConfigs", "v1", "repo"), 5, "wrong type")
    assert replaced.apply(base)["spec"]["versionConfigs"]["v1"] == {"repo": 5}


def test_the_drawn_cases_are_the_same_on_every_run() -> None:
    first = [case_key(c) for c in generate(mutated_case(), 40, 7, case_key)]
    again = [case_key(c) for c in generate(mutated_case(), 40, 7, case_key)]
    assert first == again and len(set(first)) == 40
    other = [case_key(c) for c in generate(mutated_case(), 40, 8, case_key)]
    assert other != first


def test_the_issue_values_are_all_in_the_suite() -> None:
    values = {repr(c.mutation.value) for c in issue_cases() if c.mutation is not None}
    for wanted in ("100000000h", "2562048h", "*\x00*", "*\x07*", "*\u202e*", "", "-rf"):
        assert repr(wanted) in values, wanted
    for wanted in ("--flag=x", "../x", "0", "1" * 60, "99999999999999999999999Ei"):
        assert repr(wanted) in values, wanted


@settings(max_examples=60, derandomize=True, database=None)
@given(mutated_case())
def test_every_case_mutates_exactly_its_field(case: Case) -> None:
    assert case.mutation is not None
    body = case.body()
    node = body
    for part in case.mutation.path[:-1]:
        node = node[part]
    last = case.mutation.path[-1]
    if case.mutation.key is None:
        assert node[last] == case.mutation.value
    else:
        assert node[last][case.mutation.key] == case.mutation.value
    assert case.source_type in SourceType


def test_a_case_is_named_by_its_index() -> None:
    case = Case("ModelSync", {"modelRef": "", "version": "v1"}, SourceType.HTTP).numbered(12)
    assert case.name == "syn12" and case.body()["spec"]["modelRef"] == case.companion
