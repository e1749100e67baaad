"""The ModelScope, S3, HTTP and Git lookups against real local servers: figures, refusals,
failures, and credentials that go to the source's own host only and are never printed."""

from __future__ import annotations

import asyncio
import base64
import logging
import socket
import subprocess
from pathlib import Path
from typing import Any

import pytest

from modelfs.pkg.catalog import web
from modelfs.pkg.catalog.git import GitLookup
from modelfs.pkg.catalog.http import HttpLookup
from modelfs.pkg.catalog.modelscope import LOADER_RELEASE, ModelScopeLookup
from modelfs.pkg.catalog.net import NetSettings
from modelfs.pkg.catalog.s3 import S3Lookup
from modelfs.pkg.catalog.types import (
    CatalogEntry,
    CatalogRequest,
    Credentials,
    NotApplicable,
    Refusal,
    RefusalReason,
    Unavailable,
    UnavailableReason,
)
from modelfs.pkg.dataset.types import DatasetType
from modelfs.testing.catalog.base import Fault
from modelfs.testing.catalog.files import FileServer
from modelfs.testing.catalog.git import GitServer, commit, make_repo
from modelfs.testing.catalog.hub import CATALOG_TOKEN, Catalog, ModelScopeServer, Repo
from modelfs.testing.catalog.s3 import ACCESS_KEY, SECRET_KEY, S3Server

CANARY = "CANARY-secret-never-printed-42"
SETTINGS = NetSettings(timeout=3)


def req(type_: DatasetType, uri: str, **options: str) -> CatalogRequest:
    return CatalogRequest.of(type_, uri, options)


# ------------------------------------------------------------------------------ ModelScope


@pytest.fixture(scope="module")
def ms_repos(hub_catalog: Catalog) -> None:
    hub_catalog.add(
        Repo(
            "mstest/tiny",
            {
                "config.json": 10,
                "model.safetensors": 1000,
                "sub/extra.bin": 30,
                ".gitattributes": 5,
                "README.md": 3,
            },
            default_branch="master",
        )
    )
    hub_catalog.add(
        Repo(
            "mstest/tagged",
            {"model.safetensors": 1},
            default_branch="master",
            tags={
                "v1.0": ({"model.safetensors": 100, "config.json": 1}, LOADER_RELEASE - 100),
                "v2.0": ({"model.safetensors": 200}, LOADER_RELEASE + 100),
            },
        )
    )
    hub_catalog.add(
        Repo(
            "mstest/private",
            {"a.bin": 1},
            default_branch="master",
            private=True,
            tokens=frozenset({CATALOG_TOKEN}),
        )
    )
    hub_catalog.add(Repo("mstest/nomaster", {"a.bin": 1}, default_branch="main"))


def ms(server: ModelScopeServer) -> ModelScopeLookup:
    return ModelScopeLookup(NetSettings(modelscope_endpoint=server.url, timeout=3))


async def test_modelscope_figures_with_the_loader_s_filter(
    modelscope_server: ModelScopeServer, ms_repos: None
) -> None:
    lookup = ms(modelscope_server)
    everything = await lookup(
        req(DatasetType.MODEL_SCOPE, "modelscope://mstest/tiny"), Credentials()
    )
    assert isinstance(everything, CatalogEntry)
    # .gitattributes is never downloaded by the loader.
    assert (everything.files, everything.bytes) == (4, 1043)
    only = await lookup(
        req(DatasetType.MODEL_SCOPE, "modelscope://mstest/tiny", include="*.safetensors"),
        Credentials(),
    )
    assert isinstance(only, CatalogEntry) and (only.files, only.bytes) == (1, 1000)
    # exclude is also a regular expression searched in the file's name, as modelscope does.
    regex = await lookup(
        req(DatasetType.MODEL_SCOPE, "modelscope://mstest/tiny", exclude="^READ"), Credentials()
    )
    assert isinstance(regex, CatalogEntry) and regex.files == 3
    folder = await lookup(
        req(DatasetType.MODEL_SCOPE, "modelscope://mstest/tiny", include="sub/"), Credentials()
    )
    assert isinstance(folder, CatalogEntry) and folder.bytes == 30


