"""What every lookup shares: the time limit, the CA bundle, the default endpoints, and keeping
credentials out of every text a lookup returns."""

from __future__ import annotations

import functools
import ssl
from collections.abc import Iterable
from dataclasses import dataclass

from modelfs.pkg.catalog.types import Credentials

TIMEOUT = 10.0
"""Seconds: the issue's bound for one lookup, all of its requests together."""
HUB_ENDPOINT = "https://huggingface.co"
MODELSCOPE_ENDPOINT = "https://www.modelscope.cn"


@dataclass(frozen=True)
class NetSettings:
    """How lookups reach the catalogs. Proxies come from the environment (HTTPS_PROXY,
    HTTP_PROXY, NO_PROXY), as every client used here reads them (once per process: the
    operator's environment does not change); the CA bundle is a file of PEM certificates
    trusted on top of the system's, for private endpoints."""

    timeout: float = TIMEOUT
    ca_bundle: str | None = None
    hub_endpoint: str = HUB_ENDPOINT
    """Used when a HUGGING_FACE source sets no endpoint option (the loader's default too)."""
    modelscope_endpoint: str = MODELSCOPE_ENDPOINT
    """ModelScope sources have no endpoint option: the loader's default, or a mirror here."""

    def ssl_context(self) -> ssl.SSLContext:
        return _ssl_context(self.ca_bundle)


@functools.lru_cache(maxsize=4)
def _ssl_context(ca_bundle: str | None) -> ssl.SSLContext:
    context = ssl.create_default_context()
    if ca_bundle:
        context.load_verify_locations(cafile=ca_bundle)
    return context


def secrets_of(credentials: Credentials) -> list[str]:
    return [v for v in credentials.values.values() if v]


def scrub(text: str, secrets: Iterable[str]) -> str:
    """`text` with every secret value replaced: a server or a client library may echo a
    credential back in an error; it must not reach a status, an event or a log."""
    for secret in sorted(set(secrets), key=len, reverse=True):
        if len(secret) >= 3:
            text = text.replace(secret, "<redacted>")
    return text


def clip(text: str, limit: int = 300) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 3] + "..."
