"""Leader election on a `coordination.k8s.io/v1` Lease, as controller-runtime's (client-go's
`leaderelection` with a `LeaseLock`): every replica lists, watches and indexes; only the holder
of the Lease runs the work queues and writes.

- `decide` is the rule, pure: given the Lease as read, when this replica last saw it change,
  the time now and whether (and when) this replica last renewed, it says acquire, renew, wait
  or lost. Time is this process's monotonic clock only: like client-go, a replica judges
  another's Lease expired by when IT saw the record last change, never by the timestamps in it,
  so clocks that disagree between nodes do not matter.
- `Elector` runs it: a candidate tries every `retry` seconds (and at once when the Lease
  changes, through a watch of that one Lease), a leader renews every `retry` seconds. A leader
  that has not renewed for `renew_deadline` seconds stops leading: its queues stop taking keys,
  the reconciles in flight are cancelled, and `Fence` refuses every write from that instant
  on, whatever is still running. Another replica can take the Lease only `lease_duration`
  seconds after it saw the last renew, which came after the leader sent it: the leader has
  stopped `lease_duration - renew_deadline` seconds before anyone else may start.
- On shutdown the leader releases the Lease (holder empty, duration 1 s, as controller-runtime's
  `ReleaseOnCancel`), so a standby takes over at once instead of after the Lease expires.
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import json
import logging
import math
import os
import socket
import time
import uuid
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote, urlencode

import aiohttp
from kubernetes.aio.client import ApiClient
from prometheus_client import Counter, Gauge

from modelfs.pkg.kube import TRANSIENT_ERRORS
from modelfs.pkg.kube.errors import ApiError, ConflictError, error_for
from modelfs.pkg.kube.rest import object_path, request

logger = logging.getLogger("modelfs.leader")

RETRIED: tuple[type[BaseException], ...] = (*TRANSIENT_ERRORS, TimeoutError)
"""What an attempt on the Lease can fail with and succeed at the next one."""
WATCH_ERRORS: tuple[type[BaseException], ...] = (*RETRIED, ValueError)

LEASE_GROUP = "coordination.k8s.io"
LEASE_NAME = "modelfs-operator"
"""The Lease's default name: `kubectl get lease -n modelfs-system modelfs-operator`."""

LEADER = Gauge(
    "modelfs_leader",
    "1 while this replica reconciles (it holds the leader Lease, or runs without election).",
)
TRANSITIONS = Counter(
    "modelfs_leader_transitions_total",
    "Times this replica became leader or stopped leading, by direction.",
    ["to"],
)


@dataclass(frozen=True)
class Timings:
    """controller-runtime's defaults: `LeaseDuration` 15 s, `RenewDeadline` 10 s,
    `RetryPeriod` 2 s."""

    lease_duration: float = 15.0
    """How long a standby waits, after it last saw the Lease change, before taking it."""
    renew_deadline: float = 10.0
    """How long the leader keeps trying to renew before it stops leading."""
    retry: float = 2.0
    """How often a candidate tries to acquire, and the leader to renew."""

    def __post_init__(self) -> None:
        if not 0 < self.retry < self.renew_deadline < self.lease_duration:
            raise ValueError(
                "leader election needs 0 < retry period < renew deadline < lease duration, got "
                f"{self.retry} / {self.renew_deadline} / {self.lease_duration}"
            )


@dataclass(frozen=True)
class Record:
    """The Lease's spec, as read (client-go's `LeaderElectionRecord`)."""

    holder: str = ""
    lease_seconds: int = 0
    acquire_time: str = ""
    renew_time: str = ""
    transitions: int = 0

    @classmethod
    def of(cls, lease: Mapping[str, Any]) -> Record:
        spec = lease.get("spec") or {}
        return cls(
            holder=str(spec.get("holderIdentity") or ""),
            lease_seconds=int(spec.get("leaseDurationSeconds") or 0),
            acquire_time=str(spec.get("acquireTime") or ""),
            renew_time=str(spec.get("renewTime") or ""),
            transitions=int(spec.get("leaseTransitions") or 0),
        )

    def spec(self) -> dict[str, Any]:
        spec: dict[str, Any] = {
            "holderIdentity": self.holder,
            "leaseDurationSeconds": self.lease_seconds,
            "leaseTransitions": self.transitions,
        }
        if self.acquire_time:
            spec["acquireTime"] = self.acquire_time
        if self.renew_time:
            spec["renewTime"] = self.renew_time
        return spec


