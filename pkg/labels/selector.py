"""metav1.LabelSelector semantics: matchLabels and matchExpressions, ANDed; empty matches all."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

OPERATORS = ("In", "NotIn", "Exists", "DoesNotExist")


class SelectorError(ValueError):
    """A selector the API server would refuse; `field` names the offending part."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field


def validate_selector(selector: Mapping[str, Any], path: str = "namespaceSelector") -> None:
    """Raise SelectorError for what metav1 validation refuses (so it never matches silently)."""
    for index, requirement in enumerate(selector.get("matchExpressions") or []):
        where = f"{path}.matchExpressions[{index}]"
        operator = requirement.get("operator")
        values = requirement.get("values") or []
        if operator not in OPERATORS:
            raise SelectorError(f"{where}.operator", f"must be one of {', '.join(OPERATORS)}")
        if operator in ("In", "NotIn") and not values:
            raise SelectorError(f"{where}.values", f"must be non-empty for {operator}")
        if operator in ("Exists", "DoesNotExist") and values:
            raise SelectorError(f"{where}.values", f"must be empty for {operator}")


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
