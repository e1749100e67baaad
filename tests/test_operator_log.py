"""What counts as a problem in an operator log: the e2e suite fails a test on any of these."""

from __future__ import annotations

import json

from modelfs.testing.operator import problem_lines


def test_error_lines_and_tracebacks_are_problems() -> None:
    log = "\n".join(
        [
            'I1127 07:59:27.123 modelfs.modelsync] "Applied Dataset" dataset="m-v1"',
            'W1127 07:59:28.001 modelfs.resync] "Resync failed" error="503"',
            'E1127 07:59:29.002 kopf.objects] "Handler failed"',
            "Traceback (most recent call last):",
            '  File "x.py", line 1, in <module>',
            "UnboundLocalError: cannot access local variable 'events'",
            'C1127 07:59:30.000 modelfs] "Crashed"',
        ]
    )
    assert problem_lines(log) == [
        'E1127 07:59:29.002 kopf.objects] "Handler failed"',
        "Traceback (most recent call last):",
        'C1127 07:59:30.000 modelfs] "Crashed"',
    ]


def test_json_lines_at_error_level_are_problems() -> None:
    lines = [
        json.dumps({"message": "Applied Dataset", "severity": "info"}),
        json.dumps({"message": "Handler failed", "severity": "error"}),
        "{not json",
    ]
    assert problem_lines("\n".join(lines)) == [lines[1]]


def test_a_clean_log_has_none() -> None:
    assert problem_lines('I1127 07:59:27.123 modelfs.operator] "Started modelfs operator"') == []
