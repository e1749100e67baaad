"""Kubernetes label selectors, evaluated by modelfs itself (sharing decisions are modelfs's to
make, not the Dataset operator's)."""

from modelfs.pkg.labels.selector import SelectorError, selector_matches, validate_selector

__all__ = ["SelectorError", "selector_matches", "validate_selector"]
