"""A local Hugging Face Hub and a local ModelScope, serving a small in-memory catalog.

Both speak the documented REST API their official clients use (the paths, the query
parameters, the JSON fields, the `Link` pagination of tree listings, the `X-Error-Code` and
`X-Error-Message` headers, the 401/403 of private and gated repositories), so that
`huggingface_hub.HfApi(endpoint=hub.url)` works against `HubServer` unchanged
(tests/test_catalog_servers.py proves it). No file content is stored: a file is a path and a
size, and its digests are derived from them.
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
import threading
import time
import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal
from urllib.parse import quote, unquote

from modelfs.testing.catalog.base import LocalServer, Reply, Request

CATALOG_TOKEN = "hf_modelfs_catalog_token"
"""A token the `hub_catalog` fixture's Hub and ModelScope accept (user `modelfs`)."""
LFS_SUFFIXES = (".safetensors", ".bin", ".gguf", ".pt", ".pth", ".onnx", ".h5", ".msgpack")
Gated = Literal[False, "auto", "manual"]


def _hex(*parts: object, n: int = 40) -> str:
    return hashlib.sha256("\0".join(map(str, parts)).encode()).hexdigest()[:n]


@dataclass
class Snapshot:
    """One commit: the files and their sizes."""

    files: dict[str, int]
    generation: int = 0
    created_at: int = field(default_factory=lambda: int(time.time()))

    @property
    def sha(self) -> str:
        return _hex("commit", self.generation, sorted(self.files.items()))


@dataclass
class Repo:
    """A repository of the catalog. `files` is the default branch's content."""

    id: str
    files: dict[str, int]
    repo_type: Literal["model", "dataset"] = "model"
    default_branch: str = "main"
    branches: dict[str, dict[str, int]] = field(default_factory=dict)
    """Other branches: name -> files."""
    tags: dict[str, tuple[dict[str, int], int]] = field(default_factory=dict)
    """Tags: name -> (files, created_at unix seconds)."""
    private: bool = False
    gated: Gated = False
    tokens: frozenset[str] = frozenset()
    """Tokens that may read it when private, or download it when gated."""
    parameters: int | None = None
    architecture: str | None = None
    license: str | None = None
    snapshots: dict[str, Snapshot] = field(default_factory=dict, init=False)

    def __post_init__(self) -> None:
        self.snapshots[self.default_branch] = Snapshot(dict(self.files))
        for name, files in self.branches.items():
            self.snapshots[name] = Snapshot(dict(files), generation=int(_hex(name, n=4), 16))
        for name, (files, created) in self.tags.items():
            self.snapshots[name] = Snapshot(dict(files), generation=int(_hex(name, n=4), 16))
            self.snapshots[name].created_at = created

    def push(self, files: Mapping[str, int], branch: str = "") -> str:
        """A new commit on `branch` (the default one by default); its sha."""
        name = branch or self.default_branch
        old = self.snapshots.get(name)
        self.snapshots[name] = Snapshot(dict(files), (old.generation + 1) if old else 1)
        if name == self.default_branch:
            self.files = dict(files)
        return self.snapshots[name].sha

    def snapshot(self, revision: str | None) -> Snapshot | None:
        if revision is None:
            return self.snapshots[self.default_branch]
        if revision in self.snapshots:
            return self.snapshots[revision]
        for snap in self.snapshots.values():
            if snap.sha == revision:
                return snap
        return None

    def can_read(self, token: str | None) -> bool:
        return not self.private or (token is not None and token in self.tokens)

    def can_download(self, token: str | None) -> bool:
        return self.can_read(token) and (
            not self.gated or (token is not None and token in self.tokens)
        )


def oid(repo: Repo, path: str, size: int, snap: Snapshot) -> str:
    return _hex("blob", repo.id, path, size, snap.generation)


def lfs_sha256(repo: Repo, path: str, size: int, snap: Snapshot) -> str:
    return _hex("lfs", repo.id, path, size, snap.generation, n=64)


def is_lfs(path: str) -> bool:
    return path.endswith(LFS_SUFFIXES)


@dataclass
class Catalog:
    """What both servers serve; tests change it while the servers run (push a commit)."""

    repos: list[Repo] = field(default_factory=list)
    users: dict[str, str] = field(default_factory=dict)
    """Valid tokens -> user name. A token not here is refused as invalid credentials."""
    lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def find(self, repo_id: str, repo_type: str = "model") -> Repo | None:
        for repo in self.repos:
            if repo.id == repo_id and repo.repo_type == repo_type:
                return repo
        return None

    def add(self, repo: Repo) -> Repo:
        with self.lock:
            self.repos.append(repo)
        return repo