class Decision(enum.Enum):
    ACQUIRE = "acquire"
    """Nobody holds the Lease (none, released, or expired): take it."""
    RENEW = "renew"
    """This replica holds it: write a new renew time."""
    WAIT = "wait"
    """Another replica holds it and it has not expired: stay a standby."""
    LOST = "lost"
    """This replica was leading and may not any more: stop every write now."""


def decide(
    record: Record | None,
    observed_at: float,
    now: float,
    identity: str,
    timings: Timings,
    renewed_at: float | None = None,
) -> Decision:
    """What this replica does next.

    `record`: the Lease as just read (None: there is none). `observed_at`: when this replica saw
    the record change last (monotonic seconds). `renewed_at`: when this replica, as leader, sent
    its last renew that succeeded (None: it is not leading). The Lease of another expires
    `record.lease_seconds` after it was observed, the duration its holder wrote (1 s once
    released)."""
    if renewed_at is not None:
        if now - renewed_at >= timings.renew_deadline:
            return Decision.LOST
        if record is None or record.holder != identity:
            return Decision.LOST  # deleted or taken from under us: someone else may lead
        return Decision.RENEW
    if record is None or not record.holder:
        return Decision.ACQUIRE
    if record.holder == identity:
        return Decision.RENEW  # ours from a previous term of this process
    if now - observed_at < record.lease_seconds:
        return Decision.WAIT
    return Decision.ACQUIRE


def micro_time(when: datetime | None = None) -> str:
    """A Kubernetes MicroTime (RFC 3339 with microseconds, UTC)."""
    return (when or datetime.now(UTC)).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def next_record(
    current: Record | None, decision: Decision, identity: str, timings: Timings, now: str
) -> Record:
    """The record to write for ACQUIRE or RENEW (client-go's: the acquire time and the count of
    transitions change only when the holder does)."""
    lease_seconds = max(1, math.ceil(timings.lease_duration))
    if current is None:
        return Record(identity, lease_seconds, now, now, 0)
    if current.holder == identity:
        return Record(
            identity, lease_seconds, current.acquire_time or now, now, current.transitions
        )
    return Record(identity, lease_seconds, now, now, current.transitions + 1)


def released(current: Record) -> Record:
    """What the leader writes on shutdown: nobody holds the Lease, and it expires in a second
    for a replica that cannot tell (controller-runtime's `ReleaseOnCancel`)."""
    return Record("", 1, current.acquire_time, micro_time(), current.transitions)


def default_identity() -> str:
    """The pod name ($POD_NAME from the downward API, else the host name) and a per-process id:
    a restarted container is a new holder."""
    pod = os.environ.get("POD_NAME") or socket.gethostname()
    return f"{pod}_{uuid.uuid4()}"


def own_namespace(default: str = "modelfs-system") -> str:
    """The operator's namespace: $POD_NAMESPACE, else the ServiceAccount's, else `default`."""
    if os.environ.get("POD_NAMESPACE"):
        return os.environ["POD_NAMESPACE"]
    with (
        contextlib.suppress(OSError),
        open("/var/run/secrets/kubernetes.io/serviceaccount/namespace") as found,
    ):
        text = found.read().strip()
        if text:
            return text
    return default


# ----------------------------------------------------------------------------- the API


