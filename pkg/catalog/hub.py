"""HUGGING_FACE: the Hub's own answer, through the official `huggingface_hub` client.

The loader (`huggingface-cli download`) ignores `revision` and downloads the default branch,
so the lookup asks for the default branch too; it applies include/exclude with
`huggingface_hub`'s `filter_repo_objects`, the function the loader's `snapshot_download` uses.
`huggingface_hub` is synchronous: the lookup runs in a thread and its HTTP client carries the
time limit, so a hung Hub does not keep the thread past it.

The lookup makes `HfApi.repo_info`'s request and `auth_check`'s with the library's own HTTP
layer (its shared client, its headers, `hf_raise_for_status` and its error classes) and reads
the JSON itself: importing `huggingface_hub.hf_api` for those two calls would cost the
operator about 5 MiB more (docs/decisions.md).
"""

from __future__ import annotations

import asyncio
import threading
from typing import Any

from modelfs.pkg.catalog.loop import in_thread
from modelfs.pkg.catalog.net import NetSettings, clip, scrub, secrets_of
from modelfs.pkg.catalog.pure import RemoteFile, entry_of, no_files_matched, retry_after
from modelfs.pkg.catalog.types import (
    CatalogRequest,
    Credentials,
    LookupResult,
    Refusal,
    RefusalReason,
    Unavailable,
    UnavailableReason,
)

_configured: tuple[float, str | None] | None = None
_configure_lock = threading.Lock()


def _configure_client(settings: NetSettings) -> None:
    """huggingface_hub shares one HTTP client per process: give it the time limit and the CA
    bundle (proxies: httpx reads HTTPS_PROXY/NO_PROXY itself). The operator is its only user."""
    global _configured
    key = (settings.timeout, settings.ca_bundle)
    with _configure_lock:
        if _configured == key:
            return
        import httpx2
        from huggingface_hub import set_client_factory
        from huggingface_hub.utils._http import hf_request_event_hook

        verify: Any = settings.ssl_context() if settings.ca_bundle else True

        def factory() -> httpx2.Client:
            return httpx2.Client(
                event_hooks={"request": [hf_request_event_hook]},
                follow_redirects=True,
                timeout=settings.timeout,
                verify=verify,
            )

        set_client_factory(factory)
        _configured = key


def repo_of(request: CatalogRequest) -> tuple[str, str]:
    """(repo id, repo type) from `huggingface://org/name` and the repoType option."""
    repo_type = "dataset" if request.option("repoType").upper() == "DATASET" else "model"
    return request.uri.removeprefix("huggingface://").strip("/"), repo_type


class HubLookup:
    def __init__(self, settings: NetSettings | None = None) -> None:
        self.settings = settings or NetSettings()

    async def __call__(self, request: CatalogRequest, credentials: Credentials) -> LookupResult:
        try:
            return await asyncio.wait_for(
                in_thread(self.lookup, request, credentials), self.settings.timeout
            )
        except TimeoutError:
            endpoint = request.option("endpoint") or self.settings.hub_endpoint
            return Unavailable(
                UnavailableReason.TIMEOUT,
                f"{endpoint} did not answer within {self.settings.timeout:g}s",
            )

    def lookup(self, request: CatalogRequest, credentials: Credentials) -> LookupResult:
        """The blocking lookup (run in a thread by `__call__`)."""
        _configure_client(self.settings)
        import httpx2
        from huggingface_hub import get_session, hf_raise_for_status
        from huggingface_hub.errors import (
            GatedRepoError,
            HfHubHTTPError,
            RepositoryNotFoundError,
            RevisionNotFoundError,
        )

        # Public in the library's documentation (Utilities), not re-exported for type checkers.
        from huggingface_hub.utils import (  # type: ignore[attr-defined]
            build_hf_headers,
            validate_repo_id,
        )

        repo_id, repo_type = repo_of(request)
        endpoint = (request.option("endpoint") or self.settings.hub_endpoint).rstrip("/")
        token = credentials.get("token") or None
        where = f"{repo_type} {repo_id} at {endpoint}"
        secrets = secrets_of(credentials)
        try:
            validate_repo_id(repo_id)
            # token=False: never fall back to a token from the operator's environment or disk.
            headers = build_hf_headers(token=token or False, library_name="modelfs")
            # HfApi.repo_info(files_metadata=True) and HfApi.auth_check, as the library makes them.
            url = f"{endpoint}/api/{repo_type}s/{repo_id}"
            session = get_session()
            response = session.get(
                url, headers=headers, timeout=self.settings.timeout, params={"blobs": True}
            )
            hf_raise_for_status(response)
            info = response.json()
            if not isinstance(info, dict):
                raise ValueError("not a JSON object")
            if info.get("gated"):
                checked = session.get(
                    f"{url}/auth-check", headers=headers, timeout=self.settings.timeout
                )
                hf_raise_for_status(checked)
            return summarize(request, info, where)
        except GatedRepoError:
            how = "no token is set" if token is None else "the token has not been granted access"
            return Refusal(
                RefusalReason.GATED_REPO,
                f"{where} is gated and {how}: request access on the Hub, then put a token of an "
                "account that has it in the ModelSource's Secret (key token)",
            )
        except RevisionNotFoundError:
            return Refusal(
                RefusalReason.REVISION_NOT_FOUND, f"{where} has no default branch to download"
            )
        except RepositoryNotFoundError:
            why = (
                "or is private and no token is set (key token in the ModelSource's Secret)"
                if token is None
                else "or the token cannot read it"
            )
            return Refusal(RefusalReason.REPO_NOT_FOUND, f"{where} does not exist, {why}")
        except HfHubHTTPError as e:
            return _http_error(e, where, token is not None, secrets)
        except httpx2.TimeoutException:
            return Unavailable(
                UnavailableReason.TIMEOUT,
                f"{endpoint} did not answer within {self.settings.timeout:g}s",
            )
        except (httpx2.TransportError, OSError) as e:
            return Unavailable(
                UnavailableReason.UNREACHABLE,
                f"{endpoint} cannot be reached: {clip(scrub(str(e) or type(e).__name__, secrets))}",
            )
        except (ValueError, KeyError, TypeError, AttributeError) as e:
            # A body that is not the Hub's JSON (a proxy's error page, say), or JSON not shaped
            # as the Hub's answer (a list, a file without its name).
            return Unavailable(
                UnavailableReason.SERVER_ERROR,
                f"{endpoint} gave an answer that is not the Hub's: {type(e).__name__}",
            )


