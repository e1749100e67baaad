"""Admission rules, each written once for both places it runs: the CRD's CEL (the API server
refuses the object) and resolution in Python (an object stored before the rule existed gets the
same verdict on its status). Each `check_*` returns why a value is refused, or None; its message
is the CEL rule's message, so both name what is allowed in the same words.

Durations and quantities are parsed exactly (Decimal, Fraction), so no string that matches the
schema's pattern can overflow here, however many digits it has.
"""

from __future__ import annotations

import re
import unicodedata
from datetime import timedelta
from decimal import Decimal
from fractions import Fraction

from pydantic import JsonValue

from modelfs.api.v1.meta import cel

# ---------------------------------------------------------------------------- names

# RFC 1123 subdomain (the names of Secrets, ModelSources, Models, StorageClasses) and label
# (namespaces), as apimachinery's IsDNS1123Subdomain / IsDNS1123Label check them.
DNS_SUBDOMAIN_PATTERN = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?([.][a-z0-9]([-a-z0-9]*[a-z0-9])?)*$"
DNS_LABEL_PATTERN = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$"
MAX_SUBDOMAIN = 253
MAX_LABEL = 63
_SUBDOMAIN = re.compile(DNS_SUBDOMAIN_PATTERN)
_LABEL = re.compile(DNS_LABEL_PATTERN)


def subdomain_message(what: str) -> str:
    return (
        f"{what} must be a DNS subdomain name: at most {MAX_SUBDOMAIN} lowercase letters, digits, "
        "'-' and '.', starting and ending with a letter or digit"
    )


def label_message(what: str) -> str:
    return (
        f"{what} must be a DNS label: at most {MAX_LABEL} lowercase letters, digits and '-', "
        "starting and ending with a letter or digit"
    )


def subdomain_rules(what: str) -> list[JsonValue]:
    return [
        cel(
            f"self.size() <= {MAX_SUBDOMAIN} && self.matches('{DNS_SUBDOMAIN_PATTERN}')",
            subdomain_message(what),
        )
    ]


def label_rules(what: str) -> list[JsonValue]:
    return [
        cel(
            f"self.size() <= {MAX_LABEL} && self.matches('{DNS_LABEL_PATTERN}')",
            label_message(what),
        )
    ]


def check_subdomain(value: str, what: str) -> str | None:
    ok = len(value) <= MAX_SUBDOMAIN and _SUBDOMAIN.fullmatch(value)
    return None if ok else subdomain_message(what)


def check_label(value: str, what: str) -> str | None:
    ok = len(value) <= MAX_LABEL and _LABEL.fullmatch(value)
    return None if ok else label_message(what)


# ---------------------------------------------------------------------------- durations

# A Go duration as Kubernetes writes it (`90s`, `1h30m`, `24h`).
DURATION_PATTERN = r"^([0-9]+([.][0-9]+)?(ns|us|ms|s|m|h))+$"
_DURATION_PART = re.compile(r"([0-9]+(?:[.][0-9]+)?)(ns|us|ms|s|m|h)")
_DURATION = re.compile(DURATION_PATTERN)
UNIT_NANOSECONDS = {
    "ns": 1,
    "us": 10**3,
    "ms": 10**6,
    "s": 10**9,
    "m": 60 * 10**9,
    "h": 3600 * 10**9,
}
# Bounds a user would expect: a schedule runs at least every 10 s and at least once a year; a
# retry waits between 1 s and 24 h, and the doubling stops at 24 h (RETRY_WAIT_CAP).
INTERVAL_MIN, INTERVAL_MAX = "10s", "8760h"
BACKOFF_MIN, BACKOFF_MAX = "1s", "24h"
RETRY_WAIT_CAP = timedelta(hours=24)
# What parse_duration saturates at: far beyond every bound, far below timedelta's limits.
DURATION_CEILING = timedelta(days=365 * 100)


def duration_seconds(text: str) -> Decimal:
    """The length of a duration matching DURATION_PATTERN, in seconds, as Go's ParseDuration
    (and so CEL's `duration()`) reads it: each part's fraction truncated to whole nanoseconds.
    Exact, so no number of digits overflows."""
    if not _DURATION.fullmatch(text):
        raise ValueError(f"{text!r} is not a duration such as 90s, 30m or 1h30m")
    nanoseconds = 0
    for number, unit in _DURATION_PART.findall(text):
        whole, _, fraction = number.partition(".")
        scale = UNIT_NANOSECONDS[unit]
        nanoseconds += int(whole) * scale
        if fraction:
            nanoseconds += int(fraction) * scale // 10 ** len(fraction)
    return Decimal(nanoseconds) / Decimal(10**9)


