"""MODEL_SCOPE: ModelScope's REST API, as the loader's `modelscope download` (1.27.1) calls it.

The loader passes no revision, so `modelscope` picks one itself: the newest tag created before
its own release date (2025-06-12 23:59:59 for 1.27.1), else the `master` branch. The lookup
picks the same. The files then go through the loader's filter: `fnmatch` of the path against
include and exclude (a pattern ending in `/` gets `*`), and, for exclude only, `re.search` of
the file's name when the pattern is a valid regular expression; `.gitignore` and
`.gitattributes` are never downloaded. The client is aiohttp (kopf's own).
"""

from __future__ import annotations

import asyncio
import fnmatch
import re
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

import aiohttp

from modelfs.pkg.catalog import web
from modelfs.pkg.catalog.net import NetSettings, clip, scrub, secrets_of
from modelfs.pkg.catalog.pure import RemoteFile, entry_of, no_files_matched, retry_after
from modelfs.pkg.catalog.types import (
    CatalogRequest,
    Credentials,
    LookupResult,
    NotApplicable,
    Refusal,
    RefusalReason,
    Unavailable,
    UnavailableReason,
)

LOADER_RELEASE = int(datetime(2025, 6, 12, 23, 59, 59, tzinfo=UTC).timestamp())
"""modelscope 1.27.1's `__release_datetime__`: tags created later are not the default."""
MASTER = "master"
SKIPPED_NAMES = (".gitignore", ".gitattributes")


def default_revision(
    branches: Sequence[Mapping[str, Any]], tags: Sequence[Mapping[str, Any]]
) -> Mapping[str, Any] | None:
    """The revision `modelscope download` takes when given none, or None when it has none
    (it would then fail)."""
    released = [t for t in tags if int(t.get("CreatedAt") or 0) <= LOADER_RELEASE]
    if released:
        return released[0]
    return next((b for b in branches if b.get("Revision") == MASTER), None)


def _normalize(pattern: str | None) -> list[str] | None:
    if not pattern:
        return None
    return [pattern + "*" if pattern.endswith("/") else pattern]


def _regex(patterns: list[str] | None) -> list[str]:
    valid = []
    for pattern in patterns or []:
        try:
            re.compile(pattern)
        except re.error:
            continue
        valid.append(pattern)
    return valid


def select(
    files: Sequence[Mapping[str, Any]], include: str | None, exclude: str | None
) -> list[Mapping[str, Any]]:
    """The files `modelscope download --include/--exclude` fetches of a recursive listing."""
    allow, ignore = _normalize(include), _normalize(exclude)
    ignore_regex = _regex(ignore)
    out = []
    for f in files:
        if f.get("Type") == "tree" or f.get("Name") in SKIPPED_NAMES:
            continue
        path, name = str(f.get("Path", "")), str(f.get("Name", ""))
        if ignore and any(fnmatch.fnmatch(path, p) for p in ignore):
            continue
        if any(re.search(p, name) is not None for p in ignore_regex):
            continue
        if allow and not any(fnmatch.fnmatch(path, p) for p in allow):
            continue
        out.append(f)
    return out


