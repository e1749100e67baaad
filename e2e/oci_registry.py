"""A registry of OCI artifacts in memory, over plain HTTP on 127.0.0.1: just enough of the
distribution API for `helm push` and `helm install oci://...` (blobs by monolithic or chunked
upload, manifests by tag or digest, the tag list). The release workflow pushes the chart to
ghcr.io; the tests push the same package here and install it back with the README's line."""

from __future__ import annotations

import hashlib
import json
import re
import threading
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any
from urllib.parse import parse_qs, urlsplit

_UPLOADS = re.compile(r"^/v2/(?P<name>.+)/blobs/uploads/(?P<id>[^/]*)$")
_BLOB = re.compile(r"^/v2/(?P<name>.+)/blobs/(?P<digest>sha256:[a-f0-9]{64})$")
_MANIFEST = re.compile(r"^/v2/(?P<name>.+)/manifests/(?P<ref>[^/]+)$")
_TAGS = re.compile(r"^/v2/(?P<name>.+)/tags/list$")


def digest_of(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


class OciRegistry:
    """`with OciRegistry() as registry:` serves on `registry.host` (127.0.0.1:<port>)."""

    def __init__(self) -> None:
        self.blobs: dict[str, bytes] = {}
        self.manifests: dict[str, tuple[str, bytes]] = {}  # digest -> (media type, body)
        self.tags: dict[str, dict[str, str]] = {}  # repository -> tag -> digest
        self.uploads: dict[str, bytearray] = {}
        self.requests: list[str] = []
        self._lock = threading.Lock()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def host(self) -> str:
        return f"127.0.0.1:{self._server.server_address[1]}"

    def __enter__(self) -> OciRegistry:
        self._thread.start()
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        trace: TracebackType | None,
    ) -> None:
        self._server.shutdown()
        self._server.server_close()

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        registry = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: Any) -> None:
                registry.requests.append(f"{self.command} {self.path}")

            def _reply(
                self, status: int, body: bytes = b"", headers: dict[str, str] | None = None
            ) -> None:
                self.send_response(status)
                for name, value in (headers or {}).items():
                    self.send_header(name, value)
                self.send_header("Docker-Distribution-API-Version", "registry/2.0")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(body)

            def _body(self) -> bytes:
                return self.rfile.read(int(self.headers.get("Content-Length") or 0))

            def _error(self, status: int, code: str) -> None:
                body = json.dumps({"errors": [{"code": code, "message": code.lower()}]})
                self._reply(status, body.encode(), {"Content-Type": "application/json"})

            def do_GET(self) -> None:
                path = urlsplit(self.path).path
                if path in ("/v2", "/v2/"):
                    return self._reply(200, b"{}", {"Content-Type": "application/json"})
                if found := _BLOB.match(path):
                    data = registry.blobs.get(found["digest"])
                    if data is None:
                        return self._error(404, "BLOB_UNKNOWN")
                    headers = {
                        "Content-Type": "application/octet-stream",
                        "Docker-Content-Digest": found["digest"],
                    }
                    return self._reply(200, data, headers)
                if found := _MANIFEST.match(path):
                    ref = found["ref"]
                    digest = registry.tags.get(found["name"], {}).get(ref, ref)
                    if digest not in registry.manifests:
                        return self._error(404, "MANIFEST_UNKNOWN")
                    media_type, body = registry.manifests[digest]
                    headers = {"Content-Type": media_type, "Docker-Content-Digest": digest}
                    return self._reply(200, body, headers)
                if found := _TAGS.match(path):
                    tags = sorted(registry.tags.get(found["name"], {}))
                    body = json.dumps({"name": found["name"], "tags": tags}).encode()
                    return self._reply(200, body, {"Content-Type": "application/json"})
                return self._error(404, "NAME_UNKNOWN")

            do_HEAD = do_GET

            def do_POST(self) -> None:
                found = _UPLOADS.match(urlsplit(self.path).path)
                if not found or found["id"]:
                    return self._error(404, "NAME_UNKNOWN")
                self._body()
                upload = uuid.uuid4().hex
                with registry._lock:
                    registry.uploads[upload] = bytearray()
                location = f"/v2/{found['name']}/blobs/uploads/{upload}"
                self._reply(202, headers={"Location": location, "Range": "0-0"})

            def do_PATCH(self) -> None:
                found = _UPLOADS.match(urlsplit(self.path).path)
                if not found or found["id"] not in registry.uploads:
                    return self._error(404, "BLOB_UPLOAD_UNKNOWN")
                data = registry.uploads[found["id"]]
                data += self._body()
                headers = {"Location": self.path, "Range": f"0-{max(len(data) - 1, 0)}"}
                self._reply(202, headers=headers)

            def do_PUT(self) -> None:
                url = urlsplit(self.path)
                body = self._body()
                if found := _UPLOADS.match(url.path):
                    data = registry.uploads.pop(found["id"], None)
                    if data is None:
                        return self._error(404, "BLOB_UPLOAD_UNKNOWN")
                    data += body
                    digest = parse_qs(url.query).get("digest", [""])[0]
                    if digest != digest_of(bytes(data)):
                        return self._error(400, "DIGEST_INVALID")
                    registry.blobs[digest] = bytes(data)
                    location = f"/v2/{found['name']}/blobs/{digest}"
                    return self._reply(
                        201, headers={"Location": location, "Docker-Content-Digest": digest}
                    )
                if found := _MANIFEST.match(url.path):
                    digest = digest_of(body)
                    media_type = self.headers.get("Content-Type", "")
                    manifest = json.loads(body)
                    for blob in [manifest.get("config"), *manifest.get("layers", [])]:
                        if blob and blob["digest"] not in registry.blobs:
                            return self._error(400, "MANIFEST_BLOB_UNKNOWN")
                    with registry._lock:
                        registry.manifests[digest] = (media_type, body)
                        if not found["ref"].startswith("sha256:"):
                            registry.tags.setdefault(found["name"], {})[found["ref"]] = digest
                    location = f"/v2/{found['name']}/manifests/{digest}"
                    return self._reply(
                        201, headers={"Location": location, "Docker-Content-Digest": digest}
                    )
                return self._error(404, "NAME_UNKNOWN")

        return Handler
