"""What the HTTP and GIT lookups share: one GET or HEAD with aiohttp, redirects followed by
hand so that basic-auth credentials go to the source's own host and nowhere else."""

from __future__ import annotations

import base64
from dataclasses import dataclass
from urllib.parse import urljoin, urlsplit

import aiohttp

from modelfs.pkg.catalog.net import NetSettings

MAX_REDIRECTS = 5


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
    connector = aiohttp.TCPConnector(ssl=settings.ssl_context())
    timeout = aiohttp.ClientTimeout(total=settings.timeout)
    async with aiohttp.ClientSession(
        trust_env=True, connector=connector, timeout=timeout
    ) as session:
        for _ in range(MAX_REDIRECTS + 1):
            async with session.request(
                method,
                url,
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
