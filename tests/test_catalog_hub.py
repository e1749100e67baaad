"""The Hub lookup against the local Hub, and the local Hub proven faithful with the official
huggingface_hub client (the same calls and error classes as against huggingface.co)."""

from __future__ import annotations

import logging
import time

import pytest
from huggingface_hub import HfApi
from huggingface_hub.errors import GatedRepoError, RepositoryNotFoundError, RevisionNotFoundError

from modelfs.pkg.catalog.hub import HubLookup
from modelfs.pkg.catalog.net import NetSettings
from modelfs.pkg.catalog.types import (
    CatalogEntry,
    CatalogRequest,
    Credentials,
    Refusal,
    RefusalReason,
    Unavailable,
    UnavailableReason,
)
from modelfs.pkg.dataset.types import DatasetType
from modelfs.testing.catalog.base import Fault
from modelfs.testing.catalog.hub import CATALOG_TOKEN, Catalog, HubServer, Repo

CANARY = "hf_CANARY_never_printed_0123456789"
FILES = {
    "config.json": 700,
    "model-00001-of-00002.safetensors": 4_000_000,
    "model-00002-of-00002.safetensors": 3_000_000,
    "pytorch_model.bin": 9_000_000,
    "tokenizer/tokenizer.json": 2_000,
    "README.md": 100,
}


@pytest.fixture(scope="module")
def repos(hub_catalog: Catalog) -> dict[str, Repo]:
    made = {
        "tiny": Repo(
            "hubtest/tiny",
            dict(FILES),
            parameters=3_500_000,
            architecture="Qwen2ForCausalLM",
            license="apache-2.0",
        ),
        "gated": Repo(
            "hubtest/gated", {"config.json": 10}, gated="manual", tokens=frozenset({CATALOG_TOKEN})
        ),
        "private": Repo(
            "hubtest/private", {"a.bin": 5}, private=True, tokens=frozenset({CATALOG_TOKEN})
        ),
        "data": Repo("hubtest/data", {"train.parquet": 1234}, repo_type="dataset"),
    }
    for repo in made.values():
        hub_catalog.add(repo)
    return made


def request(uri: str, **options: str) -> CatalogRequest:
    return CatalogRequest.of(DatasetType.HUGGING_FACE, f"huggingface://{uri}", options)


def lookup(hub: HubServer, timeout: float = 5.0) -> HubLookup:
    return HubLookup(NetSettings(hub_endpoint=hub.url, timeout=timeout))


# ------------------------------------------------------------------ the local Hub is faithful


def test_huggingface_hub_reads_the_local_hub_as_it_reads_the_hub(
    hub_server: HubServer, repos: dict[str, Repo]
) -> None:
    api = HfApi(endpoint=hub_server.url, token=False)
    info = api.model_info("hubtest/tiny", files_metadata=True)
    assert info.sha == repos["tiny"].snapshot(None).sha  # type: ignore[union-attr]
    assert {s.rfilename: s.size for s in info.siblings or []} == FILES
    lfs = {s.rfilename for s in info.siblings or [] if s.lfs is not None}
    assert lfs == {p for p in FILES if p.endswith((".safetensors", ".bin"))}
    assert info.safetensors is not None and info.safetensors.total == 3_500_000
    assert info.config == {"architectures": ["Qwen2ForCausalLM"]}
    assert info.card_data is not None and info.card_data.get("license") == "apache-2.0"
    assert info.gated is False
    by_revision = api.model_info("hubtest/tiny", revision="main")
    assert by_revision.sha == info.sha
    assert api.dataset_info("hubtest/data", files_metadata=True).siblings is not None


def test_huggingface_hub_follows_the_link_pages_of_a_tree(
    hub_catalog: Catalog, repos: dict[str, Repo]
) -> None:
    with HubServer(hub_catalog, page_size=2) as hub:
        api = HfApi(endpoint=hub.url, token=False)
        tree = list(api.list_repo_tree("hubtest/tiny", recursive=True))
        pages = hub.requests("/tree/")
    assert {t.path for t in tree} == set(FILES) | {"tokenizer"}
    assert len(pages) == 4  # 7 entries, 2 a page, each next page from the Link header
    assert all("cursor=" in p.path for p in pages[1:])
    shallow = {t.path for t in HfApi(endpoint=hub.url, token=False).list_repo_tree("hubtest/tiny")}
    assert "tokenizer/tokenizer.json" not in shallow


