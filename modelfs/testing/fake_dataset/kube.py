"""A thin JSON-in, JSON-out layer over `kubernetes.aio`'s ApiClient: plain dicts (no models, so
no field is lost on the way), any path, and a list-then-watch loop that survives errors and
410 Gone."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import random
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from typing import Any

import aiohttp
from kubernetes.aio.client import ApiClient
from kubernetes.aio.client.exceptions import ApiException

log = logging.getLogger("modelfs.fake_dataset")
JSON, MERGE, JSON_PATCH = (
    "application/json",
    "application/merge-patch+json",
    "application/json-patch+json",
)


class Kube:
    """Requests to the API server with the credentials of an ApiClient."""

    def __init__(self, api: ApiClient) -> None:
        self.api = api

    async def request(
        self,
        method: str,
        path: str,
        *,
        query: Mapping[str, Any] | None = None,
        body: Any = None,
        content_type: str = JSON,
        timeout: float | aiohttp.ClientTimeout | None = 30.0,  # noqa: ASYNC109 (per request)
    ) -> dict[str, Any]:
        """The decoded JSON response; raises ApiException on a non-2xx status."""
        response = await self._send(method, path, query, body, content_type, timeout)
        try:
            data = await response.read()
        finally:
            response.response.release()
        if not 200 <= response.status < 300:
            raise ApiException(status=response.status, reason=response.reason, body=data)
        decoded: dict[str, Any] = json.loads(data) if data else {}
        return decoded

    async def _send(
        self,
        method: str,
        path: str,
        query: Mapping[str, Any] | None,
        body: Any,
        content_type: str,
        timeout: float | aiohttp.ClientTimeout | None,  # noqa: ASYNC109
    ) -> Any:
        params = [(k, _query_value(v)) for k, v in (query or {}).items() if v is not None]
        method, url, headers, payload, _ = await self.api.param_serialize(
            method=method,
            resource_path=path,
            query_params=params,
            header_params={"Content-Type": content_type, "Accept": JSON},
            body=body,
            auth_settings=["BearerToken"],
        )
        return await self.api.call_api(method, url, headers, payload, _request_timeout=timeout)

    async def get(self, path: str, **query: Any) -> dict[str, Any] | None:
        """The object, or None when it does not exist (404)."""
        try:
            return await self.request("GET", path, query=query)
        except ApiException as error:
            if error.status == 404:
                return None
            raise

    async def watch(
        self, path: str, resource_version: str, *, label_selector: str | None = None
    ) -> AsyncIterator[dict[str, Any]]:
        """Watch events ({type, object}) from `resource_version` until the server ends the
        watch (timeoutSeconds); bookmarks are asked for and passed through."""
        query = {
            "watch": "true",
            "resourceVersion": resource_version,
            "allowWatchBookmarks": "true",
            "timeoutSeconds": random.randint(240, 360),
            "labelSelector": label_selector,
        }
        timeout = aiohttp.ClientTimeout(total=None, sock_connect=30, sock_read=400)
        response = await self._send("GET", path, query, None, JSON, timeout)
        try:
            if not 200 <= response.status < 300:
                body = await response.read()
                raise ApiException(status=response.status, reason=response.reason, body=body)
            content = response.response.content
            while True:
                line = await content.readline()
                if not line:
                    return
                if line.strip():
                    yield json.loads(line)
        finally:
            response.response.release()


def _query_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


async def list_and_watch(
    kube: Kube,
    path: str,
    on_event: Callable[[str, dict[str, Any]], Awaitable[None] | None],
    *,
    label_selector: str | None = None,
    on_synced: Callable[[], None] | None = None,
    stopping: asyncio.Event,
) -> None:
    """Informer-style: list (every item reported as "SYNC"), then watch from the list's
    resourceVersion; relist on 410 Gone or an ERROR event; back off and retry on any failure.
    Returns when `stopping` is set."""
    backoff = 0.2
    while not stopping.is_set():
        try:
            listing = await kube.request(
                "GET", path, query={"labelSelector": label_selector}, timeout=60
            )
            version = str(listing.get("metadata", {}).get("resourceVersion", ""))
            for item in listing.get("items") or []:
                await _call(on_event, "SYNC", item)
            if on_synced is not None:
                on_synced()
                on_synced = None
            backoff = 0.2
            while not stopping.is_set():
                gone = False
                async for event in kube.watch(path, version, label_selector=label_selector):
                    kind, obj = event.get("type", ""), event.get("object") or {}
                    if kind == "ERROR":
                        code = obj.get("code")
                        log.info("watch %s: ERROR %s %s; relisting", path, code, obj.get("message"))
                        gone = True
                        break
                    version = str(obj.get("metadata", {}).get("resourceVersion", version))
                    if kind != "BOOKMARK":
                        await _call(on_event, kind, obj)
                if gone:
                    break
        except asyncio.CancelledError:
            raise
        except ApiException as error:
            if error.status == 410:
                log.info("watch %s: 410 Gone; relisting", path)
                continue
            log.warning(
                "watch %s failed: %s %s; retrying in %.1fs",
                path,
                error.status,
                error.reason,
                backoff,
            )
        except (aiohttp.ClientError, TimeoutError, OSError, ValueError) as error:
            log.warning("watch %s failed: %r; retrying in %.1fs", path, error, backoff)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stopping.wait(), timeout=backoff)
        backoff = min(backoff * 2, 5.0)


async def _call(
    handler: Callable[[str, dict[str, Any]], Awaitable[None] | None], kind: str, obj: dict[str, Any]
) -> None:
    result = handler(kind, obj)
    if result is not None:
        await result