class LeaseClient:
    """The Lease, read and written with optimistic concurrency (an update carries the
    resourceVersion it read: two candidates cannot both win)."""

    def __init__(self, api: ApiClient, namespace: str, name: str) -> None:
        self.api, self.namespace, self.name = api, namespace, name
        self.collection = object_path(LEASE_GROUP, "v1", "leases", namespace)
        self.path = object_path(LEASE_GROUP, "v1", "leases", namespace, name)

    async def get(self, timeout: float) -> tuple[Record | None, str]:  # noqa: ASYNC109
        """The record and its resourceVersion; (None, "") when there is no Lease."""
        status, lease = await request(self.api, "GET", self.path, timeout=timeout, missing_ok=True)
        if status == 404 or lease is None:
            return None, ""
        return Record.of(lease), str(lease.get("metadata", {}).get("resourceVersion") or "")

    async def write(self, record: Record, version: str, timeout: float) -> str:  # noqa: ASYNC109
        """Create (no `version`) or replace the Lease; the new resourceVersion. A conflict
        (another replica wrote first) raises ConflictError."""
        lease: dict[str, Any] = {
            "apiVersion": f"{LEASE_GROUP}/v1",
            "kind": "Lease",
            "metadata": {"name": self.name, "namespace": self.namespace},
            "spec": record.spec(),
        }
        if version:
            lease["metadata"]["resourceVersion"] = version
            _, written = await request(self.api, "PUT", self.path, lease, timeout=timeout)
        else:
            _, written = await request(self.api, "POST", self.collection, lease, timeout=timeout)
        return str((written or {}).get("metadata", {}).get("resourceVersion") or "")

    async def changes(self, version: str, timeout: float) -> tuple[str, str]:  # noqa: ASYNC109
        """Return when the Lease changes after `version` (or when the watch ends): the event's
        type ("" at the end of the watch) and the Lease's new resourceVersion. One watch request
        on this Lease alone."""
        query = {
            "watch": "1",
            "fieldSelector": f"metadata.name={self.name}",
            "timeoutSeconds": str(int(timeout)),
            "allowWatchBookmarks": "false",
        }
        if version:
            query["resourceVersion"] = version
        client: Any = self.api
        headers = {**self.api.default_headers, "Accept": "application/json"}
        queries = list(query.items())
        await client.update_params_for_auth(
            headers, queries, ["BearerToken"], self.collection, "GET", None
        )
        url = (
            self.api.configuration.host
            + self.collection
            + "?"
            + urlencode(queries, quote_via=quote)
        )
        response = await client.call_api(
            "GET", url, headers, None, None, _request_timeout=timeout + 5
        )
        raw: aiohttp.ClientResponse = response.response
        try:
            if response.status != 200:
                raise error_for(int(response.status), response.reason, await raw.read())
            async for line in raw.content:
                if line.strip():
                    event = json.loads(line)
                    kind = str(event.get("type") or "")
                    if kind in ("ADDED", "MODIFIED", "DELETED"):
                        meta = (event.get("object") or {}).get("metadata") or {}
                        return kind, str(meta.get("resourceVersion") or version)
                    if kind == "ERROR":  # the version is too old: from the newest one on
                        return kind, ""
            return "", version
        finally:
            raw.release()


# ----------------------------------------------------------------------------- the elector


class NotLeadingError(ApiError):
    """A write refused by `Fence`: this replica does not (or no longer) hold the Lease."""

    def __init__(self) -> None:
        super().__init__(0, "not the leader: write refused (the leader Lease is not held)")


