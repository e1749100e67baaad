"""Names and label values that modelfs writes."""

from __future__ import annotations

import re

from hypothesis import given, settings
from hypothesis import strategies as st

from modelfs.pkg.dataset import dataset_name, label_value, reference_dataset_name

DNS_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
LABEL_VALUE = re.compile(r"^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$")


def test_the_seed_example_keeps_its_name_as_written() -> None:
    assert dataset_name("qwen-model", "v2.5.0") == "qwen-model-v2.5.0"


def test_only_refused_characters_are_replaced() -> None:
    assert dataset_name("Qwen_Model", "v2.5.0") == "qwen-model-v2.5.0"
    # Not a subdomain even after replacing characters: dots go too, as a DNS label.
    assert dataset_name("qwen", "v2..5") == "qwen-v2--5"
    assert dataset_name("qwen.", "-v2") == "qwen---v2"


def test_a_long_name_is_cut_with_a_stable_hash() -> None:
    name = dataset_name("deepseek-ai-deepseek-coder-v2-lite-instruct", "2024-06-17.1")
    assert len(name) == 45
    assert name.startswith("deepseek-ai-deepseek-coder-v2-lite-i")
    assert DNS_SUBDOMAIN.fullmatch(name)
    assert re.fullmatch(r".*-[0-9a-f]{8}", name)
    assert name == dataset_name("deepseek-ai-deepseek-coder-v2-lite-instruct", "2024-06-17.1")


def test_reference_names_follow_the_same_rule() -> None:
    assert reference_dataset_name("qwen-ref") == "qwen-ref"
    assert len(reference_dataset_name("r" * 100)) == 45


@settings(max_examples=500)
@given(st.text(max_size=300))
def test_label_values_are_always_valid(value: str) -> None:
    result = label_value(value)
    assert len(result) <= 63 and LABEL_VALUE.fullmatch(result)
    if len(value) <= 63 and LABEL_VALUE.fullmatch(value):
        assert result == value
