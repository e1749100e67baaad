"""GIT: the smart-HTTP ref advertisement (`GET {url}/info/refs?service=git-upload-pack`).

The loader clones `branch` (a branch or a tag; the default branch without one) and checks out
`commit`. The lookup refuses a branch the server does not advertise, and a repository with no
commits. A `commit` is found when it is an advertised tip; any other commit may still exist
(the advertisement lists tips, not history), so it is not refused: the entry carries the
commit, whose content never changes, and no size. `git://` URLs are not looked up.
"""

from __future__ import annotations

import aiohttp

from modelfs.pkg.catalog.http import basic_auth
from modelfs.pkg.catalog.net import NetSettings, clip, scrub, secrets_of
from modelfs.pkg.catalog.pure import (
    PktLineError,
    RefAdvertisement,
    fingerprint,
    parse_ref_advertisement,
    retry_after,
)
from modelfs.pkg.catalog.types import (
    CatalogEntry,
    CatalogRequest,
    Credentials,
    LookupResult,
    NotApplicable,
    Refusal,
    RefusalReason,
    Unavailable,
    UnavailableReason,
)
from modelfs.pkg.catalog.web import TooManyRedirects, basic, fetch

READ_LIMIT = 16 << 20
"""Bytes of advertisement read at most (a repository with very many refs)."""


def git_auth(credentials: Credentials) -> str | None:
    """The loader puts `oauth2:<token>` or `username:password` in the clone URL."""
    token = credentials.get("token")
    if token:
        return basic("oauth2", token)
    return basic_auth(credentials)


class GitLookup:
    def __init__(self, settings: NetSettings | None = None) -> None:
        self.settings = settings or NetSettings()

    async def __call__(self, request: CatalogRequest, credentials: Credentials) -> LookupResult:
        url = request.uri.rstrip("/")
        if not url.startswith(("http://", "https://")):
            return NotApplicable(f"{url} is not served over HTTP: git refs are not looked up")
        secrets = secrets_of(credentials)
        try:
            answer = await fetch(
                self.settings,
                "GET",
                f"{url}/info/refs?service=git-upload-pack",
                authorization=git_auth(credentials),
                read_limit=READ_LIMIT,
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
        if answer.status == 404:
            return Refusal(RefusalReason.REPO_NOT_FOUND, f"{url} is not a git repository (404)")
        if answer.status in (401, 403):
            how = "the credentials were refused" if secrets else "it needs credentials"
            return Refusal(
                RefusalReason.REPO_NOT_FOUND,
                f"{url} cannot be read: {how} (token, or username and password, in the "
                "ModelSource's Secret)",
            )
        if answer.status == 429:
            wait = retry_after(answer.headers.get("Retry-After"))
            return Unavailable(
                UnavailableReason.RATE_LIMITED, f"{url} rate-limited the lookup", retry_after=wait
            )
        if answer.status >= 400:
            return Unavailable(
                UnavailableReason.SERVER_ERROR, f"{url} answered HTTP {answer.status}"
            )
        try:
            refs = parse_ref_advertisement(answer.body)
        except PktLineError as e:
            return Unavailable(
                UnavailableReason.SERVER_ERROR, f"{url} is not a smart-HTTP git server: {e}"
            )
        return decide(url, refs, request.option("branch"), request.option("commit"))


def decide(url: str, refs: RefAdvertisement, branch: str, commit: str) -> LookupResult:
    """The entry or refusal for an advertisement, a branch (or tag) and a commit (pure)."""
    tip: str | None
    if branch:
        tip = refs.refs.get(f"refs/heads/{branch}") or refs.refs.get(f"refs/tags/{branch}")
        if tip is None:
            heads = sorted(
                r.removeprefix("refs/heads/") for r in refs.refs if r.startswith("refs/heads/")
            )
            shown = ", ".join(heads[:5]) + (f" and {len(heads) - 5} more" if len(heads) > 5 else "")
            return Refusal(
                RefusalReason.REF_NOT_FOUND,
                f"{url} has no branch or tag {branch!r}"
                + (f"; its branches: {shown}" if heads else ""),
            )
    else:
        tip = refs.refs.get("HEAD")
        if tip is None:
            return Refusal(RefusalReason.REF_NOT_FOUND, f"{url} has no commits (no HEAD)")
    if commit:
        c = commit.lower()
        known = any(oid == c or (len(c) >= 7 and oid.startswith(c)) for oid in refs.refs.values())
        revision = next((oid for oid in refs.refs.values() if oid.startswith(c)), c) if known else c
        return CatalogEntry(
            revision=revision, files=None, bytes=None, fingerprint=fingerprint(revision, [])
        )
    return CatalogEntry(revision=tip, files=None, bytes=None, fingerprint=fingerprint(tip, []))