def parse_duration(text: str) -> timedelta:
    """`text` as a timedelta, saturated at DURATION_CEILING so that any length of digits (and
    any later arithmetic within the bounds) stays representable."""
    seconds = min(duration_seconds(text), Decimal(DURATION_CEILING.total_seconds()))
    return timedelta(seconds=float(seconds))


def duration_message(what: str, low: str, high: str) -> str:
    return f"{what} must be a duration from {low} to {high} (such as 90s, 30m or 1h30m)"


def duration_rules(what: str, low: str, high: str) -> list[JsonValue]:
    # A duration too long for Go's time.Duration fails CEL's conversion: the API server then
    # refuses it with this same message after "type conversion error ... evaluating rule:".
    return [
        cel(
            f"duration(self) >= duration('{low}') && duration(self) <= duration('{high}')",
            duration_message(what, low, high),
        )
    ]


def check_duration(text: str, what: str, low: str, high: str) -> str | None:
    try:
        seconds = duration_seconds(text)
    except ValueError:
        return duration_message(what, low, high)
    if duration_seconds(low) <= seconds <= duration_seconds(high):
        return None
    return duration_message(what, low, high)


def retry_wait(backoff: str, attempts: int) -> timedelta:
    """The wait before retry `attempts + 1`: backoff doubled per earlier attempt, at most
    RETRY_WAIT_CAP (so a limit of 100 retries, or any backoff string, never overflows)."""
    cap = Decimal(RETRY_WAIT_CAP.total_seconds())
    seconds = min(duration_seconds(backoff) * 2 ** min(max(attempts, 0), 64), cap)
    return timedelta(seconds=float(seconds))


# ---------------------------------------------------------------------------- quantities

# A Kubernetes quantity for sizes (no exponent form).
QUANTITY_PATTERN = r"^[0-9]+([.][0-9]+)?(Ki|Mi|Gi|Ti|Pi|Ei|k|M|G|T|P|E)?$"
_QUANTITY = re.compile(r"^([0-9]+(?:\.[0-9]+)?)(Ki|Mi|Gi|Ti|Pi|Ei|k|M|G|T|P|E)?$")
SUFFIX = {
    "": 1,
    "k": 10**3,
    "M": 10**6,
    "G": 10**9,
    "T": 10**12,
    "P": 10**15,
    "E": 10**18,
    "Ki": 2**10,
    "Mi": 2**20,
    "Gi": 2**30,
    "Ti": 2**40,
    "Pi": 2**50,
    "Ei": 2**60,
}
# A PVC larger than 1 PiB is a typo; 100Ti (the Dataset operator's default) fits.
SIZE_MAX = "1Pi"


def quantity_bytes(text: str) -> Fraction:
    """The exact value of a quantity matching QUANTITY_PATTERN (no overflow)."""
    found = _QUANTITY.fullmatch(text)
    if not found:
        raise ValueError(f"{text!r} is not a quantity such as 200Gi")
    return Fraction(found.group(1)) * SUFFIX[found.group(2) or ""]


def size_message(what: str) -> str:
    return f"{what} must be a quantity greater than 0 and at most {SIZE_MAX} (such as 200Gi)"


def size_rules(what: str) -> list[JsonValue]:
    return [
        cel(
            "isQuantity(self) && quantity(self).isGreaterThan(quantity('0')) && "
            f"quantity(self).compareTo(quantity('{SIZE_MAX}')) <= 0",
            size_message(what),
        )
    ]


def check_size(text: str, what: str) -> str | None:
    try:
        value = quantity_bytes(text)
    except ValueError:
        return size_message(what)
    return None if 0 < value <= quantity_bytes(SIZE_MAX) else size_message(what)


# ---------------------------------------------------------------------------- option values

# Unicode "other" characters a value may not hold: controls (NUL, BEL, ...), format characters
# (bidi overrides such as U+202E, zero-width spaces), private use and surrogates. Unassigned code
# points (Cn) are left alone: Python's and Go's Unicode tables differ there.
REFUSED_CATEGORIES = ("Cc", "Cf", "Co", "Cs")
_CEL_REFUSED = "[\\\\p{Cc}\\\\p{Cf}\\\\p{Co}\\\\p{Cs}]"

OPTION_EMPTY = "must not be empty: leave the key out instead"
OPTION_CONTROL = (
    "must not contain control or format characters (such as NUL, BEL or U+202E): the loader "
    "would receive them unseen"
)
OPTION_DASH = (
    "must not start with '-': the loader passes some values as separate command-line arguments "
    "(git, huggingface-cli, modelscope), where a leading '-' is read as an option"
)


