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


def test_a_retried_api_request_is_a_warning_and_a_given_up_one_an_error() -> None:
    import logging

    from modelfs.kopf_internals import CLIENT_LOGGERS
    from modelfs.logs import KeyValueFormatter, RetriedRequestIsWarning

    def line(message: str) -> str:
        name = f"{CLIENT_LOGGERS}.watching"
        record = logging.LogRecord(name, logging.ERROR, "", 0, message, (), None)
        RetriedRequestIsWarning().filter(record)
        return KeyValueFormatter().format(record)

    retried = line("Request attempt #1/9 failed; will retry: GET /apis/x -> 429")
    assert retried.startswith("W") and problem_lines(retried) == []
    given_up = line("Request attempt #9/9 failed; escalating: GET /apis/x -> 429")
    assert problem_lines(given_up) == [given_up]
