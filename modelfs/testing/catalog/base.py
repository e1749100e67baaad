"""A real HTTP server on a free loopback port, in a thread, with the faults tests need.

Each catalog server (Hub, ModelScope, plain files, git) is a `LocalServer`: started with
`start()`, stopped with `stop()` (after which its port refuses connections, as a catalog with
no egress would), with a log of every request and a queue of faults to answer before the real
answer (a status with headers, or a delay longer than the client's timeout).
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Self
from urllib.parse import parse_qs, unquote, urlsplit


@dataclass(frozen=True)
class Seen:
    """One request as the server saw it."""

    method: str
    path: str
    """The path and query as sent."""
    headers: Mapping[str, str]


@dataclass
class Fault:
    status: int = 500
    headers: Mapping[str, str] = field(default_factory=dict)
    body: bytes = b'{"error": "injected"}'
    delay: float = 0.0
    """Seconds to wait before answering (past the client's timeout: a timeout)."""
    path_contains: str = ""
    """Only requests whose path contains this; "" for any."""


@dataclass
class Reply:
    status: int
    body: bytes = b""
    headers: dict[str, str] = field(default_factory=dict)

    @classmethod
    def json(cls, status: int, value: Any, headers: Mapping[str, str] | None = None) -> Reply:
        return cls(
            status,
            json.dumps(value).encode(),
            {"Content-Type": "application/json", **(headers or {})},
        )


@dataclass(frozen=True)
class Request:
    method: str
    path: str
    """URL-decoded path, without the query."""
    raw_path: str
    query: dict[str, list[str]]
    headers: Mapping[str, str]
    body: bytes

    def arg(self, key: str, default: str = "") -> str:
        return self.query.get(key, [default])[0]


class _Server(ThreadingHTTPServer):
    # The standard library's backlog of 5 drops the connections of a burst of lookups (each
    # retried a second later); real servers listen with a backlog in the hundreds.
    request_queue_size = 128


class LocalServer:
    """Subclasses answer `handle(request) -> Reply`; everything else is shared."""

    name = "server"

    def __init__(self, host: str = "127.0.0.1") -> None:
        self.host = host
        self.seen: list[Seen] = []
        self.faults: list[Fault] = []
        self._lock = threading.Lock()
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None
        self.port = 0

    # What a test reads and sets.

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def fail(self, *faults: Fault) -> None:
        """Answer the next matching requests with these faults, in order, once each."""
        with self._lock:
            self.faults.extend(faults)

    def requests(self, path_contains: str = "") -> list[Seen]:
        with self._lock:
            return [s for s in self.seen if path_contains in s.path]

    def clear(self) -> None:
        with self._lock:
            self.seen.clear()
            self.faults.clear()

    # Life cycle.

    def start(self, port: int = 0) -> Self:
        server = _Server((self.host, port), _handler_for(self))
        server.daemon_threads = True
        self._server = server
        self.port = server.server_address[1]
        self._thread = threading.Thread(
            target=server.serve_forever, name=f"{self.name}:{self.port}", daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None

    def __enter__(self) -> Self:
        return self.start() if self._server is None else self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # The protocol.

    def handle(self, request: Request) -> Reply:
        raise NotImplementedError

    def _take_fault(self, path: str) -> Fault | None:
        with self._lock:
            for i, fault in enumerate(self.faults):
                if fault.path_contains in path:
                    return self.faults.pop(i)
        return None

    def _serve(self, handler: BaseHTTPRequestHandler) -> None:
        headers = {k: v for k, v in handler.headers.items()}
        with self._lock:
            self.seen.append(Seen(handler.command, handler.path, headers))
        fault = self._take_fault(handler.path)
        if fault is not None:
            if fault.delay:
                time.sleep(fault.delay)
            reply = Reply(fault.status, fault.body, dict(fault.headers))
        else:
            length = int(handler.headers.get("Content-Length") or 0)
            body = handler.rfile.read(length) if length else b""
            split = urlsplit(handler.path)
            request = Request(
                method=handler.command,
                path=unquote(split.path),
                raw_path=split.path,
                query=parse_qs(split.query, keep_blank_values=True),
                headers=headers,
                body=body,
            )
            reply = self.handle(request)
        try:
            handler.send_response(reply.status)
            for key, value in reply.headers.items():
                handler.send_header(key, value)
            if "Content-Length" not in reply.headers:
                handler.send_header("Content-Length", str(len(reply.body)))
            handler.end_headers()
            if handler.command != "HEAD":
                handler.wfile.write(reply.body)
        except (BrokenPipeError, ConnectionResetError):
            # The client gave up (its timeout): nothing left to answer.
            pass


def _handler_for(server: LocalServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def _any(self) -> None:
            server._serve(self)

        do_GET = do_HEAD = do_POST = do_PUT = do_DELETE = _any

        def log_message(self, format: str, *args: Any) -> None:
            # The request log is `server.seen`; stderr stays quiet.
            return

    return Handler
