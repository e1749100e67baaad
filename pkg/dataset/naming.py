"""Dataset names and label values: valid, short enough, stable.

The Dataset operator names the loader Job `dataset-<name>-round-<N>` and copies labels onto Jobs and
PVCs, which must stay within 63 characters; so a Dataset name has at most 45 characters. Names are
written as the user wrote them whenever that is a valid name: a DNS subdomain, so dots stay
(`qwen-model-v2.5.0`, which the Dataset operator handles: docs/dataset-controller.md#names).
Only characters Kubernetes refuses are replaced.
"""

from __future__ import annotations

import hashlib
import re

MAX_DATASET_NAME_LENGTH = 45
MAX_LABEL_VALUE_LENGTH = 63
HASH_LENGTH = 8

DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
DNS_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
LABEL_VALUE = re.compile(r"^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$")
_NOT_IN_LABEL = re.compile(r"[^a-z0-9-]")
_NOT_IN_SUBDOMAIN = re.compile(r"[^a-z0-9.-]")
_NOT_IN_LABEL_VALUE = re.compile(r"[^A-Za-z0-9_.-]")


def _digest(*parts: str) -> str:
    # "/" cannot occur in Kubernetes names, so ("a-b", "c") and ("a", "b-c") hash differently.
    return hashlib.sha256("/".join(parts).encode()).hexdigest()[:HASH_LENGTH]


def _shorten(text: str, limit: int, digest: str) -> str:
    head = text[: limit - HASH_LENGTH - 1].rstrip("-_.")
    return f"{head}-{digest}" if head else digest


def dns_label(*parts: str, limit: int = MAX_DATASET_NAME_LENGTH) -> str:
    """`parts` joined with '-', lowercased, other characters turned into '-', cut to `limit`.

    A name that had to be cut ends in a hash of the original parts, so it stays stable and
    distinct; a name that fits is kept readable as is.
    """
    joined = "-".join(parts)
    name = _NOT_IN_LABEL.sub("-", joined.lower()).strip("-")
    if name and len(name) <= limit:
        return name
    return _shorten(name, limit, _digest(*parts))


def dns_subdomain(*parts: str, limit: int = MAX_DATASET_NAME_LENGTH) -> str:
    """`parts` joined with '-', as written when that is a DNS subdomain of at most `limit`
    characters (dots stay); otherwise lowercased with the refused characters turned into '-',
    and, when that still is no subdomain (`a..b`, `a.-b`), `dns_label` of the parts."""
    joined = "-".join(parts)
    name = _NOT_IN_SUBDOMAIN.sub("-", joined.lower())
    if not DNS_SUBDOMAIN.fullmatch(name):
        return dns_label(*parts, limit=limit)
    if len(name) <= limit:
        return name
    shortened = _shorten(name, limit, _digest(*parts))
    return shortened if DNS_SUBDOMAIN.fullmatch(shortened) else dns_label(*parts, limit=limit)


def dataset_name(model: str, version: str) -> str:
    """The Dataset a ModelSync creates: `{model}-{version}` (the seed's words)."""
    return dns_subdomain(model, version)


def reference_dataset_name(reference: str) -> str:
    """The REFERENCE Dataset a ModelReference creates, named after it."""
    return dns_subdomain(reference)


def label_value(value: str) -> str:
    """`value` as a valid label value (at most 63 characters), hashed when it had to be cut."""
    cleaned = _NOT_IN_LABEL_VALUE.sub("-", value).strip("-_.")
    if cleaned == value and len(value) <= MAX_LABEL_VALUE_LENGTH:
        return value
    if len(cleaned) <= MAX_LABEL_VALUE_LENGTH and cleaned:
        return cleaned
    return _shorten(cleaned, MAX_LABEL_VALUE_LENGTH, _digest(value))
