"""docs/troubleshooting.md documents every reason the code defines, generated from the code."""

from __future__ import annotations

from pathlib import Path

import pytest

from modelfs.troubleshooting import (
    GROUPS,
    defined_reasons,
    documented_reasons,
    reasons_markdown,
)

ROOT = Path(__file__).resolve().parent.parent
PAGE = ROOT / "docs" / "troubleshooting.md"


def test_every_reason_the_code_defines_is_documented_and_no_other() -> None:
    defined, documented = defined_reasons(), documented_reasons()
    assert defined - documented == set(), "add an Entry to modelfs/troubleshooting.py"
    assert documented - defined == set(), "an Entry names a reason the code does not define"


def test_a_reason_is_documented_once_with_a_meaning_and_a_fix() -> None:
    seen = [reason for group in GROUPS.values() for reason in group]
    assert len(seen) == len(set(seen))
    for group in GROUPS.values():
        for reason, entry in group.items():
            assert entry.where and entry.meaning and entry.fix, reason


def test_the_page_carries_the_generated_tables() -> None:
    page = PAGE.read_text()
    assert reasons_markdown() in page, (
        "docs/troubleshooting.md is stale: run `python -m modelfs.troubleshooting`"
    )
    for reason in defined_reasons():
        assert f"| `{reason}` |" in page, reason


def test_a_new_reason_in_the_code_would_be_caught(monkeypatch: pytest.MonkeyPatch) -> None:
    from modelfs.api.v1 import reasons

    monkeypatch.setattr(reasons, "BRAND_NEW", "BrandNew", raising=False)
    assert "BrandNew" in defined_reasons() - documented_reasons()