def _http_error(error: Any, where: str, has_token: bool, secrets: list[str]) -> LookupResult:
    response = error.response
    status = response.status_code if response is not None else 0
    headers = response.headers if response is not None else {}
    if status == 401 and has_token:
        return Refusal(
            RefusalReason.GATED_REPO,
            f"the Hub refused the token for {where} (invalid credentials): put a valid token "
            "in the ModelSource's Secret (key token)",
        )
    if status == 429:
        wait = retry_after(headers.get("Retry-After"))
        return Unavailable(
            UnavailableReason.RATE_LIMITED,
            f"the Hub rate-limited the lookup of {where}"
            + (f" (retry after {wait:g}s)" if wait is not None else ""),
            retry_after=wait,
        )
    detail = clip(scrub(headers.get("X-Error-Message") or "", secrets))
    return Unavailable(
        UnavailableReason.SERVER_ERROR,
        f"the Hub answered HTTP {status} for {where}" + (f": {detail}" if detail else ""),
    )


def summarize(request: CatalogRequest, info: dict[str, Any], where: str) -> LookupResult:
    """The entry for the Hub's answer about a repository (`/api/models/{id}?blobs=true`), after
    the loader's include/exclude (pure). Fields are read as `huggingface_hub`'s ModelInfo and
    DatasetInfo read them."""
    # The loader's own filter (huggingface_hub re-exports it without marking it public).
    from huggingface_hub.utils import filter_repo_objects  # type: ignore[attr-defined]

    include = request.option("include") or None
    exclude = request.option("exclude") or None
    files = [
        RemoteFile(
            str(s["rfilename"]),
            s.get("size"),
            str((s["lfs"].get("sha256") if s.get("lfs") else s.get("blobId")) or ""),
        )
        for s in info.get("siblings") or []
    ]
    selected = list(
        filter_repo_objects(
            files, allow_patterns=include, ignore_patterns=exclude, key=lambda f: f.path
        )
    )
    if not selected:
        return no_files_matched(include, exclude, [f.path for f in files], where)
    safetensors = info.get("safetensors")
    parameters = safetensors.get("total") if isinstance(safetensors, dict) else None
    config = info.get("config")
    architectures = config.get("architectures") if isinstance(config, dict) else None
    card = info.get("cardData")
    license_ = card.get("license") if isinstance(card, dict) else None
    return entry_of(
        info.get("sha"),
        selected,
        parameters=parameters,
        architecture=str(architectures[0]) if architectures else None,
        license=", ".join(license_) if isinstance(license_, list) else license_,
        gated=bool(info.get("gated")),
    )