def test_huggingface_hub_raises_its_own_errors_on_the_local_hub(
    hub_server: HubServer, repos: dict[str, Repo]
) -> None:
    anonymous = HfApi(endpoint=hub_server.url, token=False)
    with pytest.raises(RepositoryNotFoundError):
        anonymous.model_info("hubtest/missing")
    with pytest.raises(RepositoryNotFoundError):
        anonymous.model_info("hubtest/private")
    with pytest.raises(RevisionNotFoundError):
        anonymous.model_info("hubtest/tiny", revision="no-such-branch")
    with pytest.raises(GatedRepoError):
        anonymous.auth_check("hubtest/gated")
    with pytest.raises(GatedRepoError):
        anonymous.hf_hub_download("hubtest/gated", "config.json")
    allowed = HfApi(endpoint=hub_server.url, token=CATALOG_TOKEN)
    allowed.auth_check("hubtest/gated")
    assert allowed.model_info("hubtest/private").id == "hubtest/private"


# ------------------------------------------------------------------------------ the lookup


async def test_a_repository_s_figures_after_the_loader_s_filter(
    hub_server: HubServer, repos: dict[str, Repo]
) -> None:
    everything = await lookup(hub_server)(request("hubtest/tiny"), Credentials())
    assert isinstance(everything, CatalogEntry)
    assert everything.revision == repos["tiny"].snapshot(None).sha  # type: ignore[union-attr]
    assert (everything.files, everything.bytes) == (6, sum(FILES.values()))
    assert (everything.parameters, everything.architecture) == (3_500_000, "Qwen2ForCausalLM")
    assert (everything.license, everything.gated) == ("apache-2.0", False)

    safetensors = await lookup(hub_server)(
        request("hubtest/tiny", include="*.safetensors"), Credentials()
    )
    assert isinstance(safetensors, CatalogEntry)
    assert (safetensors.files, safetensors.bytes) == (2, 7_000_000)
    no_bin = await lookup(hub_server)(request("hubtest/tiny", exclude="*.bin"), Credentials())
    assert isinstance(no_bin, CatalogEntry) and no_bin.files == 5
    folder = await lookup(hub_server)(request("hubtest/tiny", include="tokenizer/"), Credentials())
    assert isinstance(folder, CatalogEntry) and folder.bytes == 2_000
    assert len({everything.fingerprint, safetensors.fingerprint, no_bin.fingerprint}) == 3
    data = await lookup(hub_server)(request("hubtest/data", repoType="DATASET"), Credentials())
    assert isinstance(data, CatalogEntry) and data.bytes == 1234


async def test_a_new_commit_changes_the_fingerprint(
    hub_server: HubServer, hub_catalog: Catalog
) -> None:
    repo = hub_catalog.add(Repo("hubtest/moving", {"a.safetensors": 10, "b.json": 1}))
    first = await lookup(hub_server)(request("hubtest/moving", include="*.json"), Credentials())
    again = await lookup(hub_server)(request("hubtest/moving", include="*.json"), Credentials())
    repo.push({"a.safetensors": 11, "b.json": 1})
    moved = await lookup(hub_server)(request("hubtest/moving", include="*.json"), Credentials())
    assert isinstance(first, CatalogEntry) and isinstance(moved, CatalogEntry)
    assert first == again
    assert moved.revision != first.revision and moved.fingerprint != first.fingerprint


async def test_an_endpoint_option_wins_over_the_default(
    hub_server: HubServer, repos: dict[str, Repo], stopped_url: str
) -> None:
    hub = HubLookup(NetSettings(hub_endpoint=stopped_url, timeout=3))
    result = await hub(request("hubtest/tiny", endpoint=hub_server.url), Credentials())
    assert isinstance(result, CatalogEntry)


@pytest.mark.parametrize(
    ("uri", "options", "token", "reason", "words"),
    [
        ("hubtest/missing", {}, None, RefusalReason.REPO_NOT_FOUND, "does not exist"),
        ("hubtest/private", {}, None, RefusalReason.REPO_NOT_FOUND, "no token is set"),
        ("hubtest/gated", {}, None, RefusalReason.GATED_REPO, "no token is set"),
        ("hubtest/tiny", {}, CANARY, RefusalReason.GATED_REPO, "refused the token"),
        (
            "hubtest/tiny",
            {"include": "*.gguf"},
            None,
            RefusalReason.NO_FILES_MATCHED,
            "include '*.gguf' match no file",
        ),
    ],
)
async def test_refusals(
    hub_server: HubServer,
    repos: dict[str, Repo],
    uri: str,
    options: dict[str, str],
    token: str | None,
    reason: RefusalReason,
    words: str,
) -> None:
    credentials = Credentials({"token": token} if token else {})
    result = await lookup(hub_server)(request(uri, **options), credentials)
    assert isinstance(result, Refusal), result
    assert result.reason == reason and words in result.message
    assert CANARY not in repr(result)


