"""The catalog on the operator's side: lookups run in the background, their answers kept where
the ModelSync's observe reads them.

A reconcile never waits on the network: when the ModelSync's `catalog` step needs an answer it
does not have, `act` starts the lookup (`Catalog.start`) and the reconcile ends; when the answer
comes, every ModelSync that waits for it is put back on the queue (`Catalog.wake`), and its next
reconcile reads the answer (`Catalog.answers`) in a pure decide. Lookups of the same request
(source type, URI, options, namespace) with the same Secret share one request and one answer:
a Model with 50 versions on one revision costs one lookup.

Credentials: the values of the ModelSource's Secret are read only when a lookup starts, handed
to the lookup as `Credentials` (which never print) and dropped with it; they are in no answer,
no log line, no Event, no status.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Literal

from modelfs.api.v1 import CatalogStatus
from modelfs.api.v1.rules import quantity_bytes
from modelfs.controllers import metrics
from modelfs.pkg.catalog.types import (
    CatalogEntry,
    CatalogRequest,
    Credentials,
    Lookup,
    LookupResult,
    Refusal,
    RefusalReason,
    Unavailable,
    UnavailableReason,
)
from modelfs.pkg.dataset import Resolution
from modelfs.pkg.dataset.types import DatasetType

logger = logging.getLogger("modelfs.catalog")

Key = tuple[str, str]
SecretRef = tuple[str, str] | None
"""(namespace, name) of the Secret whose values the lookup sends, or None."""
AnswerKey = tuple[CatalogRequest, SecretRef]
"""An answer holds for one request asked with one Secret: a repository gated for one
ModelSource's token may be open to another's."""

LOOKUP_SECONDS = 12.0
"""A lookup that has not answered by then answers CatalogTimeout: a backstop, the lookups keep
to 10 s themselves (`pkg.catalog.net.TIMEOUT`) and say which request timed out."""
ANSWER_SECONDS = 60.0
"""How long an answer serves the decisions of the ModelSyncs that read it: the next download
that needs one after that asks again (a repository made public, a new commit)."""
UNAVAILABLE_SECONDS = 15.0
"""How long a catalog that could not be asked is left alone (a Retry-After overrides it)."""
MAX_ANSWERS = 4096

SecretReader = Callable[[str, str], Awaitable[Mapping[str, str] | None]]
ClaimReader = Callable[[str, str], Awaitable[bool]]


@dataclass(frozen=True)
class Answer:
    result: LookupResult
    at: datetime
    """When the lookup answered."""
    expires: datetime
    """Until when it serves decisions."""


@dataclass(frozen=True)
class CatalogVerdict:
    """The Catalog condition: True (found, nothing to look up, a skipped tick), False (a
    refusal) or Unknown (the catalog could not be asked, or lookups are off)."""

    status: Literal["True", "False", "Unknown"]
    reason: str
    message: str


# ----------------------------------------------------------------------------- pure helpers


def request_of(resolution: Resolution, namespace: str) -> CatalogRequest:
    """The lookup of exactly what the loader will be given: the resolved Dataset source."""
    source = resolution.dataset.spec.source
    return CatalogRequest.of(DatasetType(source.type), source.uri, source.options, namespace)


def answer_key(resolution: Resolution, namespace: str, secret_name: str | None) -> AnswerKey:
    """The key of the answer for `resolution`: the lookup and the Secret it is made with."""
    secret = (namespace, secret_name) if secret_name else None
    return request_of(resolution, namespace), secret


def human_size(count: int) -> str:
    """Bytes for people, in binary units as PVC sizes are written, with no space, so a list of
    them (`kubectl get mdl -o wide`) splits into one per version: 4.3GiB."""
    value = float(count)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if value < 1024 or unit == "TiB":
            return f"{count}B" if unit == "B" else f"{value:.1f}{unit}"
        value /= 1024
    raise AssertionError("unreachable")


def storage_of(resolution: Resolution) -> str | None:
    """The storage the version's PVC asks for, as written (`200Gi`), or None when unset (the
    Dataset operator's default then applies)."""
    template = resolution.dataset.spec.volume_claim_template or {}
    requests = ((template.get("spec") or {}).get("resources") or {}).get("requests") or {}
    size = requests.get("storage")
    return str(size) if size else None


def storage_refusal(entry: CatalogEntry, resolution: Resolution) -> Refusal | None:
    """InsufficientStorage when the files' total exceeds the version's storage size."""
    size = storage_of(resolution)
    if size is None or entry.bytes is None:
        return None
    try:
        limit = quantity_bytes(size)
    except ValueError:
        return None  # the resolution's own checks name a bad size
    if entry.bytes <= limit:
        return None
    return Refusal(
        RefusalReason.INSUFFICIENT_STORAGE,
        f"the files to download total {human_size(entry.bytes)} ({entry.bytes} bytes), more "
        f"than the version's storage of {size} ({int(limit)} bytes); raise storage.size of the "
        "Model or of the version",
    )


def short(revision: str) -> str:
    return revision[:12] if len(revision) == 40 and revision.isalnum() else revision


def summary(entry: CatalogEntry | CatalogStatus) -> str:
    """`revision 1a2b3c4d5e6f (12 files, 4.3 GiB)`, with what is known."""
    parts = []
    if entry.files is not None:
        parts.append(f"{entry.files} file{'' if entry.files == 1 else 's'}")
    if entry.bytes is not None:
        parts.append(human_size(entry.bytes))
    counted = f" ({', '.join(parts)})" if parts else ""
    if entry.revision:
        return f"revision {short(entry.revision)}{counted}"
    return f"the source{counted}" if counted else "the source (size unknown)"


