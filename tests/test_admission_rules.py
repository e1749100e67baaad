"""The admission rules of api/v1/rules.py in resolution: every value the CRD refuses is refused
by resolution too, naming the same field, and no value of the schema's patterns can overflow."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from modelfs.api.v1 import Model, ModelSource, ModelSync
from modelfs.api.v1.rules import (
    DURATION_PATTERN,
    QUANTITY_PATTERN,
    RETRY_WAIT_CAP,
    check_duration,
    check_label_key,
    check_option_value,
    check_size,
    parse_duration,
    quantity_bytes,
    retry_wait,
)
from modelfs.pkg.dataset import (
    ResolutionError,
    resolve_bodies,
    source_config_errors,
    version_errors,
)
from modelfs.pkg.dataset.resolve import model_errors, parse, sync_errors
from modelfs.pkg.labels import SelectorError, validate_selector
from tests.strategies import HOSTILE_VERSION, Refused, hostile_bodies, refused_values

SEEDED = settings(max_examples=400, deadline=None, derandomize=True)


def verdicts(bodies: dict[str, Any]) -> list[ResolutionError]:
    """Every problem resolution finds in the bodies, as the controllers look for them (the
    schema's own bounds, such as maxLength, are checked when a body is parsed)."""
    try:
        source = parse(ModelSource, bodies["source"])
        model = parse(Model, bodies["model"])
        sync = parse(ModelSync, bodies["sync"])
    except ResolutionError as error:
        return [error]
    return [
        *source_config_errors(source),
        *model_errors(model),
        *version_errors(source, model, HOSTILE_VERSION),
        *sync_errors(sync),
    ]


def test_the_hostile_bodies_resolve() -> None:
    bodies = hostile_bodies()
    assert verdicts(bodies) == []
    resolution = resolve_bodies(bodies["source"], bodies["model"], bodies["sync"])
    assert resolution.dataset.spec.share_to_namespace_selector == {"matchLabels": {"team": "b"}}
    # ObjectMeta.finalizers is unset, so the apply claims no `finalizers: []`
    assert "finalizers" not in resolution.dataset.to_manifest()["metadata"]


@SEEDED
@given(refused_values)
def test_what_the_crd_refuses_resolution_refuses_naming_the_field(case: Refused) -> None:
    if case.target == "reference":
        pytest.skip("a ModelReference is not resolved")
    bodies = case.apply(hostile_bodies())
    found = verdicts(bodies)
    assert any(error.field == case.resolution_field for error in found), (case, found)
    assert all(error.message for error in found)
    if case.path not in (("sourceRef",), ("modelRef",)):  # those name another object
        with pytest.raises(ResolutionError):
            resolve_bodies(bodies["source"], bodies["model"], bodies["sync"])


@settings(max_examples=500, deadline=None)
@given(st.from_regex(DURATION_PATTERN, fullmatch=True))
def test_no_duration_of_the_pattern_overflows(text: str) -> None:
    wait = parse_duration(text)
    assert wait >= timedelta(0)
    datetime.now(UTC) + wait  # representable
    for attempts in (0, 1, 63, 64, 100, 10**6):
        assert timedelta(0) <= retry_wait(text, attempts) <= RETRY_WAIT_CAP
    check_duration(text, "backoff", "1s", "24h")


@settings(max_examples=300, deadline=None)
@given(st.integers(0, 10**80), st.sampled_from(["ns", "us", "ms", "s", "m", "h"]))
def test_huge_durations_are_refused_and_saturate(number: int, unit: str) -> None:
    text = f"{number}{unit}"
    seconds = number * {"ns": 1e-9, "us": 1e-6, "ms": 1e-3, "s": 1, "m": 60, "h": 3600}[unit]
    within = 1 <= seconds <= 24 * 3600
    assert (check_duration(text, "backoff", "1s", "24h") is None) == within
    assert parse_duration(text) <= timedelta(days=365 * 100)


def test_the_reported_durations() -> None:
    assert check_duration("100000000h", "backoff", "1s", "24h") is not None
    assert check_duration("2562048h", "backoff", "1s", "24h") is not None
    assert check_duration("24h", "backoff", "1s", "24h") is None
    assert retry_wait("1m", 0) == timedelta(minutes=1)
    assert retry_wait("1m", 3) == timedelta(minutes=8)
    assert retry_wait("24h", 99) == RETRY_WAIT_CAP
    assert retry_wait("100000000h", 99) == RETRY_WAIT_CAP


@settings(max_examples=300, deadline=None)
@given(st.from_regex(QUANTITY_PATTERN, fullmatch=True))
def test_no_quantity_of_the_pattern_overflows(text: str) -> None:
    value = quantity_bytes(text)
    assert (check_size(text, "size") is None) == (0 < value <= 2**50)


@pytest.mark.parametrize(
    ("text", "ok"),
    [
        ("0", False),
        ("9" * 60, False),
        ("99999999999999999999999Ei", False),
        ("1Pi", True),
        ("1.5Pi", False),
        ("100Ti", True),
        ("500m", False),
        ("0.5", True),
        ("1125899906842624", True),
    ],
)
def test_sizes(text: str, ok: bool) -> None:
    # "500m" is not of the pattern (m is not a suffix here), so it is refused
    assert (check_size(text, "size") is None) == ok


@pytest.mark.parametrize(
    "value", ["💥💥", "*.safetensors", "model-*.gguf", "a-b", "v1.0", "日本語"]
)
def test_option_values_allowed(value: str) -> None:
    assert check_option_value(value) is None


@pytest.mark.parametrize(
    "value", ["", "-rf", "--flag=x", "a\x00b", "a\x07", "a\u202eb", "\u200b", "\ue000", "\x7f"]
)
def test_option_values_refused(value: str) -> None:
    assert check_option_value(value) is not None


@pytest.mark.parametrize(
    ("key", "ok"),
    [
        ("a", True),
        ("kubernetes.io/metadata.name", True),
        ("a.b-c/D_e.f", True),
        ("x" * 63, True),
        (("a" * 63 + ".") * 3 + "a" * 61 + "/" + "n" * 63, True),
        ("a b", False),
        ("-a", False),
        ("", False),
        ("a/b/c", False),
        ("x" * 64, False),
        ("A/b", False),
        ("/a", False),
        ("a/", False),
    ],
)
def test_label_keys(key: str, ok: bool) -> None:
    assert (check_label_key(key) is None) == ok


LABEL_KEY = re.compile(
    r"^([a-z0-9]([-a-z0-9]*[a-z0-9])?([.][a-z0-9]([-a-z0-9]*[a-z0-9])?)*/)?"
    r"[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?$"
)


@settings(max_examples=500, deadline=None)
@given(st.text(alphabet="aZ0-_./ ", max_size=80))
def test_label_keys_as_apimachinery_checks_them(key: str) -> None:
    prefix, _, name = key.rpartition("/")
    expected = bool(LABEL_KEY.fullmatch(key)) and len(name) <= 63 and len(prefix) <= 253
    assert (check_label_key(key) is None) == expected


def test_an_empty_share_selector_is_refused_with_the_explicit_form() -> None:
    with pytest.raises(SelectorError) as caught:
        validate_selector({}, "spec.share.namespaceSelector")
    assert caught.value.field == "spec.share.namespaceSelector"
    assert "operator: Exists" in str(caught.value)
    validate_selector({}, "selector", allow_empty=True)
    every = {"matchExpressions": [{"key": "kubernetes.io/metadata.name", "operator": "Exists"}]}
    validate_selector(every, "spec.share.namespaceSelector")


def test_a_model_with_an_invalid_selector_is_not_ready_and_does_not_share() -> None:
    bodies = hostile_bodies()
    bodies["model"]["spec"]["share"] = {"namespaceSelector": {"matchLabels": {"a b": "c"}}}
    found = verdicts(bodies)
    assert {e.field for e in found} == {"spec.share.namespaceSelector.matchLabels"}
    with pytest.raises(ResolutionError) as caught:
        resolve_bodies(bodies["source"], bodies["model"], bodies["sync"])
    assert caught.value.field == "spec.share.namespaceSelector.matchLabels"


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("24.00000000000001h", 24 * 3600), ("0.9999999999s", 0.999999999), ("1h30m", 5400)],
)
def test_durations_are_read_as_go_reads_them(text: str, seconds: float) -> None:
    """Fractions are cut to whole nanoseconds, as Go (and so CEL) does: a value CEL accepts is
    not refused by resolution."""
    assert float(parse_duration(text).total_seconds()) == pytest.approx(seconds, abs=1e-9)
    # as measured on the API server: 0.036 ns over is cut, 360 ns over is refused
    assert check_duration("24.00000000000001h", "backoff", "1s", "24h") is None
    assert check_duration("24.0000000001h", "backoff", "1s", "24h") is not None