def option_value_rules(what: str) -> list[JsonValue]:
    """CEL over each value of an option map (`self` is the value)."""
    return [
        cel("self.size() > 0", f"{what} values {OPTION_EMPTY}"),
        cel(f"!self.matches('{_CEL_REFUSED}')", f"{what} values {OPTION_CONTROL}"),
        cel("!self.startsWith('-')", f"{what} values {OPTION_DASH}"),
    ]


def has_refused_character(value: str) -> bool:
    return any(unicodedata.category(char) in REFUSED_CATEGORIES for char in value)


def check_option_value(value: str) -> str | None:
    if not value:
        return OPTION_EMPTY
    if has_refused_character(value):
        return OPTION_CONTROL
    if value.startswith("-"):
        return OPTION_DASH
    return None


def text_rules(what: str) -> list[JsonValue]:
    """CEL for free text that reaches the loader (a repo): no control or format characters."""
    return [cel(f"!self.matches('{_CEL_REFUSED}')", f"{what} {OPTION_CONTROL}")]


# ---------------------------------------------------------------------------- label selectors

LABEL_NAME_PATTERN = r"^[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?$"
LABEL_KEY_PATTERN = (
    r"^([a-z0-9]([-a-z0-9]*[a-z0-9])?([.][a-z0-9]([-a-z0-9]*[a-z0-9])?)*/)?"
    r"[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?$"
)
LABEL_VALUE_PATTERN = r"^([A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?)?$"
_LABEL_NAME = re.compile(LABEL_NAME_PATTERN)
_LABEL_VALUE = re.compile(LABEL_VALUE_PATTERN)

LABEL_KEY_MESSAGE = (
    "must be a label key: an optional DNS subdomain prefix (at most 253 characters) and '/', "
    "then a name of at most 63 letters, digits, '-', '_' and '.', starting and ending with a "
    "letter or digit"
)
LABEL_VALUE_MESSAGE = (
    "must be a label value: empty, or at most 63 letters, digits, '-', '_' and '.', starting and "
    "ending with a letter or digit"
)
OPERATOR_VALUES_MESSAGE = (
    "values must be non-empty for In and NotIn, and empty for Exists and DoesNotExist"
)
EMPTY_SHARE_MESSAGE = (
    "must not be empty (a mistyped field such as matchLabel is dropped, leaving {}, which would "
    "share with every namespace): to share with every namespace, write matchExpressions: "
    "[{key: kubernetes.io/metadata.name, operator: Exists}]"
)


def _cel_key_ok(var: str) -> str:
    return (
        f"{var}.matches('{LABEL_KEY_PATTERN}') && "
        f"({var}.contains('/') ? ({var}.indexOf('/') <= {MAX_SUBDOMAIN} && "
        f"{var}.size() - {var}.indexOf('/') - 1 <= {MAX_LABEL}) : {var}.size() <= {MAX_LABEL})"
    )


def label_key_rules() -> list[JsonValue]:
    return [cel(_cel_key_ok("self"), f"key {LABEL_KEY_MESSAGE}")]


def label_value_rules() -> list[JsonValue]:
    """CEL over one label value (the schema bounds its length to 63)."""
    return [cel(f"self.matches('{LABEL_VALUE_PATTERN}')", f"each value {LABEL_VALUE_MESSAGE}")]


def match_labels_rules() -> list[JsonValue]:
    """CEL over a matchLabels map: its keys (its values are LabelValues)."""
    return [cel(f"self.all(k, {_cel_key_ok('k')})", f"matchLabels keys {LABEL_KEY_MESSAGE}")]


def requirement_rules() -> list[JsonValue]:
    return [
        cel(
            "self.operator in ['In', 'NotIn'] ? (has(self.values) && size(self.values) > 0) : "
            "(!has(self.values) || size(self.values) == 0)",
            OPERATOR_VALUES_MESSAGE,
            fieldPath=".values",
        )
    ]


def share_selector_rules() -> list[JsonValue]:
    return [
        cel(
            "(has(self.matchLabels) && size(self.matchLabels) > 0) || "
            "(has(self.matchExpressions) && size(self.matchExpressions) > 0)",
            f"namespaceSelector {EMPTY_SHARE_MESSAGE}",
        )
    ]


def check_label_key(key: str) -> str | None:
    prefix, slash, name = key.rpartition("/")
    if slash and (not prefix or len(prefix) > MAX_SUBDOMAIN or not _SUBDOMAIN.fullmatch(prefix)):
        return LABEL_KEY_MESSAGE
    if len(name) > MAX_LABEL or not _LABEL_NAME.fullmatch(name):
        return LABEL_KEY_MESSAGE
    return None


def check_label_value(value: str) -> str | None:
    ok = len(value) <= MAX_LABEL and _LABEL_VALUE.fullmatch(value)
    return None if ok else LABEL_VALUE_MESSAGE