def entry_status(entry: CatalogEntry, at: datetime) -> CatalogStatus:
    return CatalogStatus(
        revision=entry.revision,
        files=entry.files,
        bytes=entry.bytes,
        size=human_size(entry.bytes) if entry.bytes is not None else None,
        parameters=entry.parameters,
        architecture=entry.architecture,
        license=entry.license,
        gated=entry.gated,
        fingerprint=entry.fingerprint,
        looked_up_at=at.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
    )


def unavailable_reason(result: Unavailable) -> str:
    return str(result.reason)


# ----------------------------------------------------------------------------- lookups


@dataclass
class ClaimLookup:
    """PVC: the claim exists in the ModelSync's namespace (asked of the API server)."""

    exists: ClaimReader

    async def __call__(self, request: CatalogRequest, credentials: Credentials) -> LookupResult:
        claim = request.uri.removeprefix("pvc://").split("/", 1)[0]
        try:
            found = await self.exists(request.namespace, claim)
        except Exception as error:  # the API server's failure: a lookup never raises
            return Unavailable(
                UnavailableReason.UNREACHABLE,
                f"could not ask the API server for PersistentVolumeClaim {claim!r}: "
                f"{type(error).__name__}",
            )
        if not found:
            return Refusal(
                RefusalReason.SOURCE_OBJECT_NOT_FOUND,
                f"PersistentVolumeClaim {claim!r} does not exist in namespace "
                f"{request.namespace!r}",
            )
        return CatalogEntry(revision=None, files=None, bytes=None, fingerprint=f"pvc:{claim}")


# ----------------------------------------------------------------------------- the service


@dataclass
class Catalog:
    """The lookups in flight and their answers, for the ModelSyncs' reconciles."""

    lookup: Lookup
    read_secret: SecretReader
    lookup_seconds: float = LOOKUP_SECONDS
    answer_seconds: float = ANSWER_SECONDS
    unavailable_seconds: float = UNAVAILABLE_SECONDS
    wake: Callable[[Key], None] | None = None
    """Puts a ModelSync key back on its queue (set by the operator)."""
    forget: Callable[[CatalogRequest], None] | None = None
    """Drops what the lookup itself cached of a request: an answer asked again (it expired
    here) is asked of the catalog, not of a cache that outlives this one."""
    closing: Callable[[], None] | None = None
    """Stops what the lookup runs on (its own loop), once the lookups in flight are cancelled."""
    answers: OrderedDict[AnswerKey, Answer] = field(default_factory=OrderedDict)
    inflight: dict[AnswerKey, asyncio.Task[None]] = field(default_factory=dict)
    waiters: dict[AnswerKey, set[Key]] = field(default_factory=dict)
    lookups: int = 0
    """Lookups made (requests to a catalog, one per distinct request and Secret)."""
    served: int = 0
    """ModelSync reconciles that waited for a lookup another one had started (shared)."""

    def start(self, key: AnswerKey, waiter: Key, *, newer_than: datetime | None = None) -> None:
        """Ask for `key` in the background, unless already asked; `waiter` is enqueued when
        the answer comes (at once, if one is there, fresh and newer than `newer_than`)."""
        found = self.answers.get(key)
        now = datetime.now(UTC)
        if (
            found is not None
            and found.expires > now
            and (newer_than is None or found.at.replace(microsecond=0) > newer_than)
        ):
            self._wake(waiter)
            return
        self.waiters.setdefault(key, set()).add(waiter)
        if key in self.inflight:
            self.served += 1
            metrics.CATALOG_SHARED.inc()
            return
        self.lookups += 1
        if found is not None and self.forget is not None:
            self.forget(key[0])
        task = asyncio.get_running_loop().create_task(self._ask(key))
        self.inflight[key] = task

    async def _ask(self, key: AnswerKey) -> None:
        request, secret = key
        try:
            async with asyncio.timeout(self.lookup_seconds):  # a cancel is never swallowed
                result = await self._lookup(request, secret)
        except TimeoutError:
            result = Unavailable(
                UnavailableReason.TIMEOUT,
                f"the catalog did not answer within {self.lookup_seconds:g}s",
            )
        except Exception as error:  # a lookup that raises is a bug, not a refusal
            # The type only: an exception's text may quote what the lookup sent.
            logger.warning(
                "Catalog lookup raised",
                extra={
                    "type": str(request.type),
                    "uri": request.uri,
                    "error": type(error).__name__,
                },
            )
            result = Unavailable(
                UnavailableReason.UNREACHABLE, f"lookup failed: {type(error).__name__}"
            )
        finally:
            self.inflight.pop(key, None)
        now = datetime.now(UTC)
        keep = self.answer_seconds
        if isinstance(result, Unavailable):
            keep = self.unavailable_seconds if result.retry_after is None else result.retry_after
        metrics.CATALOG_LOOKUPS.labels(answer=type(result).__name__).inc()
        self.answers[key] = Answer(result, now, now + timedelta(seconds=keep))
        self.answers.move_to_end(key)
        while len(self.answers) > MAX_ANSWERS:
            self.answers.popitem(last=False)
        logger.debug(
            "Looked up catalog",
            extra={"type": str(request.type), "uri": request.uri, "answer": type(result).__name__},
        )
        for waiter in self.waiters.pop(key, set()):
            self._wake(waiter)

    async def _lookup(self, request: CatalogRequest, secret: SecretRef) -> LookupResult:
        values: Mapping[str, str] = {}
        if secret is not None:
            values = await self.read_secret(*secret) or {}
        return await self.lookup(request, Credentials(dict(values)))

    def _wake(self, waiter: Key) -> None:
        if self.wake is not None:
            self.wake(waiter)

    async def close(self) -> None:
        tasks = list(self.inflight.values())
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        if self.closing is not None:
            await asyncio.to_thread(self.closing)
