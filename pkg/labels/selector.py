"""metav1.LabelSelector semantics: matchLabels and matchExpressions, ANDed; empty matches all."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from modelfs.api.v1.rules import (
    EMPTY_SHARE_MESSAGE,
    OPERATOR_VALUES_MESSAGE,
    check_label_key,
    check_label_value,
)

OPERATORS = ("In", "NotIn", "Exists", "DoesNotExist")


class SelectorError(ValueError):
    """A selector the API server would refuse; `field` names the offending part."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field


def validate_selector(
    selector: Mapping[str, Any], path: str = "namespaceSelector", *, allow_empty: bool = False
) -> None:
    """Raise SelectorError for what metav1 validation refuses (so it never matches silently),
    with the same rules and words as the CRD's CEL (api/v1/rules.py).

    An empty selector matches every namespace; it is refused unless `allow_empty`, because a
    share selector is only ever empty by mistake (a mistyped field, pruned by the API server).
    """
    labels = selector.get("matchLabels") or {}
    expressions = selector.get("matchExpressions") or []
    if not isinstance(labels, Mapping) or not isinstance(expressions, list):
        raise SelectorError(path, "matchLabels must be a map and matchExpressions a list")
    if not allow_empty and not labels and not expressions:
        raise SelectorError(path, EMPTY_SHARE_MESSAGE)
    for key, value in labels.items():
        problem = check_label_key(str(key))
        if problem is not None:
            raise SelectorError(f"{path}.matchLabels", f"key {key!r} {problem}")
        problem = check_label_value(str(value))
        if problem is not None:
            raise SelectorError(f"{path}.matchLabels[{key}]", f"{value!r} {problem}")
    for index, requirement in enumerate(expressions):
        where = f"{path}.matchExpressions[{index}]"
        operator = requirement.get("operator")
        values = requirement.get("values") or []
        problem = check_label_key(str(requirement.get("key", "")))
        if problem is not None:
            raise SelectorError(f"{where}.key", problem)
        if operator not in OPERATORS:
            raise SelectorError(f"{where}.operator", f"must be one of {', '.join(OPERATORS)}")
        if (operator in ("In", "NotIn")) != bool(values):
            raise SelectorError(
                f"{where}.values", f"{OPERATOR_VALUES_MESSAGE} (operator {operator})"
            )
        for position, value in enumerate(values):
            problem = check_label_value(str(value))
            if problem is not None:
                raise SelectorError(f"{where}.values[{position}]", f"{value!r} {problem}")


def selector_matches(selector: Mapping[str, Any], labels: Mapping[str, str]) -> bool:
    """Whether `labels` satisfy `selector` (call validate_selector first)."""
    for key, value in (selector.get("matchLabels") or {}).items():
        if labels.get(key) != value:
            return False
    for requirement in selector.get("matchExpressions") or []:
        key, operator = requirement["key"], requirement["operator"]
        values = set(requirement.get("values") or [])
        present = key in labels
        if operator == "In" and not (present and labels[key] in values):
            return False
        if operator == "NotIn" and present and labels[key] in values:
            return False
        if operator == "Exists" and not present:
            return False
        if operator == "DoesNotExist" and present:
            return False
    return True
