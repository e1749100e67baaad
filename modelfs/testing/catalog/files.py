"""A plain HTTP file server: GET and HEAD of in-memory files, with ETag and Content-Length, a
directory index for a path ending in `/`, redirects, and basic auth when it is given users."""

from __future__ import annotations

import base64
import hashlib
import html

from modelfs.testing.catalog.base import LocalServer, Reply, Request


class FileServer(LocalServer):
    name = "files"

    def __init__(
        self,
        files: dict[str, bytes] | None = None,
        users: dict[str, str] | None = None,
        host: str = "127.0.0.1",
    ) -> None:
        super().__init__(host)
        self.files: dict[str, bytes] = dict(files or {})
        """Path (starting with /) -> content. Tests change it while the server runs."""
        self.users = dict(users or {})
        """username -> password; empty: no authentication."""
        self.redirects: dict[str, str] = {}
        """Path -> absolute URL to redirect to (302)."""
        self.sizes: dict[str, int] = {}
        """Path -> size of a file known by its size only (no bytes held): HEAD answers its
        Content-Length and an ETag derived from path and size, GET a 501 (the sandbox's files
        of plausible sizes)."""

    @staticmethod
    def etag(content: bytes) -> str:
        return '"' + hashlib.sha256(content).hexdigest()[:32] + '"'

    def _authorized(self, request: Request) -> bool:
        if not self.users:
            return True
        auth = request.headers.get("Authorization") or request.headers.get("authorization") or ""
        if not auth.startswith("Basic "):
            return False
        user, _, password = base64.b64decode(auth[6:]).decode().partition(":")
        return self.users.get(user) == password

    def handle(self, request: Request) -> Reply:
        if request.path in self.redirects:
            return Reply(302, b"", {"Location": self.redirects[request.path]})
        if not self._authorized(request):
            return Reply(401, b"unauthorized", {"WWW-Authenticate": 'Basic realm="files"'})
        if request.path.endswith("/"):
            paths = [*self.files, *self.sizes]
            names = sorted(p[len(request.path) :] for p in paths if p.startswith(request.path))
            if not names:
                return Reply(404, b"not found")
            links = "".join(f'<a href="{html.escape(n)}">{html.escape(n)}</a>\n' for n in names)
            page = f"<html><body><pre>{links}</pre></body></html>".encode()
            return Reply(200, page, {"Content-Type": "text/html; charset=utf-8"})
        if request.path in self.sizes and request.path not in self.files:
            size = self.sizes[request.path]
            headers = {
                "Content-Type": "application/octet-stream",
                "ETag": self.etag(f"{request.path}\0{size}".encode()),
                "Last-Modified": "Mon, 01 Jan 2024 00:00:00 GMT",
                "Content-Length": str(size),
            }
            if request.method == "HEAD":
                return Reply(200, b"", headers)
            return Reply(501, b"this file is known by its size only", {})
        content = self.files.get(request.path)
        if content is None:
            return Reply(404, b"not found")
        headers = {
            "Content-Type": "application/octet-stream",
            "ETag": self.etag(content),
            "Last-Modified": "Mon, 01 Jan 2024 00:00:00 GMT",
        }
        return Reply(200, content, headers)