class ModelScopeLookup:
    def __init__(self, settings: NetSettings | None = None) -> None:
        self.settings = settings or NetSettings()

    async def __call__(self, request: CatalogRequest, credentials: Credentials) -> LookupResult:
        endpoint = self.settings.modelscope_endpoint.rstrip("/")
        if request.option("repoType").upper() == "DATASET":
            return NotApplicable(
                "ModelScope dataset repositories are not looked up (their listing is another "
                "API); the download goes ahead unchecked"
            )
        secrets = secrets_of(credentials)
        try:
            async with asyncio.timeout(self.settings.timeout):
                return await self._lookup(request, credentials, endpoint)
        except TimeoutError:
            return Unavailable(
                UnavailableReason.TIMEOUT,
                f"{endpoint} did not answer within {self.settings.timeout:g}s",
            )
        except (aiohttp.ClientError, OSError) as e:
            return Unavailable(
                UnavailableReason.UNREACHABLE,
                f"{endpoint} cannot be reached: {clip(scrub(str(e) or type(e).__name__, secrets))}",
            )
        except (ValueError, KeyError, TypeError) as e:
            return Unavailable(
                UnavailableReason.SERVER_ERROR,
                f"{endpoint} gave an answer that is not ModelScope's: {type(e).__name__}",
            )

    async def _lookup(
        self, request: CatalogRequest, credentials: Credentials, endpoint: str
    ) -> LookupResult:
        model = request.uri.removeprefix("modelscope://").strip("/")
        where = f"model {model} at {endpoint}"
        token = credentials.get("token") or None
        async with web.session(self.settings, home=endpoint) as session:
            headers: dict[str, str] = {}
            if token is not None:
                # What `modelscope login --token` does: the token buys a session cookie.
                async with session.post(
                    f"{endpoint}/api/v1/login", json={"AccessToken": token}
                ) as r:
                    if r.status in (401, 403):
                        return Refusal(
                            RefusalReason.GATED_REPO,
                            f"ModelScope at {endpoint} refused the token: put a valid token in "
                            "the ModelSource's Secret (key token)",
                        )
                    failed = _failure(r, where)
                    if failed is not None:
                        return failed
                    cookie = r.cookies.get("m_session_id")
                    if cookie is not None:
                        headers["Cookie"] = f"m_session_id={cookie.value}"
            async with session.get(
                f"{endpoint}/api/v1/models/{model}/revisions", headers=headers
            ) as r:
                refused = _refusal(r.status, where, token is not None)
                if refused is not None:
                    return refused
                failed = _failure(r, where)
                if failed is not None:
                    return failed
                revisions = (await r.json(content_type=None))["Data"]["RevisionMap"]
            detail = default_revision(revisions.get("Branches") or [], revisions.get("Tags") or [])
            if detail is None:
                return Refusal(
                    RefusalReason.REVISION_NOT_FOUND,
                    f"{where} has no tag released before the loader's modelscope and no "
                    f"{MASTER} branch: the loader has no revision to download",
                )
            revision = str(detail["Revision"])
            async with session.get(
                f"{endpoint}/api/v1/models/{model}/repo/files",
                params={"Revision": revision, "Recursive": "True"},
                headers=headers,
            ) as r:
                refused = _refusal(r.status, where, token is not None)
                if refused is not None:
                    return refused
                failed = _failure(r, where)
                if failed is not None:
                    return failed
                body = await r.json(content_type=None)
                if body.get("Code") != 200:
                    return Unavailable(
                        UnavailableReason.SERVER_ERROR,
                        f"ModelScope could not list {where}: {clip(str(body.get('Message')))}",
                    )
                listing = body["Data"]["Files"]
        return summarize(request, listing, str(detail.get("CommitId") or revision), where)


def summarize(
    request: CatalogRequest, listing: Sequence[Mapping[str, Any]], revision: str, where: str
) -> LookupResult:
    """The entry for a files listing, after the loader's include/exclude (pure)."""
    include = request.option("include") or None
    exclude = request.option("exclude") or None
    selected = select(listing, include, exclude)
    if not selected:
        available = [
            str(f.get("Path"))
            for f in listing
            if f.get("Type") != "tree" and f.get("Name") not in SKIPPED_NAMES
        ]
        return no_files_matched(include, exclude, available, where)
    files = [
        RemoteFile(
            str(f["Path"]),
            int(f["Size"]) if f.get("Size") is not None else None,
            str(f.get("Sha256") or ""),
        )
        for f in selected
    ]
    return entry_of(revision, files)


def _refusal(status: int, where: str, has_token: bool) -> Refusal | None:
    if status == 404:
        return Refusal(RefusalReason.REPO_NOT_FOUND, f"{where} does not exist")
    if status in (401, 403):
        how = "the token cannot read it" if has_token else "no token is set"
        return Refusal(
            RefusalReason.GATED_REPO,
            f"{where} is private or gated and {how} (key token in the ModelSource's Secret)",
        )
    return None


def _failure(response: aiohttp.ClientResponse, where: str) -> Unavailable | None:
    if response.status < 400:
        return None
    if response.status == 429:
        wait = retry_after(response.headers.get("Retry-After"))
        return Unavailable(
            UnavailableReason.RATE_LIMITED,
            f"ModelScope rate-limited the lookup of {where}"
            + (f" (retry after {wait:g}s)" if wait is not None else ""),
            retry_after=wait,
        )
    return Unavailable(
        UnavailableReason.SERVER_ERROR, f"ModelScope answered HTTP {response.status} for {where}"
    )
