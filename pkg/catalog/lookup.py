"""The one entry point: `Catalog.lookup(request, credentials) -> LookupResult`.

It picks the type's lookup, caches the answer per (request, credentials) with an expiry,
and makes concurrent identical lookups share one request. It never raises for what a catalog
does (the per-type lookups answer `Unavailable`), and returns within the time limit.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import time
from collections import OrderedDict
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

from modelfs.pkg.catalog.loop import OwnLoop
from modelfs.pkg.catalog.net import NetSettings
from modelfs.pkg.catalog.types import (
    CatalogEntry,
    CatalogRequest,
    Credentials,
    Lookup,
    LookupResult,
    NotApplicable,
    Refusal,
    Unavailable,
    UnavailableReason,
)
from modelfs.pkg.dataset.types import DatasetType

log = logging.getLogger(__name__)

FOUND_TTL = 600.0
"""Seconds an entry or a refusal is reused: 50 versions of one repository cost one request."""
UNAVAILABLE_TTL = 30.0
"""Seconds a failed lookup is reused (or the server's Retry-After, when longer)."""
MAX_ENTRIES = 4096

NOT_LOOKED_UP: Mapping[DatasetType, str] = {
    DatasetType.NFS: "NFS has no catalog: the export is mounted as it is",
    DatasetType.CONDA: "CONDA has no catalog: the environment is built by the loader",
    DatasetType.REFERENCE: "REFERENCE points at another Dataset, which is checked already",
}


def credentials_key(credentials: Credentials) -> str:
    """A digest of the credentials, for the cache key only: two Secrets with other values must
    not share an answer (one may read a private repository, the other not)."""
    digest = hashlib.sha256()
    for key, value in sorted(credentials.values.items()):
        digest.update(f"{key}\0{value}\0".encode())
    return digest.hexdigest()


def default_lookups(settings: NetSettings) -> dict[DatasetType, Lookup]:
    """One lookup per type with a catalog. Each module imports its client on first use."""
    from modelfs.pkg.catalog.git import GitLookup
    from modelfs.pkg.catalog.http import HttpLookup
    from modelfs.pkg.catalog.hub import HubLookup
    from modelfs.pkg.catalog.modelscope import ModelScopeLookup
    from modelfs.pkg.catalog.s3 import S3Lookup

    return {
        DatasetType.HUGGING_FACE: HubLookup(settings),
        DatasetType.MODEL_SCOPE: ModelScopeLookup(settings),
        DatasetType.S3: S3Lookup(settings),
        DatasetType.HTTP: HttpLookup(settings),
        DatasetType.GIT: GitLookup(settings),
    }


@dataclass
class Stats:
    requests: int = 0
    """Lookups sent to a catalog."""
    hits: int = 0
    """Answers from the cache."""
    shared: int = 0
    """Callers that waited on a lookup another caller had started."""


@dataclass
class _Cached:
    result: LookupResult
    expires: float


@dataclass
class Catalog:
    """The operator's one catalog: build it once (`Catalog(NetSettings(...))`) and share it.

    `lookups` replaces or adds per-type lookups (PVC is the cluster's: the ModelSync step
    passes its own). A type with no lookup answers NotApplicable. With `own_loop`, the
    built-in lookups (which go out of the cluster) run on that loop, the ones passed in on the
    caller's: `close` stops it.
    """

    settings: NetSettings = field(default_factory=NetSettings)
    lookups: dict[DatasetType, Lookup] = field(default_factory=dict)
    clock: Callable[[], float] = time.monotonic
    stats: Stats = field(default_factory=Stats)
    own_loop: OwnLoop | None = None
    _outside: set[DatasetType] = field(default_factory=set, repr=False)
    _cache: OrderedDict[tuple[CatalogRequest, str], _Cached] = field(
        default_factory=OrderedDict, repr=False
    )
    _flights: dict[tuple[CatalogRequest, str], asyncio.Future[LookupResult]] = field(
        default_factory=dict, repr=False
    )

    def __post_init__(self) -> None:
        built_in = default_lookups(self.settings)
        self._outside = set(built_in) - set(self.lookups)
        self.lookups = {**built_in, **self.lookups}

    def close(self) -> None:
        """Stop `own_loop`, cancelling the lookups on it and closing its connections."""
        if self.own_loop is not None:
            from modelfs.pkg.catalog.web import close_connectors

            self.own_loop.close(close_connectors)

    def cached(self, request: CatalogRequest, credentials: Credentials) -> LookupResult | None:
        """The cached answer, if one is still fresh (no I/O)."""
        key = (request, credentials_key(credentials))
        hit = self._cache.get(key)
        if hit is None or hit.expires <= self.clock():
            return None
        return hit.result

    def forget(self, request: CatalogRequest | None = None) -> None:
        """Drop cached answers (of one request, or all): `syncRound` asks afresh."""
        if request is None:
            self._cache.clear()
            return
        for key in [k for k in self._cache if k[0] == request]:
            del self._cache[key]

    async def lookup(self, request: CatalogRequest, credentials: Credentials) -> LookupResult:
        key = (request, credentials_key(credentials))
        hit = self.cached(request, credentials)
        if hit is not None:
            self.stats.hits += 1
            return hit
        flight = self._flights.get(key)
        if flight is not None:
            self.stats.shared += 1
        else:
            # A task of its own: a caller that is cancelled does not cancel the others' answer.
            flight = asyncio.ensure_future(self._ask(request, credentials))
            self._flights[key] = flight
            flight.add_done_callback(lambda done: self._landed(key, done))
        return await asyncio.shield(flight)

    def _landed(self, key: tuple[CatalogRequest, str], done: asyncio.Future[LookupResult]) -> None:
        self._flights.pop(key, None)
        if not done.cancelled() and done.exception() is None:
            self._store(key, done.result())

    async def _ask(self, request: CatalogRequest, credentials: Credentials) -> LookupResult:
        if request.type in NOT_LOOKED_UP:
            return NotApplicable(NOT_LOOKED_UP[request.type])
        lookup = self.lookups.get(request.type)
        if lookup is None:
            return NotApplicable(f"{request.type} sources have no catalog lookup")
        self.stats.requests += 1
        started = self.clock()
        try:
            async with asyncio.timeout(self.settings.timeout + 1):
                if self.own_loop is not None and request.type in self._outside:
                    result = await self.own_loop.run(lookup(request, credentials))
                else:
                    result = await lookup(request, credentials)
        except TimeoutError:
            result = Unavailable(
                UnavailableReason.TIMEOUT,
                f"the {request.type} catalog did not answer within {self.settings.timeout:g}s",
            )
        log.debug(
            "Looked up the catalog.",
            extra={
                "type": str(request.type),
                "uri": request.uri,
                "result": type(result).__name__,
                "seconds": round(self.clock() - started, 3),
            },
        )
        return result

    def _store(self, key: tuple[CatalogRequest, str], result: LookupResult) -> None:
        if isinstance(result, CatalogEntry | Refusal | NotApplicable):
            ttl = FOUND_TTL
        else:
            ttl = max(UNAVAILABLE_TTL, result.retry_after or 0.0)
        self._cache[key] = _Cached(result, self.clock() + ttl)
        self._cache.move_to_end(key)
        while len(self._cache) > MAX_ENTRIES:
            self._cache.popitem(last=False)