async def test_no_files_matched_names_up_to_five_files(
    hub_server: HubServer, repos: dict[str, Repo]
) -> None:
    result = await lookup(hub_server)(
        request("hubtest/tiny", include="*.gguf", exclude="*.md"), Credentials()
    )
    assert isinstance(result, Refusal)
    assert "include '*.gguf' and exclude '*.md'" in result.message
    assert "6 files: README.md, config.json, model-00001-of-00002.safetensors" in result.message
    assert "and 1 more" in result.message


async def test_a_gated_repository_with_a_granted_token(
    hub_server: HubServer, repos: dict[str, Repo]
) -> None:
    result = await lookup(hub_server)(
        request("hubtest/gated"), Credentials({"token": CATALOG_TOKEN})
    )
    assert isinstance(result, CatalogEntry) and result.gated is True
    seen = hub_server.requests("hubtest/gated")
    assert seen and all(s.headers.get("authorization") == f"Bearer {CATALOG_TOKEN}" for s in seen)


async def test_a_token_the_hub_has_not_granted_is_refused_as_gated(
    hub_server: HubServer, hub_catalog: Catalog, repos: dict[str, Repo]
) -> None:
    hub_catalog.users["hf_other_user"] = "other"
    result = await lookup(hub_server)(
        request("hubtest/gated"), Credentials({"token": "hf_other_user"})
    )
    assert isinstance(result, Refusal) and result.reason == RefusalReason.GATED_REPO
    assert "has not been granted access" in result.message


@pytest.mark.parametrize(
    ("fault", "reason", "retry"),
    [
        (Fault(500), UnavailableReason.SERVER_ERROR, None),
        (Fault(503), UnavailableReason.SERVER_ERROR, None),
        (Fault(429, {"Retry-After": "42"}), UnavailableReason.RATE_LIMITED, 42.0),
        (Fault(200, {}, b"<html>proxy</html>"), UnavailableReason.SERVER_ERROR, None),
        # JSON, but not the Hub's: a list, and a file without its name.
        (Fault(200, {}, b"[]"), UnavailableReason.SERVER_ERROR, None),
        (
            Fault(200, {}, b'{"sha": "a", "siblings": [{"size": 1}]}'),
            UnavailableReason.SERVER_ERROR,
            None,
        ),
    ],
)
async def test_a_failing_hub_is_unavailable(
    hub_server: HubServer,
    repos: dict[str, Repo],
    fault: Fault,
    reason: UnavailableReason,
    retry: float | None,
) -> None:
    hub_server.fail(fault)
    result = await lookup(hub_server)(request("hubtest/tiny"), Credentials())
    assert isinstance(result, Unavailable), result
    assert result.reason == reason and result.retry_after == retry


async def test_a_hub_that_does_not_answer_in_time(
    hub_server: HubServer, repos: dict[str, Repo]
) -> None:
    hub_server.fail(Fault(200, delay=3.0))
    started = time.monotonic()
    result = await lookup(hub_server, timeout=1.0)(request("hubtest/tiny"), Credentials())
    assert isinstance(result, Unavailable) and result.reason == UnavailableReason.TIMEOUT
    assert time.monotonic() - started < 2.5


async def test_a_stopped_hub_is_unreachable(stopped_url: str) -> None:
    hub = HubLookup(NetSettings(hub_endpoint=stopped_url, timeout=3))
    result = await hub(request("hubtest/tiny"), Credentials({"token": CANARY}))
    assert isinstance(result, Unavailable) and result.reason == UnavailableReason.UNREACHABLE
    assert CANARY not in repr(result)


async def test_the_token_goes_to_the_source_s_endpoint_only_and_is_never_printed(
    hub_server: HubServer,
    hub_catalog: Catalog,
    repos: dict[str, Repo],
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    with HubServer(hub_catalog) as default_hub:
        hub = HubLookup(NetSettings(hub_endpoint=default_hub.url, timeout=3))
        results = [
            await hub(request(uri, endpoint=hub_server.url), Credentials({"token": CANARY}))
            for uri in ("hubtest/tiny", "hubtest/gated", "hubtest/missing")
        ]
        assert default_hub.requests() == []
    assert all(s.headers.get("authorization") == f"Bearer {CANARY}" for s in hub_server.seen)
    # A server that echoes the token back in its error body: still not in what the lookup says.
    hub_server.fail(Fault(500, {"X-Error-Message": CANARY}, CANARY.encode()))
    results.append(
        await lookup(hub_server)(request("hubtest/tiny"), Credentials({"token": CANARY}))
    )
    for result in results:
        assert CANARY not in repr(result) and CANARY not in str(result)
    # The client libraries log requests at DEBUG without their headers; only the server's
    # echo, logged by httpcore as a response header, may carry it.
    assert CANARY not in "".join(
        r.getMessage() for r in caplog.records if "X-Error-Message" not in r.getMessage()
    )
