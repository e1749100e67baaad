"""pytest fixtures for the local catalog servers (loaded by the repository's conftest.py;
elsewhere `-p modelfs.testing.catalog.fixtures`).

Each server starts once per session on a free loopback port; the function-scoped fixture
hands it to a test and clears its request log and pending faults afterwards. Tests add their
own repositories, buckets and files under names of their own.
"""

from __future__ import annotations

import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from modelfs.testing.catalog.files import FileServer
from modelfs.testing.catalog.git import GitServer
from modelfs.testing.catalog.hub import Catalog, HubServer, ModelScopeServer
from modelfs.testing.catalog.s3 import S3Server, free_port

CATALOG_TOKEN = "hf_modelfs_catalog_token"
"""A token both the local Hub and the local ModelScope accept (user `modelfs`)."""


@pytest.fixture(scope="session")
def hub_catalog() -> Catalog:
    """The repositories the local Hub and ModelScope serve; tests add their own."""
    return Catalog(users={CATALOG_TOKEN: "modelfs"})


@pytest.fixture(scope="session")
def _hub_server(hub_catalog: Catalog) -> Iterator[HubServer]:
    with HubServer(hub_catalog, page_size=50) as server:
        yield server


@pytest.fixture(scope="session")
def _modelscope_server(hub_catalog: Catalog) -> Iterator[ModelScopeServer]:
    with ModelScopeServer(hub_catalog) as server:
        yield server


@pytest.fixture(scope="session")
def _s3_server() -> Iterator[S3Server]:
    with S3Server() as server:
        yield server


@pytest.fixture(scope="session")
def git_root() -> Iterator[Path]:
    """Where the local git server's bare repositories live (make_repo(git_root, name, ...))."""
    with tempfile.TemporaryDirectory(prefix="modelfs-git-") as root:
        yield Path(root)


@pytest.fixture(scope="session")
def _git_server(git_root: Path) -> Iterator[GitServer]:
    with GitServer(git_root) as server:
        yield server


@pytest.fixture(scope="session")
def _file_server() -> Iterator[FileServer]:
    with FileServer() as server:
        yield server


@pytest.fixture
def hub_server(_hub_server: HubServer) -> Iterator[HubServer]:
    """The local Hugging Face Hub (`.url` is the endpoint to give HfApi or the source)."""
    yield _hub_server
    _hub_server.clear()


@pytest.fixture
def modelscope_server(_modelscope_server: ModelScopeServer) -> Iterator[ModelScopeServer]:
    yield _modelscope_server
    _modelscope_server.clear()


@pytest.fixture
def s3_server(_s3_server: S3Server) -> S3Server:
    """moto's S3 server (`.url`, `.put(bucket, {key: bytes})`, keys in modelfs...s3)."""
    return _s3_server


@pytest.fixture
def git_server(_git_server: GitServer) -> Iterator[GitServer]:
    yield _git_server
    _git_server.clear()
    _git_server.users.clear()


@pytest.fixture
def file_server(_file_server: FileServer) -> Iterator[FileServer]:
    yield _file_server
    _file_server.clear()
    _file_server.users.clear()
    _file_server.redirects.clear()


@pytest.fixture
def stopped_url() -> str:
    """The URL of a loopback port nothing listens on (a catalog that cannot be reached)."""
    return f"http://127.0.0.1:{free_port()}"
