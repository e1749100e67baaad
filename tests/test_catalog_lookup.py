"""The Catalog: dispatch by type, the cache and its expiry, single flight; and the pure parts
(pkt-lines, fingerprints, Retry-After, the loaders' filters) as properties."""

from __future__ import annotations

import asyncio
import fnmatch
import logging
import subprocess
import sys
import textwrap
import threading
import time

import pytest
from hypothesis import given
from hypothesis import strategies as st

from modelfs.pkg.catalog.lookup import FOUND_TTL, UNAVAILABLE_TTL, Catalog
from modelfs.pkg.catalog.loop import BLOCKING_AT_ONCE, OwnLoop, in_thread
from modelfs.pkg.catalog.modelscope import default_revision, select
from modelfs.pkg.catalog.net import NetSettings
from modelfs.pkg.catalog.pure import (
    RemoteFile,
    fingerprint,
    parse_ref_advertisement,
    pkt_line,
    pkt_lines,
    retry_after,
    total_bytes,
)
from modelfs.pkg.catalog.types import (
    CatalogEntry,
    CatalogRequest,
    Credentials,
    LookupResult,
    NotApplicable,
    Unavailable,
    UnavailableReason,
)
from modelfs.pkg.dataset.types import DatasetType
from modelfs.testing.catalog.hub import HubServer


class Counting:
    """A lookup that counts its calls and answers after `delay` seconds."""

    def __init__(self, result: LookupResult, delay: float = 0.05) -> None:
        self.calls = 0
        self.result = result
        self.delay = delay

    async def __call__(self, request: CatalogRequest, credentials: Credentials) -> LookupResult:
        self.calls += 1
        await asyncio.sleep(self.delay)
        return self.result


ENTRY = CatalogEntry("abc", 1, 2, "sha256:x")
REQUEST = CatalogRequest.of(DatasetType.HTTP, "http://h/f", {})


class Clock:
    now = 1000.0

    def __call__(self) -> float:
        return self.now


async def test_concurrent_identical_lookups_share_one_request_then_the_cache() -> None:
    counting = Counting(ENTRY)
    catalog = Catalog(lookups={DatasetType.HTTP: counting})
    results = await asyncio.gather(*(catalog.lookup(REQUEST, Credentials()) for _ in range(20)))
    assert results == [ENTRY] * 20 and counting.calls == 1
    assert catalog.stats.shared == 19
    await catalog.lookup(REQUEST, Credentials())
    assert counting.calls == 1 and catalog.stats.hits == 1


async def test_other_credentials_are_another_key() -> None:
    counting = Counting(ENTRY, delay=0)
    catalog = Catalog(lookups={DatasetType.HTTP: counting})
    await catalog.lookup(REQUEST, Credentials({"username": "a", "password": "1"}))
    await catalog.lookup(REQUEST, Credentials({"username": "a", "password": "2"}))
    assert counting.calls == 2


async def test_answers_expire_failures_sooner_and_retry_after_is_honoured() -> None:
    clock = Clock()
    found, failed = (
        Counting(ENTRY, 0),
        Counting(Unavailable(UnavailableReason.RATE_LIMITED, "slow down", retry_after=120), 0),
    )
    catalog = Catalog(lookups={DatasetType.HTTP: found, DatasetType.GIT: failed}, clock=clock)
    git = CatalogRequest.of(DatasetType.GIT, "http://h/r.git", {})
    await catalog.lookup(REQUEST, Credentials())
    await catalog.lookup(git, Credentials())
    clock.now += UNAVAILABLE_TTL + 1
    await catalog.lookup(REQUEST, Credentials())
    await catalog.lookup(git, Credentials())
    assert (found.calls, failed.calls) == (1, 1)  # Retry-After (120 s) outlasts 30 s
    clock.now += 120
    await catalog.lookup(git, Credentials())
    assert failed.calls == 2
    clock.now += FOUND_TTL
    await catalog.lookup(REQUEST, Credentials())
    assert found.calls == 2
    catalog.forget(REQUEST)
    await catalog.lookup(REQUEST, Credentials())
    assert found.calls == 3


async def test_a_cancelled_caller_does_not_cancel_the_others() -> None:
    counting = Counting(ENTRY, delay=0.2)
    catalog = Catalog(lookups={DatasetType.HTTP: counting})
    first = asyncio.ensure_future(catalog.lookup(REQUEST, Credentials()))
    await asyncio.sleep(0.05)
    second = asyncio.ensure_future(catalog.lookup(REQUEST, Credentials()))
    await asyncio.sleep(0.01)
    first.cancel()
    assert await second == ENTRY and counting.calls == 1


async def test_types_without_a_catalog_say_so() -> None:
    catalog = Catalog()
    for type_ in (DatasetType.NFS, DatasetType.CONDA, DatasetType.REFERENCE, DatasetType.PVC):
        result = await catalog.lookup(CatalogRequest.of(type_, "x://y", {}), Credentials())
        assert isinstance(result, NotApplicable) and result.message


