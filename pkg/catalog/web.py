"""What the HTTP, GIT and ModelScope lookups share: one connector per event loop (its DNS
cache), and one GET or HEAD with aiohttp, redirects followed by hand so that basic-auth
credentials go to the source's own host and nowhere else.

The connector is shared because a burst of lookups on one host would otherwise resolve the
host once per lookup, all at once: resolvers drop some of a burst of identical queries, and
each dropped one costs the resolver's retry (5 s). A shared connector resolves a host once per
`DNS_SECONDS` and makes concurrent lookups wait for that one answer; a host that does not
resolve is not asked again for `FAILED_DNS_SECONDS` (`CachingResolver`). It keeps no connection
open between lookups (a lookup is rare per host, and an idle pool would outlive the loop that
made it); each lookup has a session (and cookie jar) of its own.

Proxies come from the environment, read once: aiohttp's `trust_env` reads and parses every
environment variable on every request, a millisecond of CPU per lookup.
"""

from __future__ import annotations

import asyncio
import base64
import functools
import socket
import time
import urllib.request
import weakref
from dataclasses import dataclass
from urllib.parse import urljoin, urlsplit

import aiohttp
from aiohttp.abc import AbstractResolver, ResolveResult
from aiohttp.resolver import DefaultResolver

from modelfs.pkg.catalog.net import NetSettings

MAX_REDIRECTS = 5
DNS_SECONDS = 30
"""How long a resolved host is reused."""

FAILED_DNS_SECONDS = 10.0
"""How long a host that did not resolve is not asked again. Without it, lookups on a host that
does not resolve (no egress, a typo) ask once per lookup, one after the other, and a single
dropped query holds every lookup that joined it for the resolver's 5 s retry."""


class CachingResolver(AbstractResolver):
    """aiohttp's default resolver, keeping failures for FAILED_DNS_SECONDS as a DNS cache keeps
    NXDOMAIN (the connector keeps successes)."""

    def __init__(self) -> None:
        self.resolver = DefaultResolver()
        self.failed: dict[tuple[str, int, int], tuple[float, OSError]] = {}
        """(host, port, family) -> (when it failed, how)"""

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        key, now = (host, port, int(family)), time.monotonic()
        found = self.failed.get(key)
        if found is not None and now - found[0] < FAILED_DNS_SECONDS:
            raise type(found[1])(*found[1].args)
        try:
            return await self.resolver.resolve(host, port, family)
        except OSError as error:
            kept = {k: v for k, v in self.failed.items() if now - v[0] < FAILED_DNS_SECONDS}
            self.failed = {**kept, key: (now, error)}
            raise

    async def close(self) -> None:
        await self.resolver.close()


_connectors: weakref.WeakKeyDictionary[
    asyncio.AbstractEventLoop, dict[NetSettings, aiohttp.TCPConnector]
] = weakref.WeakKeyDictionary()


def connector(settings: NetSettings) -> aiohttp.TCPConnector:
    """The running loop's connector for `settings`; sessions use it with
    `connector_owner=False`."""
    loop = asyncio.get_running_loop()
    mine = _connectors.setdefault(loop, {})
    found = mine.get(settings)
    if found is None or found.closed:
        found = mine[settings] = aiohttp.TCPConnector(
            ssl=settings.ssl_context(),
            ttl_dns_cache=DNS_SECONDS,
            force_close=True,
            resolver=CachingResolver(),
        )
    return found


@functools.cache
def env_proxies() -> tuple[dict[str, aiohttp.helpers.ProxyInfo], dict[str, str]]:
    """The proxies of the environment (HTTP_PROXY, HTTPS_PROXY) as aiohttp reads them, and the
    raw variables (NO_PROXY among them)."""
    return aiohttp.helpers.proxies_from_env(), urllib.request.getproxies_environment()


def proxy_for(url: str) -> tuple[str | None, aiohttp.BasicAuth | None]:
    """The proxy (and its credentials) the environment names for `url`, or none: what
    `trust_env` would pick."""
    proxies, raw = env_proxies()
    parts = urlsplit(url)
    bypass = urllib.request.proxy_bypass_environment  # type: ignore[attr-defined]
    if parts.hostname and bypass(parts.hostname, raw):
        return None, None
    found = proxies.get(parts.scheme)
    return (str(found.proxy), found.proxy_auth) if found else (None, None)


def session(
    settings: NetSettings, timeout: aiohttp.ClientTimeout | None = None, *, home: str = ""
) -> aiohttp.ClientSession:
    """A session of its own (cookies) on the loop's shared connector, through the proxy
    `proxy_for(home)` when every request goes to `home`'s host (else each request names its
    own)."""
    proxy, proxy_auth = proxy_for(home) if home else (None, None)
    return aiohttp.ClientSession(
        proxy=proxy,
        proxy_auth=proxy_auth,
        connector=connector(settings),
        connector_owner=False,
        timeout=timeout or aiohttp.client.DEFAULT_TIMEOUT,
    )


async def close_connectors() -> None:
    """Close the running loop's connectors."""
    for found in _connectors.pop(asyncio.get_running_loop(), {}).values():
        await found.close()


def basic(user: str, password: str) -> str:
    """The Authorization value of HTTP basic auth."""
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


class TooManyRedirects(Exception):
    pass


@dataclass(frozen=True)
class Answer:
    status: int
    headers: dict[str, str]
    body: bytes
    url: str


def origin(url: str) -> tuple[str, str, int | None]:
    parts = urlsplit(url)
    port = parts.port or {"http": 80, "https": 443}.get(parts.scheme)
    return parts.scheme, (parts.hostname or "").lower(), port


async def fetch(
    settings: NetSettings,
    method: str,
    url: str,
    *,
    authorization: str | None = None,
    headers: dict[str, str] | None = None,
    read_limit: int = 0,
) -> Answer:
    """`method url`, following redirects; the Authorization header is sent only while on
    `url`'s origin. Reads
    at most `read_limit` bytes of the body. Raises aiohttp/OS errors and TimeoutError."""
    home = origin(url)
    timeout = aiohttp.ClientTimeout(total=settings.timeout)
    async with session(settings, timeout=timeout) as client:
        for _ in range(MAX_REDIRECTS + 1):
            proxy, proxy_auth = proxy_for(url)
            async with client.request(
                method,
                url,
                proxy=proxy,
                proxy_auth=proxy_auth,
                headers={
                    **(headers or {}),
                    **(
                        {"Authorization": authorization}
                        if authorization and origin(url) == home
                        else {}
                    ),
                },
                allow_redirects=False,
            ) as r:
                location = r.headers.get("Location")
                if r.status in (301, 302, 303, 307, 308) and location:
                    url = urljoin(url, location)
                    if r.status == 303:
                        method = "GET"
                    continue
                chunks: list[bytes] = []
                left = read_limit
                while left > 0:
                    chunk = await r.content.read(left)
                    if not chunk:
                        break
                    chunks.append(chunk)
                    left -= len(chunk)
                body = b"".join(chunks)
                return Answer(r.status, dict(r.headers), body, url)
    raise TooManyRedirects(f"more than {MAX_REDIRECTS} redirects")