def _dirs(paths: Iterable[str]) -> set[str]:
    out = set()
    for path in paths:
        parts = path.split("/")[:-1]
        for i in range(1, len(parts) + 1):
            out.add("/".join(parts[:i]))
    return out


class HubServer(LocalServer):
    """The Hugging Face Hub's API: repository info, tree listing, auth-check, file resolve."""

    name = "hub"

    def __init__(self, catalog: Catalog, page_size: int = 1000, host: str = "127.0.0.1") -> None:
        super().__init__(host)
        self.catalog = catalog
        self.page_size = page_size
        """Tree entries per page (the Hub's is 1000; a test sets 2 to see the `Link` pages)."""

    API = re.compile(
        r"^/api/(?P<kind>models|datasets)/(?P<repo>[^/]+(?:/[^/]+)?)"
        r"(?P<rest>/(?:revision|tree)/.*|/auth-check)?$"
    )
    RESOLVE = re.compile(
        r"^(?P<prefix>/datasets)?/(?P<repo>[^/]+/[^/]+|[^/]+)/resolve/(?P<rest>.+)$"
    )

    def _token(self, request: Request) -> tuple[str | None, Reply | None]:
        auth = request.headers.get("Authorization") or request.headers.get("authorization")
        if not auth:
            return None, None
        token = auth.removeprefix("Bearer ").strip()
        if token not in self.catalog.users:
            message = "Invalid credentials in Authorization header"
            return token, Reply.json(401, {"error": message}, {"X-Error-Message": message})
        return token, None

    @staticmethod
    def _error(status: int, code: str, message: str) -> Reply:
        return Reply.json(
            status, {"error": message}, {"X-Error-Code": code, "X-Error-Message": message}
        )

    def _repo_not_found(self, token: str | None) -> Reply:
        # The Hub answers 401 to an anonymous client and 404 to an authenticated one, so that
        # a private repository is indistinguishable from a missing one.
        return self._error(401 if token is None else 404, "RepoNotFound", "Repository not found")

    def handle(self, request: Request) -> Reply:
        token, refused = self._token(request)
        if refused is not None:
            return refused
        match = self.API.match(request.raw_path)
        if match is not None and request.method in ("GET", "HEAD"):
            repo_type = "model" if match["kind"] == "models" else "dataset"
            return self._api(request, repo_type, unquote(match["repo"]), match["rest"] or "", token)
        match = self.RESOLVE.match(request.raw_path)
        if match is not None and request.method in ("GET", "HEAD"):
            repo_type = "dataset" if match["prefix"] else "model"
            return self._resolve(request, repo_type, unquote(match["repo"]), match["rest"], token)
        return Reply.json(404, {"error": "Sorry, we can't find the page you are looking for."})

    def _api(
        self, request: Request, repo_type: str, repo_id: str, rest: str, token: str | None
    ) -> Reply:
        repo = self.catalog.find(repo_id, repo_type)
        if repo is None or not repo.can_read(token):
            return self._repo_not_found(token)
        if rest == "/auth-check":
            if not repo.can_download(token):
                return self._error(
                    401 if token is None else 403,
                    "GatedRepo",
                    f"Access to model {repo.id} is restricted. You must have access to it "
                    "and be authenticated to access it. Please log in.",
                )
            return Reply.json(200, {"message": "ok"})
        if rest.startswith("/revision/"):
            revision = unquote(rest.removeprefix("/revision/"))
            return self._info(request, repo, revision)
        if rest.startswith("/tree/"):
            revision_raw, _, path_raw = rest.removeprefix("/tree/").partition("/")
            return self._tree(request, repo, unquote(revision_raw), unquote(path_raw))
        return self._info(request, repo, None)

    def _revision_not_found(self, revision: str) -> Reply:
        return self._error(404, "RevisionNotFound", f"Invalid rev id: {revision}")

    def _info(self, request: Request, repo: Repo, revision: str | None) -> Reply:
        snap = repo.snapshot(revision)
        if snap is None:
            return self._revision_not_found(revision or "")
        blobs = request.arg("blobs").lower() == "true"
        siblings = []
        for path, size in sorted(snap.files.items()):
            sibling: dict[str, Any] = {"rfilename": path}
            if blobs:
                sibling["blobId"] = oid(repo, path, size, snap)
                sibling["size"] = size
                if is_lfs(path):
                    sibling["lfs"] = {
                        "sha256": lfs_sha256(repo, path, size, snap),
                        "size": size,
                        "pointerSize": 134,
                    }
            siblings.append(sibling)
        when = time.strftime("%Y-%m-%dT%H:%M:%S.000Z", time.gmtime(snap.created_at))
        body: dict[str, Any] = {
            "_id": _hex("id", repo.id, n=24),
            "id": repo.id,
            "author": repo.id.split("/")[0] if "/" in repo.id else None,
            "sha": snap.sha,
            "lastModified": when,
            "createdAt": when,
            "private": repo.private,
            "disabled": False,
            "gated": repo.gated,
            "downloads": 0,
            "likes": 0,
            "tags": [],
            "siblings": siblings,
            "usedStorage": sum(snap.files.values()),
        }
        if repo.repo_type == "model":
            body["modelId"] = repo.id
            if repo.architecture:
                body["config"] = {"architectures": [repo.architecture]}
            if repo.parameters is not None:
                body["safetensors"] = {
                    "parameters": {"BF16": repo.parameters},
                    "total": repo.parameters,
                }
        if repo.license:
            body["cardData"] = {"license": repo.license}
            body["tags"] = [f"license:{repo.license}"]
        return Reply.json(200, body)

    def _tree(self, request: Request, repo: Repo, revision: str, path: str) -> Reply:
        snap = repo.snapshot(revision)
        if snap is None:
            return self._revision_not_found(revision)
        recursive = request.arg("recursive").lower() == "true"
        prefix = f"{path.rstrip('/')}/" if path else ""
        files = {p: s for p, s in snap.files.items() if p.startswith(prefix)}
        dirs = {d for d in _dirs(files) if d.startswith(prefix)}
        if path and not files:
            return self._error(404, "EntryNotFound", f"{path} does not exist on {revision}")
        entries: list[dict[str, Any]] = []
        for d in dirs:
            if recursive or "/" not in d.removeprefix(prefix):
                entries.append({"type": "directory", "oid": _hex("tree", d), "size": 0, "path": d})
        for p, size in files.items():
            if recursive or "/" not in p.removeprefix(prefix):
                entry: dict[str, Any] = {
                    "type": "file",
                    "oid": oid(repo, p, size, snap),
                    "size": size,
                    "path": p,
                }
                if is_lfs(p):
                    entry["lfs"] = {
                        "oid": lfs_sha256(repo, p, size, snap),
                        "size": size,
                        "pointerSize": 134,
                    }
                entries.append(entry)
        entries.sort(key=lambda e: e["path"])
        cursor = request.arg("cursor")
        start = int(base64.urlsafe_b64decode(cursor.encode()).decode()) if cursor else 0
        page = entries[start : start + self.page_size]
        headers = {}
        if start + self.page_size < len(entries):
            next_cursor = base64.urlsafe_b64encode(str(start + self.page_size).encode()).decode()
            kind = "models" if repo.repo_type == "model" else "datasets"
            tail = f"/{quote(path, safe='')}" if path else ""
            url = (
                f"{self.url}/api/{kind}/{repo.id}/tree/{quote(revision, safe='')}{tail}"
                f"?recursive={request.arg('recursive', 'false')}&expand="
                f"{request.arg('expand', 'false')}&cursor={next_cursor}"
            )
            headers["Link"] = f'<{url}>; rel="next"'
        return Reply.json(200, page, headers)

    def _resolve(
        self, request: Request, repo_type: str, repo_id: str, rest: str, token: str | None
    ) -> Reply:
        repo = self.catalog.find(repo_id, repo_type)
        if repo is None or not repo.can_read(token):
            return self._repo_not_found(token)
        revision_raw, _, path_raw = rest.partition("/")
        revision, path = unquote(revision_raw), unquote(path_raw)
        snap = repo.snapshot(revision)
        if snap is None:
            return self._revision_not_found(revision)
        if not repo.can_download(token):
            return self._error(
                401 if token is None else 403,
                "GatedRepo",
                f"Access to model {repo.id} is restricted and you are not in the authorized list.",
            )
        if path not in snap.files:
            return self._error(404, "EntryNotFound", f"{path} does not exist on {revision}")
        size = snap.files[path]
        etag = lfs_sha256(repo, path, size, snap) if is_lfs(path) else oid(repo, path, size, snap)
        headers = {
            "X-Repo-Commit": snap.sha,
            "ETag": f'"{etag}"',
            "Content-Type": "application/octet-stream",
            "Content-Length": str(size),
        }
        if is_lfs(path):
            headers["X-Linked-Etag"] = f'"{etag}"'
            headers["X-Linked-Size"] = str(size)
        if request.method == "HEAD":
            return Reply(200, b"", headers)
        if size > 1 << 20:
            return Reply.json(501, {"error": "the local Hub serves contents up to 1 MiB"})
        return Reply(200, b"\0" * size, headers)


