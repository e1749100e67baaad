"""What keeps the operator's memory small where Python's defaults would not.

Figures: benchmarks/README.md ("Run O").
"""

from __future__ import annotations

import asyncio.sslproto
import contextlib
import ctypes
import gc
import sys
from collections.abc import Mapping
from typing import Any

SSL_READ_BUFFER = 64 * 1024
"""Bytes of the read buffer asyncio gives every TLS connection. asyncio's default (256 KiB) is
allocated and zero-filled per connection, so it is resident however little the connection
reads; the operator keeps dozens of connections to the API server open in a burst. A TLS
record is at most 16 KiB: 64 KiB still takes four in one read."""

SHARED_STRING_LENGTH = 40
"""Strings up to this long in an indexed object are shared with every other copy of them
(`sys.intern`): condition types, reasons, phases, timestamps of the same second, label values.
Longer ones (messages, URIs with paths) are rarely repeated."""


def shrink_ssl_buffers() -> None:
    """Give asyncio's TLS connections opened from now on the smaller read buffer (a class
    attribute of asyncio's SSL protocol since Python 3.11; left alone where it is not one)."""
    protocol: Any = asyncio.sslproto.SSLProtocol
    if isinstance(getattr(protocol, "max_size", None), int):
        protocol.max_size = SSL_READ_BUFFER


def trim_memory() -> None:
    """Collect garbage and return free heap memory to the system (glibc's `malloc_trim`; a
    no-op elsewhere)."""
    gc.collect()
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL("libc.so.6").malloc_trim(0)


def shared(value: Any) -> Any:
    """`value` rebuilt from plain dicts and lists, its keys and short strings shared (see
    SHARED_STRING_LENGTH). Each decoded watch event holds its own copy of every key
    (`lastTransitionTime`, `observedGeneration`, ...); an index keeping thousands of objects
    would hold thousands of copies. It runs on every value of every watch event's object: the
    common types are tested first, by identity."""
    kind = type(value)
    if kind is str:
        return _intern(value) if len(value) <= SHARED_STRING_LENGTH else value
    if kind is dict:
        return {_intern(k): shared(v) for k, v in value.items()}
    if kind is list:
        return [shared(v) for v in value]
    if kind in _SCALARS or not isinstance(value, Mapping):
        return value
    return {_intern(str(k)): shared(v) for k, v in value.items()}


_intern = sys.intern
_SCALARS = frozenset({int, float, bool, type(None)})
