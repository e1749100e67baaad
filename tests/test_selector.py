"""modelfs's label selector evaluation against metav1.LabelSelector semantics (hypothesis).

The API server's own verdicts for the same selectors are compared in
e2e/operator/test_selector_server.py.
"""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from modelfs.pkg.labels import SelectorError, selector_matches, validate_selector

keys = st.sampled_from(["team", "tier", "env", "example.com/owner"])
values = st.sampled_from(["ml", "web", "gpu", "prod", "dev"])
label_sets = st.dictionaries(keys, values, max_size=4)


@st.composite
def requirements(draw: st.DrawFn) -> dict[str, Any]:
    operator = draw(st.sampled_from(["In", "NotIn", "Exists", "DoesNotExist"]))
    requirement: dict[str, Any] = {"key": draw(keys), "operator": operator}
    if operator in ("In", "NotIn"):
        requirement["values"] = draw(st.lists(values, min_size=1, max_size=3, unique=True))
    return requirement


selectors = st.fixed_dictionaries(
    {},
    optional={
        "matchLabels": st.dictionaries(keys, values, max_size=2),
        "matchExpressions": st.lists(requirements(), max_size=3),
    },
)


def by_the_book(requirement: dict[str, Any], labels: dict[str, str]) -> bool:
    """One requirement, as the Kubernetes API reference words it."""
    key, operator = requirement["key"], requirement["operator"]
    if operator == "In":  # the key exists and its value is one of the values
        return key in labels and labels[key] in requirement["values"]
    if operator == "NotIn":  # the key does not exist, or its value is not one of the values
        return key not in labels or labels[key] not in requirement["values"]
    if operator == "Exists":
        return key in labels
    return key not in labels


@settings(max_examples=1000)
@given(selectors, label_sets)
def test_requirements_are_anded(selector: dict[str, Any], labels: dict[str, str]) -> None:
    as_requirements = [
        {"key": k, "operator": "In", "values": [v]}
        for k, v in selector.get("matchLabels", {}).items()
    ] + selector.get("matchExpressions", [])
    expected = all(by_the_book(r, labels) for r in as_requirements)
    assert selector_matches(selector, labels) is expected


@given(label_sets)
def test_an_empty_selector_matches_every_namespace(labels: dict[str, str]) -> None:
    assert selector_matches({}, labels)
    assert selector_matches({"matchLabels": {}, "matchExpressions": []}, labels)


@settings(max_examples=500)
@given(selectors, requirements(), label_sets)
def test_adding_a_requirement_never_widens(
    selector: dict[str, Any], extra: dict[str, Any], labels: dict[str, str]
) -> None:
    narrower = {**selector, "matchExpressions": [*selector.get("matchExpressions", []), extra]}
    assert not (selector_matches(narrower, labels) and not selector_matches(selector, labels))


@pytest.mark.parametrize(
    ("requirement", "field"),
    [
        ({"key": "a", "operator": "In", "values": []}, "matchExpressions[0].values"),
        ({"key": "a", "operator": "Exists", "values": ["x"]}, "matchExpressions[0].values"),
        ({"key": "a", "operator": "Near"}, "matchExpressions[0].operator"),
    ],
)
def test_invalid_selectors_are_refused_naming_the_field(
    requirement: dict[str, Any], field: str
) -> None:
    with pytest.raises(SelectorError) as caught:
        validate_selector({"matchExpressions": [requirement]}, "spec.share.namespaceSelector")
    assert caught.value.field == f"spec.share.namespaceSelector.{field}"