async def test_modelscope_takes_the_newest_tag_before_the_loader_s_release(
    modelscope_server: ModelScopeServer, ms_repos: None
) -> None:
    result = await ms(modelscope_server)(
        req(DatasetType.MODEL_SCOPE, "modelscope://mstest/tagged"), Credentials()
    )
    assert isinstance(result, CatalogEntry) and result.bytes == 101


@pytest.mark.parametrize(
    ("uri", "options", "token", "reason"),
    [
        ("mstest/missing", {}, None, RefusalReason.REPO_NOT_FOUND),
        ("mstest/private", {}, None, RefusalReason.GATED_REPO),
        ("mstest/tiny", {}, CANARY, RefusalReason.GATED_REPO),
        ("mstest/nomaster", {}, None, RefusalReason.REVISION_NOT_FOUND),
        ("mstest/tiny", {"include": "*.gguf"}, None, RefusalReason.NO_FILES_MATCHED),
    ],
)
async def test_modelscope_refusals(
    modelscope_server: ModelScopeServer,
    ms_repos: None,
    uri: str,
    options: dict[str, str],
    token: str | None,
    reason: RefusalReason,
) -> None:
    result = await ms(modelscope_server)(
        req(DatasetType.MODEL_SCOPE, f"modelscope://{uri}", **options),
        Credentials({"token": token} if token else {}),
    )
    assert isinstance(result, Refusal) and result.reason == reason, result
    assert CANARY not in repr(result)


async def test_modelscope_with_a_token_reads_a_private_model(
    modelscope_server: ModelScopeServer, ms_repos: None
) -> None:
    result = await ms(modelscope_server)(
        req(DatasetType.MODEL_SCOPE, "modelscope://mstest/private"),
        Credentials({"token": CATALOG_TOKEN}),
    )
    assert isinstance(result, CatalogEntry) and result.files == 1
    login = modelscope_server.requests("/api/v1/login")
    assert len(login) == 1