async def test_a_lookup_past_the_limit_is_a_timeout() -> None:
    slow = Counting(ENTRY, delay=5)
    catalog = Catalog(NetSettings(timeout=0.2), lookups={DatasetType.HTTP: slow})
    result = await catalog.lookup(REQUEST, Credentials())
    assert isinstance(result, Unavailable) and result.reason == UnavailableReason.TIMEOUT


async def test_the_default_catalog_reaches_the_local_hub(hub_server: HubServer) -> None:
    from modelfs.testing.catalog.hub import Repo

    hub_server.catalog.add(Repo("lookuptest/m", {"a.safetensors": 5}))
    catalog = Catalog(NetSettings(hub_endpoint=hub_server.url, timeout=3))
    request = CatalogRequest.of(DatasetType.HUGGING_FACE, "huggingface://lookuptest/m", {})
    results = await asyncio.gather(*(catalog.lookup(request, Credentials()) for _ in range(5)))
    assert all(isinstance(r, CatalogEntry) and r.bytes == 5 for r in results)
    assert len(hub_server.requests("lookuptest/m")) == 1


# ----------------------------------------------------------------------- pure, as properties

OIDS = st.text("0123456789abcdef", min_size=40, max_size=40)
REF = st.from_regex(r"refs/(heads|tags)/[a-z0-9][a-z0-9._-]{0,20}", fullmatch=True)


@given(st.lists(st.binary(max_size=200), max_size=20))
def test_pkt_lines_round_trip(payloads: list[bytes]) -> None:
    data = b"".join(pkt_line(p) + (b"0000" if i % 3 == 0 else b"") for i, p in enumerate(payloads))
    parsed = [p for p in pkt_lines(data) if p is not None]
    assert parsed == payloads


@given(st.dictionaries(REF, OIDS, min_size=1, max_size=10), OIDS)
def test_ref_advertisement_round_trip(refs: dict[str, str], head: str) -> None:
    lines = [f"{head} HEAD\0multi_ack symref=HEAD:refs/heads/main\n".encode()]
    lines += [f"{oid} {name}\n".encode() for name, oid in sorted(refs.items())]
    data = pkt_line(b"# service=git-upload-pack\n") + b"0000" + b"".join(map(pkt_line, lines))
    parsed = parse_ref_advertisement(data + b"0000")
    assert parsed.refs == {"HEAD": head, **refs}
    assert parsed.head == "refs/heads/main"


FILES = st.lists(
    st.builds(
        RemoteFile,
        st.from_regex(r"[a-z]{1,5}(/[a-z]{1,5}){0,2}\.(bin|json|txt)", fullmatch=True),
        st.integers(0, 10**12),
        st.text("0123456789abcdef", max_size=8),
    ),
    max_size=15,
    unique_by=lambda f: f.path,
)


@given(FILES, st.randoms())
def test_fingerprint_ignores_order_and_sees_every_change(
    files: list[RemoteFile], rng: object
) -> None:
    shuffled = list(files)
    rng.shuffle(shuffled)  # type: ignore[attr-defined]
    assert fingerprint("r", files) == fingerprint("r", shuffled)
    assert fingerprint("r", files) != fingerprint("s", files)
    if files:
        bigger = [RemoteFile(files[0].path, (files[0].size or 0) + 1, files[0].digest), *files[1:]]
        assert fingerprint("r", bigger) != fingerprint("r", files)
        assert fingerprint("r", files[1:]) != fingerprint("r", files)
    assert total_bytes(files) == sum(f.size or 0 for f in files)


@given(st.integers(0, 10**6))
def test_retry_after_seconds(seconds: int) -> None:
    assert retry_after(str(seconds)) == seconds
    assert retry_after("Wed, 21 Oct 2015 07:28:00 GMT") == 0.0
    assert retry_after("soon") is None and retry_after(None) is None


@given(FILES, st.sampled_from(["*.bin", "*.json", "a*", "*/", "x/"]))
def test_modelscope_include_is_fnmatch_on_the_path(files: list[RemoteFile], pattern: str) -> None:
    listing = [{"Path": f.path, "Name": f.path.rsplit("/", 1)[-1], "Type": "blob"} for f in files]
    chosen = {str(f["Path"]) for f in select(listing, pattern, None)}
    glob = pattern + "*" if pattern.endswith("/") else pattern
    assert chosen == {f.path for f in files if fnmatch.fnmatch(f.path, glob)}


def test_modelscope_default_revision() -> None:
    master = {"Revision": "master", "CommitId": "m"}
    old, new = {"Revision": "v1", "CreatedAt": 1}, {"Revision": "v9", "CreatedAt": 4_000_000_000}
    assert default_revision([master], [new, old]) == old
    assert default_revision([master], [new]) == master
    assert default_revision([], []) is None