class Elector:
    """Campaigns for the Lease and keeps it; calls `on_started` when this replica becomes leader
    and `on_stopped(reason)` when it stops (both awaited, `on_stopped` before anything else
    may write)."""

    def __init__(
        self,
        client: LeaseClient,
        identity: str,
        timings: Timings,
        on_started: Callable[[], Awaitable[None]],
        on_stopped: Callable[[str], Awaitable[None]],
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.client, self.identity, self.timings = client, identity, timings
        self.on_started, self.on_stopped = on_started, on_stopped
        self.clock = clock
        self.renewed_at: float | None = None
        """When the last renew that succeeded was sent, while leading."""
        self.observed: Record | None = None
        self.observed_at = clock()
        self.version = ""
        self.progress: float | None = None
        """When the loop last finished an attempt (the liveness probe reads it); None until it
        runs (a replica still listing at start is not wedged)."""
        self.changed = asyncio.Event()
        self._last_error = ""
        self._watch: asyncio.Task[None] | None = None

    # -- what others ask

    def leading(self) -> bool:
        """Whether this replica may write now: it leads and its last renew is younger than the
        renew deadline (checked at the instant of the call, not at the loop's pace)."""
        return (
            self.renewed_at is not None
            and self.clock() - self.renewed_at < self.timings.renew_deadline
        )

    def wedged(self) -> bool:
        """The loop has made no attempt for two Lease durations: the replica is stuck."""
        if self.progress is None:
            return False
        return self.clock() - self.progress > 2 * self.timings.lease_duration + self.timings.retry

    # -- the loop

    async def run(self) -> None:
        self.progress = self.clock()
        self._watch = asyncio.get_running_loop().create_task(self._watch_lease())
        try:
            while True:
                await self._attempt()
                self.progress = self.clock()
                await self._pause()
        finally:
            self._watch.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._watch

    async def _pause(self) -> None:
        if self.renewed_at is not None:
            left = self.renewed_at + self.timings.renew_deadline - self.clock()
            await asyncio.sleep(max(0.0, min(self.timings.retry, left)))
            return
        self.changed.clear()
        # asyncio.timeout, not wait_for: Python 3.11's wait_for can swallow a cancel that
        # comes as the wait ends, and the loop then outlives its own stop (a hung shutdown)
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(self.timings.retry):
                await self.changed.wait()

    def _timeout(self) -> float:
        """A leader's attempt must end before its renew deadline; a candidate's within a retry
        period (a hung request must not hold the loop)."""
        if self.renewed_at is None:
            return self.timings.retry * 2
        return max(0.001, self.renewed_at + self.timings.renew_deadline - self.clock())

    async def _attempt(self) -> None:
        sent = self.clock()
        try:
            async with asyncio.timeout(self._timeout()):
                record, version = await self.client.get(self._timeout())
                now = self.clock()
                if record != self.observed or version != self.version:
                    self.observed, self.version, self.observed_at = record, version, now
                decision = decide(
                    record, self.observed_at, now, self.identity, self.timings, self.renewed_at
                )
                if decision in (Decision.ACQUIRE, Decision.RENEW):
                    sent = self.clock()
                    new = next_record(record, decision, self.identity, self.timings, micro_time())
                    self.version = await self.client.write(new, version, self._timeout())
                    self.observed, self.observed_at = new, self.clock()
        except RETRIED as error:
            if isinstance(error, ConflictError):
                logger.debug("Lease changed under us", extra={"lease": self.client.name})
            elif self.renewed_at is not None:
                logger.warning(
                    "Lease not renewed",
                    extra={"lease": self.client.name, "error": f"{type(error).__name__}: {error}"},
                )
            else:
                # a standby that cannot read or write the Lease (RBAC, no such namespace) would
                # never lead: said once per distinct error, not every retry period
                said = f"{type(error).__name__}: {error}"
                if said != self._last_error:
                    self._last_error = said
                    logger.warning(
                        "Lease not acquired",
                        extra={
                            "lease": f"{self.client.namespace}/{self.client.name}",
                            "error": said,
                        },
                    )
            decision = decide(
                self.observed,
                self.observed_at,
                self.clock(),
                self.identity,
                self.timings,
                self.renewed_at,
            )
            if decision is Decision.LOST:
                await self._stop("RenewDeadlineExceeded")
            return
        if decision is Decision.LOST:
            reason = (
                "RenewDeadlineExceeded"
                if self.observed and (self.observed.holder == self.identity)
                else "LeaseTaken"
            )
            await self._stop(reason)
            return
        if decision in (Decision.ACQUIRE, Decision.RENEW):
            was_leading = self.renewed_at is not None
            self.renewed_at = sent
            if not was_leading:
                await self._start()

    async def _start(self) -> None:
        LEADER.set(1)
        TRANSITIONS.labels(to="leader").inc()
        logger.info(
            "Became leader",
            extra={
                "lease": f"{self.client.namespace}/{self.client.name}",
                "identity": self.identity,
            },
        )
        await self.on_started()

    async def _stop(self, reason: str) -> None:
        self.renewed_at = None
        LEADER.set(0)
        TRANSITIONS.labels(to="standby").inc()
        logger.warning(
            "Stopped leading",
            extra={
                "lease": f"{self.client.namespace}/{self.client.name}",
                "identity": self.identity,
                "reason": reason,
            },
        )
        await self.on_stopped(reason)

    async def release(self) -> None:
        """On shutdown, after the queues stopped: give the Lease up if this replica holds it, so
        a standby need not wait for it to expire."""
        if self.renewed_at is None:
            return
        leading = self.leading()
        self.renewed_at = None
        LEADER.set(0)
        if not leading or self.observed is None:
            return
        try:
            async with asyncio.timeout(self.timings.retry):
                record, version = await self.client.get(self.timings.retry)
                if record is None or record.holder != self.identity:
                    return
                await self.client.write(released(record), version, self.timings.retry)
        except RETRIED as error:
            logger.warning(
                "Lease not released",
                extra={"lease": self.client.name, "error": f"{type(error).__name__}: {error}"},
            )
            return
        TRANSITIONS.labels(to="standby").inc()
        logger.info(
            "Stopped leading",
            extra={
                "lease": f"{self.client.namespace}/{self.client.name}",
                "identity": self.identity,
                "reason": "Released",
            },
        )

    async def _watch_lease(self) -> None:
        """Wake the candidate loop when the Lease changes (a release is then taken in
        milliseconds, not up to a retry period later)."""
        seen = self.version
        while True:
            try:
                event, seen = await self.client.changes(seen, timeout=60)
                if event in ("ADDED", "MODIFIED", "DELETED"):
                    self.changed.set()
                elif event == "ERROR":
                    await asyncio.sleep(self.timings.retry)
            except asyncio.CancelledError:
                raise
            except WATCH_ERRORS as error:
                logger.debug("Lease watch ended", extra={"error": str(error)})
                await asyncio.sleep(self.timings.retry)


class Fence:
    """The API writer, refusing every write while this replica does not lead: nothing written
    after the renew deadline, whatever task is still running. Reads pass."""

    def __init__(self, writer: Any, leading: Callable[[], bool]) -> None:
        self._writer, self._leading = writer, leading

    def _check(self) -> None:
        if not self._leading():
            raise NotLeadingError()

    async def patch_status(
        self, plural: str, namespace: str, name: str, status: dict[str, Any]
    ) -> dict[str, Any] | None:
        self._check()
        result: dict[str, Any] | None = await self._writer.patch_status(
            plural, namespace, name, status
        )
        return result

    async def patch_metadata(
        self, plural: str, namespace: str, name: str, patch: dict[str, Any]
    ) -> dict[str, Any] | None:
        self._check()
        result: dict[str, Any] | None = await self._writer.patch_metadata(
            plural, namespace, name, patch
        )
        return result

    async def secret_keys(self, namespace: str, name: str) -> frozenset[str] | None:
        result: frozenset[str] | None = await self._writer.secret_keys(namespace, name)
        return result

    async def create_event(
        self, involved: Mapping[str, Any], type_: str, reason: str, message: str
    ) -> None:
        self._check()
        await self._writer.create_event(involved, type_, reason, message)

    async def apply_dataset(self, manifest: dict[str, Any]) -> dict[str, Any]:
        self._check()
        result: dict[str, Any] = await self._writer.apply_dataset(manifest)
        return result

    async def patch_dataset(
        self, namespace: str, name: str, patch: dict[str, Any]
    ) -> dict[str, Any]:
        self._check()
        result: dict[str, Any] = await self._writer.patch_dataset(namespace, name, patch)
        return result

    async def delete_dataset(self, namespace: str, name: str) -> bool:
        self._check()
        return bool(await self._writer.delete_dataset(namespace, name))

    async def orphan_dataset(self, namespace: str, name: str, owner_uid: str) -> bool:
        self._check()
        return bool(await self._writer.orphan_dataset(namespace, name, owner_uid))