async def test_http_a_burst_of_lookups_on_one_host_resolves_it_once(
    file_server: FileServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Resolvers drop some of a burst of identical queries (each drop costs a 5 s retry): 50
    # lookups at once on one host must send one query, and the next burst none.
    loop = asyncio.get_running_loop()
    resolved: list[str] = []
    real = loop.getaddrinfo

    async def counting(host: Any, *args: Any, **kwargs: Any) -> Any:
        resolved.append(host)
        await asyncio.sleep(0.05)
        return await real(host, *args, **kwargs)

    monkeypatch.setattr(loop, "getaddrinfo", counting)
    port = file_server.url.rsplit(":", 1)[1]
    for i in range(50):
        file_server.files[f"/burst/{i}"] = b"b" * (i + 1)
    lookup = HttpLookup(SETTINGS)
    for _ in range(2):
        results = await asyncio.gather(
            *(
                lookup(req(DatasetType.HTTP, f"http://localhost:{port}/burst/{i}"), Credentials())
                for i in range(50)
            )
        )
        assert [r.bytes if isinstance(r, CatalogEntry) else r for r in results] == [
            i + 1 for i in range(50)
        ]
    assert resolved == ["localhost"]
    await web.close_connectors()


async def test_http_a_host_that_does_not_resolve_is_asked_once_for_a_while(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # One after the other, lookups on a host that does not resolve would ask once each; a
    # single dropped query then holds every lookup waiting on it for the resolver's retry.
    loop = asyncio.get_running_loop()
    resolved: list[str] = []

    async def failing(host: Any, *args: Any, **kwargs: Any) -> Any:
        resolved.append(host)
        raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")

    monkeypatch.setattr(loop, "getaddrinfo", failing)
    lookup = HttpLookup(SETTINGS)
    for i in range(5):
        found = await lookup(req(DatasetType.HTTP, f"https://nowhere.invalid/{i}"), Credentials())
        assert isinstance(found, Unavailable), found
        assert "nowhere.invalid" in found.message, found.message
    assert resolved == ["nowhere.invalid"]
    monkeypatch.setattr(web, "FAILED_DNS_SECONDS", 0.0)  # the failure is forgotten then
    await lookup(req(DatasetType.HTTP, "https://nowhere.invalid/again"), Credentials())
    assert resolved == ["nowhere.invalid"] * 2
    await web.close_connectors()


async def test_http_lookups_go_through_the_environment_s_proxy_but_not_for_no_proxy(
    file_server: FileServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The file server stands in for the proxy: it answers the absolute URL a proxy is sent.
    file_server.files["/via-proxy.bin"] = b"p" * 7
    monkeypatch.setenv("HTTP_PROXY", file_server.url)
    monkeypatch.setenv("NO_PROXY", "direct.invalid")
    web.env_proxies.cache_clear()
    try:
        proxied = await HttpLookup(SETTINGS)(
            req(DatasetType.HTTP, "http://weights.invalid/via-proxy.bin"), Credentials()
        )
        direct = await HttpLookup(SETTINGS)(
            req(DatasetType.HTTP, "http://direct.invalid/via-proxy.bin"), Credentials()
        )
    finally:
        monkeypatch.delenv("HTTP_PROXY")
        web.env_proxies.cache_clear()
    assert isinstance(proxied, CatalogEntry) and proxied.bytes == 7
    assert [s.path for s in file_server.requests("via-proxy")] == [
        "http://weights.invalid/via-proxy.bin"
    ]
    assert isinstance(direct, Unavailable) and direct.reason == UnavailableReason.UNREACHABLE


@pytest.mark.parametrize(
    ("fault", "reason", "retry"),
    [
        (Fault(502), UnavailableReason.SERVER_ERROR, None),
        (Fault(429, {"Retry-After": "7"}), UnavailableReason.RATE_LIMITED, 7.0),
        (Fault(200, delay=4.5), UnavailableReason.TIMEOUT, None),
    ],
)
async def test_modelscope_failures(
    modelscope_server: ModelScopeServer,
    ms_repos: None,
    fault: Fault,
    reason: UnavailableReason,
    retry: float | None,
) -> None:
    modelscope_server.fail(fault)
    result = await ms(modelscope_server)(
        req(DatasetType.MODEL_SCOPE, "modelscope://mstest/tiny"), Credentials()
    )
    assert isinstance(result, Unavailable) and result.reason == reason, result
    assert result.retry_after == retry


async def test_modelscope_datasets_are_not_looked_up() -> None:
    result = await ModelScopeLookup(SETTINGS)(
        req(DatasetType.MODEL_SCOPE, "modelscope://a/b", repoType="DATASET"), Credentials()
    )
    assert isinstance(result, NotApplicable)


# -------------------------------------------------------------------------------------- S3

S3_KEYS = {"access-key": ACCESS_KEY, "secret-key": SECRET_KEY}


def s3_request(server: S3Server, path: str) -> CatalogRequest:
    return req(DatasetType.S3, f"s3://{path}", provider="MINIO", endpoint=server.url)


async def test_s3_lists_the_prefix(s3_server: S3Server) -> None:
    s3_server.put(
        "catalog-s3",
        {"qwen/a.safetensors": b"x" * 100, "qwen/sub/b.json": b"{}", "qwen2/c": b"no"},
    )
    lookup = S3Lookup(SETTINGS)
    result = await lookup(s3_request(s3_server, "catalog-s3/qwen"), Credentials(S3_KEYS))
    assert isinstance(result, CatalogEntry)
    assert (result.revision, result.files, result.bytes) == (None, 2, 102)
    same = await lookup(s3_request(s3_server, "catalog-s3/qwen/"), Credentials(S3_KEYS))
    assert isinstance(same, CatalogEntry) and same.fingerprint == result.fingerprint
    s3_server.put("catalog-s3", {"qwen/a.safetensors": b"y" * 100})
    changed = await lookup(s3_request(s3_server, "catalog-s3/qwen"), Credentials(S3_KEYS))
    assert isinstance(changed, CatalogEntry) and changed.fingerprint != result.fingerprint


async def test_s3_paginates(s3_server: S3Server, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("modelfs.pkg.catalog.s3.MAX_KEYS", 2)
    s3_server.put("catalog-pages", {f"m/{i}": b"z" for i in range(5)})
    result = await S3Lookup(SETTINGS)(
        s3_request(s3_server, "catalog-pages/m"), Credentials(S3_KEYS)
    )
    assert isinstance(result, CatalogEntry) and result.files == 5


@pytest.mark.parametrize("path", ["catalog-s3/nothing-here", "no-such-bucket-x/m"])
async def test_s3_an_empty_prefix_or_no_bucket_is_refused(s3_server: S3Server, path: str) -> None:
    s3_server.put("catalog-s3", {"qwen/a": b"1"})
    result = await S3Lookup(SETTINGS)(s3_request(s3_server, path), Credentials(S3_KEYS))
    assert isinstance(result, Refusal) and result.reason == RefusalReason.SOURCE_OBJECT_NOT_FOUND


async def test_s3_unreachable_and_keys_never_printed(
    stopped_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger="modelfs")
    request = req(DatasetType.S3, "s3://bkt/m", provider="MINIO", endpoint=stopped_url)
    result = await S3Lookup(SETTINGS)(
        request, Credentials({"access-key": "AKIA" + CANARY, "secret-key": CANARY})
    )
    assert isinstance(result, Unavailable) and result.reason == UnavailableReason.UNREACHABLE
    assert CANARY not in repr(result) and CANARY not in caplog.text


# ------------------------------------------------------------------------------------ HTTP


async def test_http_head_gives_size_and_etag(file_server: FileServer) -> None:
    file_server.files["/w/model.bin"] = b"m" * 321
    result = await HttpLookup(SETTINGS)(
        req(DatasetType.HTTP, f"{file_server.url}/w/model.bin"), Credentials()
    )
    assert isinstance(result, CatalogEntry)
    assert (result.files, result.bytes) == (1, 321)
    assert result.revision == FileServer.etag(b"m" * 321)
    index = await HttpLookup(SETTINGS)(
        req(DatasetType.HTTP, f"{file_server.url}/w/"), Credentials()
    )
    assert isinstance(index, CatalogEntry) and index.files is None and index.bytes is None


async def test_http_404_is_refused(file_server: FileServer) -> None:
    result = await HttpLookup(SETTINGS)(
        req(DatasetType.HTTP, f"{file_server.url}/missing.bin"), Credentials()
    )
    assert isinstance(result, Refusal) and result.reason == RefusalReason.SOURCE_OBJECT_NOT_FOUND


@pytest.mark.parametrize(
    ("fault", "reason", "retry"),
    [
        (Fault(500), UnavailableReason.SERVER_ERROR, None),
        (Fault(429, {"Retry-After": "5"}), UnavailableReason.RATE_LIMITED, 5.0),
        (Fault(200, delay=4.5), UnavailableReason.TIMEOUT, None),
    ],
)
async def test_http_failures(
    file_server: FileServer, fault: Fault, reason: UnavailableReason, retry: float | None
) -> None:
    file_server.files["/f"] = b"1"
    file_server.fail(fault)
    result = await HttpLookup(SETTINGS)(
        req(DatasetType.HTTP, f"{file_server.url}/f"), Credentials()
    )
    assert isinstance(result, Unavailable) and result.reason == reason
    assert result.retry_after == retry


async def test_http_basic_auth_goes_to_the_source_s_host_only(
    file_server: FileServer, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    with FileServer({"/elsewhere.bin": b"e" * 9}) as other:
        file_server.users["u"] = CANARY
        file_server.files["/p.bin"] = b"p" * 4
        file_server.redirects["/moved.bin"] = f"{other.url}/elsewhere.bin"
        creds = Credentials({"username": "u", "password": CANARY})
        direct = await HttpLookup(SETTINGS)(
            req(DatasetType.HTTP, f"{file_server.url}/p.bin"), creds
        )
        moved = await HttpLookup(SETTINGS)(
            req(DatasetType.HTTP, f"{file_server.url}/moved.bin"), creds
        )
        assert isinstance(direct, CatalogEntry) and direct.bytes == 4
        assert isinstance(moved, CatalogEntry) and moved.bytes == 9
        sent = base64.b64encode(f"u:{CANARY}".encode()).decode()
        assert file_server.requests("/p.bin")[0].headers.get("Authorization") == f"Basic {sent}"
        assert [s.headers.get("Authorization") for s in other.requests()] == [None]
    for result in (direct, moved):
        assert CANARY not in repr(result)
    assert CANARY not in caplog.text


# ------------------------------------------------------------------------------------- Git


@pytest.fixture(scope="module")
def git_repo(git_root: Path) -> Path:
    bare = make_repo(git_root, "weights", {"README.md": "w"}, branch="main")
    commit(bare, {"v.txt": "2"}, branch="release", tag="v2")
    return bare


def git_req(server: GitServer, name: str = "weights.git", **options: str) -> CatalogRequest:
    return req(DatasetType.GIT, f"{server.url}/{name}", **options)


def rev_parse(bare: Path, ref: str) -> str:
    done = subprocess.run(
        ["git", "--git-dir", str(bare), "rev-parse", ref],
        capture_output=True,
        text=True,
        check=True,
    )
    return done.stdout.strip()


def test_git_the_local_server_is_real(
    git_server: GitServer, git_repo: Path, tmp_path: Path
) -> None:
    done = subprocess.run(
        ["git", "ls-remote", f"{git_server.url}/weights.git"], capture_output=True, text=True
    )
    assert done.returncode == 0 and "refs/heads/release" in done.stdout
    clone = subprocess.run(
        [
            "git",
            "clone",
            "-q",
            "-b",
            "release",
            f"{git_server.url}/weights.git",
            str(tmp_path / "c"),
        ],
        capture_output=True,
        text=True,
    )
    assert clone.returncode == 0 and (tmp_path / "c" / "v.txt").read_text() == "2"


async def test_git_branches_tags_and_commits(git_server: GitServer, git_repo: Path) -> None:
    lookup = GitLookup(SETTINGS)
    head = await lookup(git_req(git_server), Credentials())
    assert isinstance(head, CatalogEntry) and head.revision == rev_parse(git_repo, "main")
    release = await lookup(git_req(git_server, branch="release"), Credentials())
    assert isinstance(release, CatalogEntry) and release.revision == rev_parse(git_repo, "release")
    tag = await lookup(git_req(git_server, branch="v2"), Credentials())
    assert isinstance(tag, CatalogEntry) and tag.revision == release.revision
    short = await lookup(git_req(git_server, commit=(release.revision or "")[:10]), Credentials())
    assert isinstance(short, CatalogEntry) and short.revision == release.revision
    unknown = await lookup(git_req(git_server, commit="ab" * 20), Credentials())
    assert isinstance(unknown, CatalogEntry) and unknown.revision == "ab" * 20
    before = head.fingerprint
    commit(git_repo, {"new.txt": "3"}, branch="main")
    after = await lookup(git_req(git_server), Credentials())
    assert isinstance(after, CatalogEntry) and after.fingerprint != before


async def test_git_refusals(git_server: GitServer, git_repo: Path) -> None:
    lookup = GitLookup(SETTINGS)
    branch = await lookup(git_req(git_server, branch="nope"), Credentials())
    assert isinstance(branch, Refusal) and branch.reason == RefusalReason.REF_NOT_FOUND
    assert "main" in branch.message and "release" in branch.message
    missing = await lookup(git_req(git_server, "missing.git"), Credentials())
    assert isinstance(missing, Refusal) and missing.reason == RefusalReason.REPO_NOT_FOUND


async def test_git_token_is_sent_as_the_loader_does_and_never_printed(
    git_server: GitServer, git_repo: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    git_server.users["oauth2"] = CANARY
    ok = await GitLookup(SETTINGS)(git_req(git_server), Credentials({"token": CANARY}))
    assert isinstance(ok, CatalogEntry)
    refused = await GitLookup(SETTINGS)(
        git_req(git_server), Credentials({"token": "wrong-" + CANARY})
    )
    assert isinstance(refused, Refusal)
    for result in (ok, refused):
        assert CANARY not in repr(result)
    assert CANARY not in caplog.text


async def test_git_unreachable_and_not_git(stopped_url: str, file_server: FileServer) -> None:
    down = await GitLookup(SETTINGS)(req(DatasetType.GIT, f"{stopped_url}/x.git"), Credentials())
    assert isinstance(down, Unavailable) and down.reason == UnavailableReason.UNREACHABLE
    file_server.files["/x.git/info/refs"] = b"not pkt lines"
    odd = await GitLookup(SETTINGS)(req(DatasetType.GIT, f"{file_server.url}/x.git"), Credentials())
    assert isinstance(odd, Unavailable) and odd.reason == UnavailableReason.SERVER_ERROR
