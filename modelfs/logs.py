"""Logging like Kubernetes components: a message in the past tense, then key=value fields."""

from __future__ import annotations

import logging
from typing import Any

import kopf

from modelfs.kopf_internals import CLIENT_LOGGERS

_STANDARD = set(logging.LogRecord("", 0, "", 0, "", (), None).__dict__) | {"message", "asctime"}


class KeyValueFormatter(logging.Formatter):
    """`I1127 07:59:27.123 modelfs.modelsync] "Applied Dataset" object="ns/x" dataset="x-v1"`."""

    def format(self, record: logging.LogRecord) -> str:
        fields = {
            k: v
            for k, v in record.__dict__.items()
            if k not in _STANDARD and isinstance(v, str | int | float | bool | tuple | dict)
        }
        fields.pop("k8s_skip", None)
        ref = fields.pop("k8s_ref", None)
        if isinstance(ref, dict) and "object" not in fields and ref.get("name"):
            fields["object"] = f"{ref.get('namespace', '')}/{ref['name']}".lstrip("/")
        when = self.formatTime(record, "%m%d %H:%M:%S")
        level = record.levelname[:1]
        text = f'{level}{when}.{int(record.msecs):03d} {record.name}] "{record.getMessage()}"'
        text += "".join(f" {key}={_value(value)}" for key, value in sorted(fields.items()))
        if record.exc_info:
            text += "\n" + self.formatException(record.exc_info)
        return text


def _value(value: Any) -> str:
    if isinstance(value, tuple) and len(value) == 2:
        value = "/".join(str(v) for v in value)
    return f'"{value}"' if isinstance(value, str) else str(value)


class RetriedRequestIsWarning(logging.Filter):
    """kopf logs every failed API request attempt at ERROR, also when it retries it (a 429 while
    a new CRD's storage initialises, an API server restart). A request that is retried has not
    failed yet: WARNING. The attempt that gives up ("escalating") stays an ERROR, so an error
    line in modelfs's log always means something went wrong."""

    def filter(self, record: logging.LogRecord) -> bool:
        if (
            record.levelno == logging.ERROR
            and record.name.startswith(CLIENT_LOGGERS)
            and "; will re" in record.getMessage()
        ):
            record.levelno, record.levelname = logging.WARNING, "WARNING"
        return True


def configure(log_format: str, verbose: bool = False) -> None:
    """`json`: kopf's JSON formatter (extras become fields); `text`: key=value lines."""
    kopf.configure(
        verbose=verbose,
        log_format=kopf.LogFormat.JSON if log_format == "json" else kopf.LogFormat.PLAIN,
    )
    for handler in logging.getLogger().handlers:
        handler.addFilter(RetriedRequestIsWarning())
    if log_format == "json":
        return
    for handler in logging.getLogger().handlers:
        handler.setFormatter(KeyValueFormatter())
    if not verbose:
        # kopf reports every handler run at INFO; modelfs logs its own decisions instead.
        logging.getLogger("kopf.objects").setLevel(logging.WARNING)
    logging.getLogger("aiohttp.access").setLevel(logging.WARNING)