def test_building_the_catalog_loads_no_catalog_client() -> None:
    import subprocess
    import sys

    code = (
        "import sys; from modelfs.pkg.catalog.lookup import Catalog; Catalog(); "
        "print(sorted(m for m in ('botocore', 'huggingface_hub') if m in sys.modules))"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "[]"


# ----------------------------------------------------------------------------- its own loop


async def test_lookups_that_leave_the_cluster_run_on_the_catalog_s_own_loop() -> None:
    """Built-in lookups (Hub, S3, HTTP, Git, ModelScope) run on `OwnLoop`'s thread, so slow DNS
    or a hung server never holds the operator's loop or its thread pool; a lookup passed in
    (PVC: the API server's) runs on the caller's loop."""
    import threading

    seen: dict[str, str] = {}

    def recording(name: str) -> object:
        async def lookup(request: CatalogRequest, credentials: Credentials) -> LookupResult:
            seen[name] = threading.current_thread().name
            return ENTRY

        return lookup

    catalog = Catalog(lookups={DatasetType.PVC: recording("pvc")}, own_loop=OwnLoop("own"))  # type: ignore[dict-item]
    catalog.lookups[DatasetType.HTTP] = recording("http")  # type: ignore[assignment]
    try:
        pvc = CatalogRequest.of(DatasetType.PVC, "pvc://claim/dir", {}, "ns")
        assert await catalog.lookup(REQUEST, Credentials({})) == ENTRY
        assert await catalog.lookup(pvc, Credentials({})) == ENTRY
        assert seen == {"http": "own", "pvc": threading.current_thread().name}
    finally:
        catalog.close()


async def test_a_cancelled_caller_cancels_the_lookup_and_leftovers_are_no_error(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Cancelling the caller cancels the coroutine on the own loop; a task a lookup left behind
    that fails later (aiohttp's shared DNS resolution, say) is logged at DEBUG, never as an
    error; `close` stops the thread."""
    own = OwnLoop("own-test")
    started, cancelled = asyncio.Event(), []
    left: list[asyncio.Future[None]] = []
    loop = asyncio.get_running_loop()

    async def slow() -> None:
        loop.call_soon_threadsafe(started.set)
        try:
            await asyncio.sleep(30)
        except asyncio.CancelledError:
            cancelled.append(True)
            raise

    async def leaves_a_failure() -> None:
        async def fails() -> None:
            raise OSError("Name or service not known")

        left.append(asyncio.ensure_future(fails()))  # nobody awaits it
        await asyncio.sleep(0)
        left.clear()

    caplog.set_level("DEBUG")
    task = loop.create_task(own.run(slow()))
    await asyncio.wait_for(started.wait(), 5)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    await own.run(leaves_a_failure())
    await asyncio.sleep(0.1)
    import gc

    gc.collect()  # a never-retrieved exception is reported when its task is collected
    await asyncio.sleep(0.1)
    thread = own._thread
    own.close()
    assert cancelled == [True]
    assert thread is not None and not thread.is_alive()
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING], caplog.records


async def test_a_blocking_lookup_runs_on_a_thread_with_its_answer_or_its_error() -> None:
    """The Hub's and S3's synchronous clients run on threads, at most BLOCKING_AT_ONCE at a
    time; the caller gets the result or the exception."""
    running, most = 0, 0
    lock = threading.Lock()

    def work(value: int) -> int:
        nonlocal running, most
        with lock:
            running += 1
            most = max(most, running)
        time.sleep(0.05)
        with lock:
            running -= 1
        if value < 0:
            raise ValueError("negative")
        return value * 2

    assert await asyncio.gather(*(in_thread(work, k) for k in range(20))) == [
        k * 2 for k in range(20)
    ]
    assert most == BLOCKING_AT_ONCE
    with pytest.raises(ValueError, match="negative"):
        await in_thread(work, -1)


def test_a_blocking_lookup_given_up_on_does_not_hold_the_operator_s_exit() -> None:
    """A lookup whose timeout passed (or that a stopping operator cancelled) may still be
    blocked in its client: the process exits anyway, as a stopping pod must (with
    `asyncio.to_thread` the interpreter waited for the thread: the client's 10 s timeout)."""
    script = textwrap.dedent(
        """
        import asyncio, time
        from modelfs.pkg.catalog.loop import OwnLoop, in_thread

        async def main():
            own = OwnLoop()
            try:
                await asyncio.wait_for(own.run(in_thread(time.sleep, 30)), 0.2)
            except TimeoutError:
                pass
            own.close()

        asyncio.run(main())
        """
    )
    started = time.monotonic()
    done = subprocess.run([sys.executable, "-c", script], timeout=60, check=False)
    assert done.returncode == 0
    assert time.monotonic() - started < 10
