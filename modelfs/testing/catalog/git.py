"""A git smart-HTTP endpoint: `git http-backend` (git's own CGI program) over local bare
repositories, behind a small HTTP server, optionally with basic auth.

`GitServer(root).start()` serves every bare repository under `root` at
`{url}/{name}.git`; `make_repo(root, name, files, branch)` creates one with a commit.
"""

from __future__ import annotations

import base64
import os
import subprocess
import tempfile
from collections.abc import Mapping
from pathlib import Path

from modelfs.testing.catalog.base import LocalServer, Reply, Request

GIT_ENV = {
    "GIT_AUTHOR_NAME": "modelfs",
    "GIT_AUTHOR_EMAIL": "modelfs@example.invalid",
    "GIT_COMMITTER_NAME": "modelfs",
    "GIT_COMMITTER_EMAIL": "modelfs@example.invalid",
    "GIT_CONFIG_NOSYSTEM": "1",
    "HOME": tempfile.gettempdir(),
}


def _git(*args: str, cwd: Path | None = None) -> str:
    env = {**os.environ, **GIT_ENV}
    done = subprocess.run(
        ["git", *args], cwd=cwd, env=env, check=True, capture_output=True, text=True
    )
    return done.stdout.strip()


def http_backend() -> str:
    return str(Path(_git("--exec-path")) / "git-http-backend")


def make_repo(root: Path, name: str, files: Mapping[str, str], branch: str = "main") -> Path:
    """A bare repository `root/name.git` with one commit of `files` on `branch`."""
    bare = root / f"{name}.git"
    _git("init", "--bare", "-q", "-b", branch, str(bare))
    commit(bare, files, branch)
    return bare


def commit(bare: Path, files: Mapping[str, str], branch: str = "main", tag: str = "") -> str:
    """A new commit of `files` on `branch` of the bare repository (and `tag` on it); its sha."""
    with tempfile.TemporaryDirectory() as work:
        w = Path(work)
        _git("init", "-q", "-b", branch, str(w))
        _git("remote", "add", "origin", str(bare), cwd=w)
        if _git("ls-remote", "origin", f"refs/heads/{branch}", cwd=w):
            _git("fetch", "-q", "origin", branch, cwd=w)
            _git("reset", "-q", "--hard", "FETCH_HEAD", cwd=w)
        for path, text in files.items():
            (w / path).parent.mkdir(parents=True, exist_ok=True)
            (w / path).write_text(text)
        _git("add", "-A", cwd=w)
        _git("commit", "-q", "--allow-empty", "-m", f"update {sorted(files)}", cwd=w)
        if tag:
            _git("tag", tag, cwd=w)
            _git("push", "-q", "origin", f"refs/tags/{tag}", cwd=w)
        _git("push", "-q", "origin", f"HEAD:refs/heads/{branch}", cwd=w)
        return _git("rev-parse", "HEAD", cwd=w)


class GitServer(LocalServer):
    name = "git"

    def __init__(
        self, root: Path, users: Mapping[str, str] | None = None, host: str = "127.0.0.1"
    ) -> None:
        super().__init__(host)
        self.root = root
        self.users = dict(users or {})
        """username -> password (a token is the password of any user, `oauth2` for the loader)."""
        self._backend = http_backend()

    def _authorized(self, request: Request) -> bool:
        if not self.users:
            return True
        auth = request.headers.get("Authorization") or request.headers.get("authorization") or ""
        if not auth.startswith("Basic "):
            return False
        user, _, password = base64.b64decode(auth[6:]).decode().partition(":")
        return self.users.get(user) == password

    def handle(self, request: Request) -> Reply:
        if not self._authorized(request):
            return Reply(401, b"unauthorized", {"WWW-Authenticate": 'Basic realm="git"'})
        query = "&".join(f"{k}={v}" for k, values in request.query.items() for v in values)
        env = {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "GIT_PROJECT_ROOT": str(self.root),
            "GIT_HTTP_EXPORT_ALL": "1",
            "REQUEST_METHOD": request.method,
            "PATH_INFO": request.path,
            "QUERY_STRING": query,
            "CONTENT_TYPE": request.headers.get("Content-Type", ""),
            "CONTENT_LENGTH": str(len(request.body)),
            "REMOTE_ADDR": "127.0.0.1",
            "GIT_HTTP_MAX_REQUEST_BUFFER": "100M",
        }
        protocol = request.headers.get("Git-Protocol")
        if protocol:
            env["GIT_PROTOCOL"] = protocol
        done = subprocess.run(
            [self._backend], input=request.body, env=env, capture_output=True, check=False
        )
        head, _, body = done.stdout.partition(b"\r\n\r\n")
        if not _:
            head, _, body = done.stdout.partition(b"\n\n")
        status, headers = 200, {}
        for line in head.decode(errors="replace").splitlines():
            key, _, value = line.partition(":")
            if key.lower() == "status":
                status = int(value.strip().split()[0])
            elif key:
                headers[key.strip()] = value.strip()
        return Reply(status, body, headers)
