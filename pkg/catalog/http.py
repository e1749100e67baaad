"""HTTP: one HEAD of the URL the loader's rclone copies (status, Content-Length, ETag).

A URL that serves a page (text/html) is a directory index that rclone walks: the lookup says
it exists and leaves the file count and size unknown. Basic auth (username + password in the
Secret) goes to the URL's own host only, never to a host a redirect leads to.
"""

from __future__ import annotations

import aiohttp

from modelfs.pkg.catalog.net import NetSettings, clip, scrub, secrets_of
from modelfs.pkg.catalog.pure import RemoteFile, entry_of, fingerprint, retry_after
from modelfs.pkg.catalog.types import (
    CatalogEntry,
    CatalogRequest,
    Credentials,
    LookupResult,
    Refusal,
    RefusalReason,
    Unavailable,
    UnavailableReason,
)
from modelfs.pkg.catalog.web import Answer, TooManyRedirects, basic, fetch


def basic_auth(credentials: Credentials) -> str | None:
    user, password = credentials.get("username"), credentials.get("password")
    return basic(user, password) if user and password else None


class HttpLookup:
    def __init__(self, settings: NetSettings | None = None) -> None:
        self.settings = settings or NetSettings()

    async def __call__(self, request: CatalogRequest, credentials: Credentials) -> LookupResult:
        url = request.uri
        secrets = secrets_of(credentials)
        try:
            answer = await fetch(self.settings, "HEAD", url, authorization=basic_auth(credentials))
            if answer.status in (405, 501):
                # A server that does not do HEAD: the headers of a GET, body unread.
                answer = await fetch(
                    self.settings, "GET", url, authorization=basic_auth(credentials)
                )
        except TimeoutError:
            return Unavailable(
                UnavailableReason.TIMEOUT, f"{url} did not answer within {self.settings.timeout:g}s"
            )
        except TooManyRedirects as e:
            return Unavailable(UnavailableReason.SERVER_ERROR, f"{url}: {e}")
        except (aiohttp.ClientError, OSError) as e:
            return Unavailable(
                UnavailableReason.UNREACHABLE,
                f"{url} cannot be reached: {clip(scrub(str(e) or type(e).__name__, secrets))}",
            )
        return summarize(url, answer)


def summarize(url: str, answer: Answer) -> LookupResult:
    """The entry, refusal or failure for a HEAD answer (pure)."""
    status = answer.status
    headers = {k.lower(): v for k, v in answer.headers.items()}
    if status in (404, 410):
        return Refusal(RefusalReason.SOURCE_OBJECT_NOT_FOUND, f"{url} answered HTTP {status}")
    if status == 429:
        wait = retry_after(headers.get("retry-after"))
        return Unavailable(
            UnavailableReason.RATE_LIMITED,
            f"{url} rate-limited the lookup" + (f" (retry after {wait:g}s)" if wait else ""),
            retry_after=wait,
        )
    if status >= 400:
        return Unavailable(UnavailableReason.SERVER_ERROR, f"{url} answered HTTP {status}")
    etag = headers.get("etag", "").strip()
    version = etag or headers.get("last-modified", "")
    length = headers.get("content-length", "")
    if headers.get("content-type", "").startswith("text/html"):
        return CatalogEntry(
            revision=etag or None,
            files=None,
            bytes=None,
            fingerprint=fingerprint(version, [RemoteFile(answer.url, None, length)]),
        )
    size = int(length) if length.isdigit() else None
    entry = entry_of(etag or None, [RemoteFile(answer.url, size, version)])
    return entry