class ModelScopeServer(LocalServer):
    """ModelScope's API as the `modelscope` client calls it: login (token -> session cookie),
    a model's revisions (branches and tags), and its files at a revision."""

    name = "modelscope"
    COOKIE = "m_session_id"
    API = re.compile(r"^/api/v1/models/(?P<repo>[^/]+/[^/]+)/(?P<what>revisions|repo/files)$")

    def __init__(self, catalog: Catalog, host: str = "127.0.0.1") -> None:
        super().__init__(host)
        self.catalog = catalog
        self.sessions: dict[str, str] = {}
        """Session id -> the token that logged in."""

    @staticmethod
    def _answer(status: int, data: Any, message: str = "success", code: int = 200) -> Reply:
        return Reply.json(
            status,
            {
                "Code": code,
                "Data": data,
                "Message": message,
                "RequestId": uuid.uuid4().hex,
                "Success": code == 200,
            },
        )

    def _session_token(self, request: Request) -> str | None:
        cookies = request.headers.get("Cookie") or request.headers.get("cookie") or ""
        for part in cookies.split(";"):
            key, _, value = part.strip().partition("=")
            if key == self.COOKIE:
                return self.sessions.get(value)
        return None

    def handle(self, request: Request) -> Reply:
        if request.path == "/api/v1/login" and request.method == "POST":
            token = str(json.loads(request.body or b"{}").get("AccessToken", ""))
            if token not in self.catalog.users:
                return self._answer(401, None, "the access token is invalid", 10010101001)
            session = uuid.uuid4().hex
            self.sessions[session] = token
            reply = self._answer(
                200, {"AccessToken": session, "Username": self.catalog.users[token]}
            )
            reply.headers["Set-Cookie"] = f"{self.COOKIE}={session}; Path=/; HttpOnly"
            return reply
        match = self.API.match(request.path)
        if match is None or request.method != "GET":
            return self._answer(404, None, "not found", 404)
        session_token = self._session_token(request)
        repo = self.catalog.find(match["repo"], "model")
        if repo is None:
            return self._answer(404, None, f"model {match['repo']} does not exist", 10010205001)
        if not repo.can_download(session_token):
            return self._answer(403, None, "no permission to access the model", 10010205003)
        if match["what"] == "revisions":
            return self._revisions(repo)
        return self._files(request, repo)

    @staticmethod
    def _detail(name: str, snap: Snapshot) -> dict[str, Any]:
        return {
            "Revision": name,
            "CommitId": snap.sha,
            "CreatedAt": snap.created_at,
            "CreatedBy": "modelfs",
            "Message": "",
        }

    def _revisions(self, repo: Repo) -> Reply:
        tags = set(repo.tags)
        branches = [self._detail(n, s) for n, s in repo.snapshots.items() if n not in tags]
        # Newest first, as ModelScope lists them (the client takes the first tag as the latest).
        tag_details = sorted(
            (self._detail(n, repo.snapshots[n]) for n in tags),
            key=lambda d: -int(d["CreatedAt"]),
        )
        return self._answer(200, {"RevisionMap": {"Branches": branches, "Tags": tag_details}})

    def _files(self, request: Request, repo: Repo) -> Reply:
        revision = request.arg("Revision") or repo.default_branch
        snap = repo.snapshot(revision)
        if snap is None:
            return self._answer(404, None, f"revision {revision} does not exist", 10010205002)
        recursive = request.arg("Recursive").lower() == "true"
        root = request.arg("Root").strip("/")
        prefix = f"{root}/" if root else ""
        files = []
        for d in sorted(_dirs(snap.files)):
            if d.startswith(prefix) and (recursive or "/" not in d.removeprefix(prefix)):
                files.append({"Name": d.rsplit("/", 1)[-1], "Path": d, "Type": "tree", "Size": 0})
        for path, size in sorted(snap.files.items()):
            if path.startswith(prefix) and (recursive or "/" not in path.removeprefix(prefix)):
                files.append(
                    {
                        "Name": path.rsplit("/", 1)[-1],
                        "Path": path,
                        "Type": "blob",
                        "Size": size,
                        "Sha256": lfs_sha256(repo, path, size, snap),
                        "IsLFS": is_lfs(path),
                        "Revision": snap.sha,
                        "CommittedDate": snap.created_at,
                    }
                )
        return self._answer(200, {"Files": files, "LatestCommitter": {"Id": snap.sha}})
