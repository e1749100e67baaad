"""One API request on the connection pool and credentials of a `kubernetes.aio` ApiClient,
without the generated layers: the body is serialised once (json.dumps, in the client's REST
layer) and the response parsed once (json.loads). The generated methods also validate their
arguments (pydantic), walk the body (`sanitize_for_serialization`) and walk the response again
(`response_deserialize`), CPU spent on every call the operator makes (status, metadata,
Events, Datasets, Secret key names) for nothing modelfs needs (benchmarks/README.md)."""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import quote, urlencode

from kubernetes.aio.client import ApiClient

from modelfs.pkg.kube.errors import REQUEST_TIMEOUT, error_for

JSON = "application/json"
MERGE_PATCH = "application/merge-patch+json"
JSON_PATCH = "application/json-patch+json"


def object_path(
    group: str,
    version: str,
    plural: str,
    namespace: str,
    name: str = "",
    subresource: str = "",
) -> str:
    """The URL path of a namespaced object (a collection without `name`), each part quoted as
    the generated client quotes path parameters (nothing is safe: a `/` cannot change the
    path). The core group is `""`."""
    base = f"/apis/{quote(group, safe='')}/{quote(version, safe='')}" if group else "/api/v1"
    path = f"{base}/namespaces/{quote(namespace, safe='')}/{quote(plural, safe='')}"
    if name:
        path += f"/{quote(name, safe='')}"
    if subresource:
        path += f"/{quote(subresource, safe='')}"
    return path


async def request(
    api: ApiClient,
    method: str,
    path: str,
    body: Any = None,
    content_type: str = JSON,
    timeout: float = REQUEST_TIMEOUT,  # noqa: ASYNC109 (per request, as the generated client)
    *,
    query: dict[str, str] | None = None,
    missing_ok: bool = False,
) -> tuple[int, dict[str, Any] | None]:
    """The status and decoded JSON body (None when empty) of one request to `path`.

    `body` is what the REST layer sends for `content_type`: a dict or list is json.dumps()ed
    once for a JSON type; a str is sent as it is for any other type (the Dataset apply's YAML).
    A non-2xx status raises its `ApiError` (NotFoundError, ConflictError, InvalidError) with the
    server's message, except a 404 with `missing_ok`, which returns `(404, None)`; no answer at
    all raises what aiohttp raises (aiohttp.ClientError, TimeoutError), as the generated client.
    """
    config = api.configuration
    # What ApiClient.param_serialize puts into every request, auth last: the default headers
    # (User-Agent), the cookie, and the credentials of `auth_settings()`, which runs the
    # configuration's refresh_api_key_hook (an expiring token is refreshed here too).
    headers: dict[str, str] = {**api.default_headers, "Accept": JSON, "Content-Type": content_type}
    if api.cookie:
        headers["Cookie"] = api.cookie
    queries: list[tuple[str, str]] = list((query or {}).items())
    client: Any = api  # the generated client is untyped
    await client.update_params_for_auth(headers, queries, ["BearerToken"], path, method, None)
    url = config.host + path
    if queries:
        url += "?" + urlencode(queries, quote_via=quote)
    response = await client.call_api(method, url, headers, body, None, _request_timeout=timeout)
    data: bytes = await response.read()
    status = int(response.status)
    if 200 <= status < 300:
        return status, (json.loads(data) if data else None)
    if status == 404 and missing_ok:
        return status, None
    raise error_for(status, response.reason, data)
