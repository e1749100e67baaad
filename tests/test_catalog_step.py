"""The ModelSync's catalog step, branch by branch (pure: answers given as the observe-side cache
holds them), and the Catalog that runs lookups in the background (a deterministic in-process
Lookup, on the in-memory cluster with the operator's queues)."""

from __future__ import annotations

import asyncio
import logging
from copy import deepcopy
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from modelfs.api.v1 import CatalogStatus, Model, ModelSource, ModelSync, ModelSyncStatus
from modelfs.controllers import catalog as catalog_module
from modelfs.controllers import metrics, modelsync, triggers
from modelfs.controllers.catalog import (
    Answer,
    AnswerKey,
    Catalog,
    ClaimLookup,
    human_size,
    request_of,
)
from modelfs.controllers.runtime import Key
from modelfs.controllers.shared import resolved, source_verdict
from modelfs.pkg.catalog.types import (
    CatalogEntry,
    CatalogRequest,
    Credentials,
    LookupResult,
    NotApplicable,
    Refusal,
    RefusalReason,
    Unavailable,
    UnavailableReason,
)
from modelfs.pkg.dataset.types import DatasetType
from tests.memcluster import MemCluster, obj
from tests.test_decide import NOW, NS, SOURCE, observed, owned, parsed, ready_of, sync

SHA = "0123456789abcdef0123456789abcdef01234567"
ENTRY = CatalogEntry(
    revision=SHA, files=3, bytes=5 * 2**30, fingerprint="fp-1", parameters=7_000_000_000
)


def source(policy: str = "BestEffort", secret: str | None = None) -> ModelSource:
    spec: dict[str, Any] = {"type": "HTTP", "catalog": policy}
    if secret:
        spec["secretRef"] = secret
    return parsed(ModelSource, "ModelSource", "src", spec)


def sized_model(size: str) -> Model:
    spec = {
        "sourceRef": "src",
        "storage": {"size": size},
        "versionConfigs": {"v1": {"repo": "https://h/x/"}},
    }
    return parsed(Model, "Model", "mdl", spec)


def key_of(seen: modelsync.Observed) -> AnswerKey:
    """The lookup the step asks for: the resolved Dataset source, with the source's Secret."""
    assert seen.source is not None and seen.model is not None
    found = resolved(seen.source, seen.model, seen.sync, data_sync_round=1)
    secret = (NS, seen.source.spec.secret_ref) if seen.source.spec.secret_ref else None
    return request_of(found, NS), secret


def answered(result: LookupResult, *, age: int = 5, **fields: Any) -> modelsync.Observed:
    """Observed with the catalog holding `result` for exactly the request the step makes."""
    src = fields.pop("source", SOURCE)
    fields.setdefault("source_verdict", source_verdict(src, frozenset({"token"})))
    seen = observed(source=src, catalog={}, **fields)
    at = NOW - timedelta(seconds=age)
    answers = {key_of(seen): Answer(result, at, at + timedelta(seconds=60))}
    return replace(seen, catalog=answers)


def catalog_condition(plan: modelsync.Plan) -> dict[str, Any]:
    assert plan.status is not None
    return next(c for c in plan.status["conditions"] if c["type"] == "Catalog")


# ----------------------------------------------------------------------------- the step


def test_without_an_answer_the_decision_waits_and_asks_in_the_background() -> None:
    seen = observed(catalog={})
    plan = modelsync.decide(seen, NOW)
    assert plan.awaiting and plan.status is None and plan.apply is None
    assert plan.lookup == key_of(seen)
    assert plan.requeue_after is not None  # never taken for settled: the answer is news
    request, secret = plan.lookup
    assert (request.type, request.uri, request.namespace, secret) == (
        DatasetType.HTTP,
        "https://h/x/",
        NS,
        None,
    )


def test_an_expired_answer_is_asked_again() -> None:
    plan = modelsync.decide(answered(ENTRY, age=61), NOW)
    assert plan.awaiting and plan.lookup is not None


def test_the_lookup_is_asked_with_the_sources_secret() -> None:
    seen = observed(source=source(secret="hub-token"), catalog={})
    plan = modelsync.decide(seen, NOW)
    assert plan.lookup is not None and plan.lookup[1] == (NS, "hub-token")


def test_an_entry_lets_the_dataset_be_created_and_fills_status_catalog() -> None:
    plan = modelsync.decide(answered(ENTRY), NOW)
    assert plan.apply is not None and plan.apply_cause == "create"
    assert plan.status is not None
    assert plan.status["catalog"] == {
        "revision": SHA,
        "files": 3,
        "bytes": 5 * 2**30,
        "size": "5.0GiB",
        "parameters": 7_000_000_000,
        "fingerprint": "fp-1",
        "lookedUpAt": "2026-11-27T11:59:55Z",
    }
    found = catalog_condition(plan)
    assert (found["status"], found["reason"]) == ("True", "CatalogFound")
    assert found["message"] == "revision 0123456789ab (3 files, 5.0GiB)"
    ModelSyncStatus.model_validate(plan.status)


@pytest.mark.parametrize("reason", list(RefusalReason))
def test_each_refusal_creates_no_dataset_and_warns_once(reason: RefusalReason) -> None:
    plan = modelsync.decide(answered(Refusal(reason, f"the catalog said {reason}")), NOW)
    assert plan.apply is None and plan.status is not None
    assert plan.status["phase"] == "FAILED"
    ready = ready_of(plan)
    assert (ready["status"], ready["reason"]) == ("False", str(reason))
    assert (catalog_condition(plan)["status"], catalog_condition(plan)["reason"]) == (
        "False",
        str(reason),
    )
    assert plan.status_events == [("Warning", str(reason), ready["message"])]
    assert "catalog" not in plan.status
    assert plan.requeue_after == 55.5  # asked again when the answer expires


def test_a_refused_new_round_is_not_started() -> None:
    ready = owned({"phase": "READY", "lastSucceedRound": 1})
    raised = sync(syncRound=2)
    raised.status.observed_sync_round = 1
    gone = Refusal(RefusalReason.REVISION_NOT_FOUND, "revision v9 does not exist")
    plan = modelsync.decide(answered(gone, sync=raised, dataset=ready), NOW)
    assert plan.apply is None
    assert ready_of(plan)["reason"] == "RevisionNotFound"
    assert plan.status is not None and plan.status.get("observedSyncRound") is None


def test_more_bytes_than_the_storage_is_insufficient_storage_showing_both() -> None:
    plan = modelsync.decide(answered(ENTRY, model=sized_model("2Gi")), NOW)
    assert plan.apply is None
    ready = ready_of(plan)
    assert ready["reason"] == "InsufficientStorage"
    assert "5.0GiB (5368709120 bytes)" in ready["message"]
    assert "2Gi (2147483648 bytes)" in ready["message"]
    fits = modelsync.decide(answered(ENTRY, model=sized_model("6Gi")), NOW)
    assert fits.apply is not None


def test_best_effort_goes_ahead_when_the_catalog_cannot_be_asked() -> None:
    down = Unavailable(UnavailableReason.UNREACHABLE, "connection refused")
    plan = modelsync.decide(answered(down), NOW)
    assert plan.apply is not None
    found = catalog_condition(plan)
    assert (found["status"], found["reason"]) == ("Unknown", "CatalogUnreachable")
    assert "goes ahead" in found["message"]


def test_required_holds_the_download_until_the_catalog_answers() -> None:
    down = Unavailable(UnavailableReason.TIMEOUT, "no answer within 10s")
    plan = modelsync.decide(answered(down, source=source("Required")), NOW)
    assert plan.apply is None and plan.status is not None
    assert plan.status["phase"] == "PENDING"
    assert ready_of(plan)["reason"] == "CatalogTimeout"
    assert catalog_condition(plan)["status"] == "Unknown"
    assert plan.status_events == []  # waiting is no failure
    assert plan.requeue_after == 55.5
    later = modelsync.decide(answered(ENTRY, source=source("Required")), NOW)
    assert later.apply is not None


def test_disabled_and_off_look_nothing_up_and_say_so() -> None:
    disabled = modelsync.decide(observed(source=source("Disabled"), catalog={}), NOW)
    assert disabled.apply is not None and disabled.lookup is None
    found = catalog_condition(disabled)
    assert (found["status"], found["reason"]) == ("Unknown", "CatalogDisabled")
    assert "sets catalog: Disabled" in found["message"]
    off = modelsync.decide(observed(catalog=None), NOW)
    assert off.apply is not None and off.lookup is None
    assert "--catalog=off" in catalog_condition(off)["message"]


def test_a_type_without_a_catalog_is_said_so() -> None:
    plan = modelsync.decide(answered(NotApplicable("nothing to look up: NFS")), NOW)
    assert plan.apply is not None
    found = catalog_condition(plan)
    assert (found["status"], found["reason"]) == ("True", "NothingToLookUp")


def test_a_settled_dataset_is_not_looked_up_again() -> None:
    ready = owned({"phase": "READY", "lastSucceedRound": 1})
    stored = {"type": "Catalog", "status": "True", "reason": "CatalogFound", "message": "m"}
    seen = observed(dataset=ready, catalog={})
    seen = replace(seen, body={**seen.body, "status": {"conditions": [stored]}})
    plan = modelsync.decide(seen, NOW)
    assert not plan.awaiting and plan.lookup is None and plan.catalog is None
    assert plan.status is not None and stored in plan.status["conditions"]


def test_an_answer_whose_status_write_yielded_is_recorded_once_the_dataset_exists() -> None:
    """In a burst the status write that records the answer yields to the backlog; the next
    reconcile finds the Dataset (no lookup to make) and still records the kept answer. A
    stored catalog is not replaced."""
    ready = owned({"phase": "READY", "lastSucceedRound": 1})
    seen = answered(ENTRY, dataset=ready)
    assert seen.sync.status.catalog is None
    plan = modelsync.decide(seen, NOW)
    assert not plan.awaiting and plan.lookup is None and plan.apply is None
    assert plan.status is not None and plan.status["catalog"]["revision"] == SHA
    assert catalog_condition(plan)["reason"] == "CatalogFound"
    stored = {"revision": "f" * 40, "size": "1.0GiB", "fingerprint": "fp-0"}
    kept = replace(seen, body={**seen.body, "status": {"catalog": stored}})
    kept = replace(kept, sync=ModelSync.model_validate(kept.body))
    plan = modelsync.decide(kept, NOW)
    assert plan.catalog_status is None
    assert plan.status is None or plan.status["catalog"]["revision"] == "f" * 40


def test_every_kind_of_answer_is_recorded_after_a_first_status_that_waited() -> None:
    """A new ModelSync's first status waits for its Dataset to start (`first_status_wait`): the
    reconcile that writes it, finding the Dataset, records what the answer said, whatever it
    was; the Catalog condition a lookup or a policy sets is never lost."""
    started = owned({"phase": "PROCESSING", "inProcessing": True})
    unreachable = Unavailable(UnavailableReason.UNREACHABLE, "connection refused")
    cases: dict[str, tuple[modelsync.Observed, str, str]] = {
        "found": (answered(ENTRY, dataset=started), "True", "CatalogFound"),
        "unreachable": (answered(unreachable, dataset=started), "Unknown", "CatalogUnreachable"),
        "nothing to look up": (
            answered(NotApplicable("NFS: nothing to look up"), dataset=started),
            "True",
            "NothingToLookUp",
        ),
        "a source's Disabled": (
            answered(ENTRY, dataset=started, source=source("Disabled")),
            "Unknown",
            "CatalogDisabled",
        ),
        "lookups off": (
            replace(observed(dataset=started), catalog=None),
            "Unknown",
            "CatalogDisabled",
        ),
    }
    for name, (seen, status, reason) in cases.items():
        plan = modelsync.decide(seen, NOW)
        assert plan.apply is None and plan.status is not None, name
        found = catalog_condition(plan)
        assert (found["status"], found["reason"]) == (status, reason), (name, found)
        assert plan.status["phase"] == "PROCESSING", name
    # once recorded, a kept answer does not replace it
    recorded = [
        {
            "type": "Catalog",
            "status": "Unknown",
            "reason": "CatalogUnreachable",
            "message": "earlier",
            "lastTransitionTime": "2026-11-27T11:00:00Z",
        }
    ]
    seen = answered(NotApplicable("nothing"), dataset=started)
    seen = replace(seen, body={**seen.body, "status": {"conditions": recorded}})
    seen = replace(seen, sync=ModelSync.model_validate(seen.body))
    assert catalog_condition(modelsync.decide(seen, NOW))["message"] == "earlier"


def scheduled(fingerprint: str, sync_round: int = 1) -> modelsync.Observed:
    """READY since a day, a 1h schedule due, the last round having fetched `fp-1`."""
    ready = owned({"phase": "READY", "lastSucceedRound": 1, "lastSyncTime": "2026-11-26T12:00:00Z"})
    the_sync = sync(schedule={"interval": "1h"}, syncRound=sync_round)
    the_sync.status.observed_sync_round = 1
    the_sync.status.catalog = CatalogStatus(fingerprint="fp-1", lookedUpAt="2026-11-26T11:00:00Z")
    entry = CatalogEntry(revision=SHA, files=3, bytes=10, fingerprint=fingerprint)
    seen = answered(entry, sync=the_sync, dataset=ready)
    status = the_sync.status.to_dict()
    return replace(seen, body={**seen.body, "status": status})


def test_a_schedule_tick_with_nothing_new_upstream_starts_no_round() -> None:
    plan = modelsync.decide(scheduled("fp-1"), NOW)
    assert plan.apply is None and plan.skipped
    found = catalog_condition(plan)
    assert (found["status"], found["reason"]) == ("True", "ScheduleSkipped")
    assert "every 1h" in found["message"] and "round 1" in found["message"]
    assert plan.status is not None
    assert plan.status["catalog"]["lookedUpAt"] == "2026-11-27T11:59:55Z"
    assert plan.status["datasetRound"] == 1
    # stored, the skip counts as the tick: the next one is due an hour after the lookup
    seen = scheduled("fp-1")
    stored_sync = seen.sync.model_copy(
        update={"status": ModelSyncStatus.model_validate(plan.status)}
    )
    again = modelsync.decide(
        replace(seen, sync=stored_sync, body={**seen.body, "status": plan.status}),
        NOW + timedelta(seconds=30),
    )
    assert again.apply is None and not again.skipped and again.lookup is None
    assert again.requeue_after is not None and 3500 < again.requeue_after <= 3600


def test_a_schedule_tick_after_an_upstream_change_starts_a_round() -> None:
    plan = modelsync.decide(scheduled("fp-2"), NOW)
    assert plan.apply is not None and plan.apply["spec"]["dataSyncRound"] == 2
    assert plan.apply_cause == "scheduled" and not plan.skipped
    assert plan.status is not None and plan.status["catalog"]["fingerprint"] == "fp-2"


def test_a_schedule_tick_asks_afresh_however_recent_the_answer() -> None:
    seen = scheduled("fp-1")
    assert seen.catalog is not None
    [(key, answer)] = seen.catalog.items()
    old = Answer(answer.result, answer.at - timedelta(days=1), NOW + timedelta(seconds=30))
    plan = modelsync.decide(replace(seen, catalog={key: old}), NOW)  # fresh, but from before
    assert plan.awaiting and plan.lookup == key
    assert plan.lookup_after is not None and plan.lookup_after.isoformat().startswith(
        "2026-11-26T12:00"
    )
    # the status keeps whole seconds: the answer it records, 0.7 s into its second, is not newer
    recorded = datetime(2026, 11, 26, 12, 0, 0, 700_000, tzinfo=UTC)
    same = Answer(answer.result, recorded, NOW + timedelta(seconds=30))
    assert modelsync.decide(replace(seen, catalog={key: same}), NOW).awaiting


async def test_an_answer_older_than_asked_for_is_asked_again() -> None:
    lookup = Recorded(ENTRY)
    woken: list[Key] = []
    service = Catalog(lookup=lookup, read_secret=no_secret, wake=woken.append)
    service.start((REQUEST, None), (NS, "s"))
    await asyncio.sleep(0.01)
    at = service.answers[(REQUEST, None)].at
    service.start((REQUEST, None), (NS, "s"), newer_than=at - timedelta(seconds=1))
    assert len(lookup.calls) == 1 and len(woken) == 2  # newer than asked: woken at once
    service.start((REQUEST, None), (NS, "s"), newer_than=at)
    await asyncio.sleep(0.01)
    assert len(lookup.calls) == 2 and len(woken) == 3


def test_sync_round_forces_a_round_whatever_the_fingerprint() -> None:
    plan = modelsync.decide(scheduled("fp-1", sync_round=2), NOW)
    assert plan.apply is not None and plan.apply_cause == "requested" and not plan.skipped


def test_the_end_of_a_round_says_what_it_fetched_and_how_long_it_took() -> None:
    done = owned(
        {
            "phase": "READY",
            "lastSucceedRound": 1,
            "lastSyncTime": "2026-11-27T11:58:00Z",
            "syncRoundStatuses": [
                {"round": 1, "startTime": "2026-11-27T11:55:30Z", "endTime": "x", "succeed": True}
            ],
        }
    )
    seen = observed(dataset=done, catalog={})
    stored = {"phase": "PROCESSING", "catalog": {"revision": SHA, "files": 3, "bytes": 10}}
    plan = modelsync.decide(replace(seen, body={**seen.body, "status": stored}), NOW)
    [(type_, reason, message)] = plan.status_events
    assert (type_, reason) == ("Normal", "Synced")
    assert message == (
        "Fetched revision 0123456789ab (3 files, 10B) in 2m30s: Dataset mdl-v1 is READY (round 1)"
    )


def test_human_sizes() -> None:
    assert [human_size(n) for n in (0, 1023, 1024, 5 * 2**30, 3 * 2**40, 2**60)] == [
        "0B",
        "1023B",
        "1.0KiB",
        "5.0GiB",
        "3.0TiB",
        "1048576.0TiB",
    ]


# ----------------------------------------------------------------------------- the Catalog


class Recorded:
    """A deterministic Lookup: answers `result`, once `gate` opens, recording what it was
    asked with."""

    def __init__(self, result: LookupResult, gate: asyncio.Event | None = None) -> None:
        self.result, self.gate = result, gate
        self.calls: list[tuple[CatalogRequest, Credentials]] = []

    async def __call__(self, request: CatalogRequest, credentials: Credentials) -> LookupResult:
        self.calls.append((request, credentials))
        if self.gate is not None:
            await self.gate.wait()
        return self.result


REQUEST = CatalogRequest.of(DatasetType.HUGGING_FACE, "huggingface://org/m", {"revision": "main"})


async def no_secret(namespace: str, name: str) -> dict[str, str] | None:
    return None


async def test_one_lookup_per_request_and_secret_every_waiter_woken() -> None:
    gate = asyncio.Event()
    lookup = Recorded(ENTRY, gate)
    woken: list[Key] = []
    service = Catalog(lookup=lookup, read_secret=no_secret, wake=woken.append)
    for i in range(50):
        service.start((REQUEST, None), (NS, f"sync-{i}"))
    service.start((REQUEST, (NS, "other-secret")), (NS, "sync-x"))
    await asyncio.sleep(0.01)
    assert len(lookup.calls) == 2 and service.served == 49 and woken == []
    gate.set()
    await asyncio.sleep(0.01)
    assert sorted(woken) == sorted([(NS, f"sync-{i}") for i in range(50)] + [(NS, "sync-x")])
    assert service.answers[(REQUEST, None)].result == ENTRY
    service.start((REQUEST, None), (NS, "late"))  # a fresh answer: woken at once, not asked
    assert woken[-1] == (NS, "late") and len(lookup.calls) == 2


async def test_a_lookup_that_does_not_answer_in_time_is_a_timeout() -> None:
    woken: list[Key] = []
    service = Catalog(
        lookup=Recorded(ENTRY, asyncio.Event()),
        read_secret=no_secret,
        wake=woken.append,
        lookup_seconds=0.05,
    )
    service.start((REQUEST, None), (NS, "s"))
    await asyncio.sleep(0.2)
    answer = service.answers[(REQUEST, None)]
    assert isinstance(answer.result, Unavailable)
    assert answer.result.reason == UnavailableReason.TIMEOUT
    assert answer.expires - answer.at == timedelta(seconds=catalog_module.UNAVAILABLE_SECONDS)
    assert woken == [(NS, "s")]


async def test_a_retry_after_sets_when_the_catalog_is_asked_again() -> None:
    limited = Unavailable(UnavailableReason.RATE_LIMITED, "429", retry_after=120.0)
    service = Catalog(lookup=Recorded(limited), read_secret=no_secret)
    service.start((REQUEST, None), (NS, "s"))
    await asyncio.sleep(0.01)
    answer = service.answers[(REQUEST, None)]
    assert answer.expires - answer.at == timedelta(seconds=120)


CANARY = "hf_CANARY_5ecr3t_value"


async def test_secret_values_reach_the_lookup_and_nothing_else(
    caplog: pytest.LogCaptureFixture,
) -> None:
    read: list[tuple[str, str]] = []

    async def secret(namespace: str, name: str) -> dict[str, str] | None:
        read.append((namespace, name))
        return {"token": CANARY}

    class Raising(Recorded):
        async def __call__(self, request: CatalogRequest, credentials: Credentials) -> Any:
            self.calls.append((request, credentials))
            raise RuntimeError(f"boom with {credentials.get('token')}")

    caplog.set_level(logging.DEBUG)
    lookup = Raising(ENTRY)
    service = Catalog(lookup=lookup, read_secret=secret)
    service.start((REQUEST, (NS, "hub")), (NS, "s"))
    await asyncio.sleep(0.01)
    assert read == [(NS, "hub")]
    [(_, credentials)] = lookup.calls
    assert credentials.get("token") == CANARY and CANARY not in repr(credentials)
    answer = service.answers[(REQUEST, (NS, "hub"))]
    assert isinstance(answer.result, Unavailable)
    assert CANARY not in repr(answer)
    for record in caplog.records:  # the message and every structured field
        assert CANARY not in record.getMessage() and CANARY not in repr(vars(record))
    [raised] = [r for r in caplog.records if r.getMessage() == "Catalog lookup raised"]
    assert raised.error == "RuntimeError"  # type: ignore[attr-defined]


async def test_a_claim_lookup_refuses_a_missing_claim() -> None:
    claims: dict[tuple[str, str], bool] = {(NS, "weights"): True}

    async def exists(namespace: str, name: str) -> bool:
        return claims.get((namespace, name), False)

    async def down(namespace: str, name: str) -> bool:
        raise ConnectionRefusedError(111, "connect call failed")

    ok = CatalogRequest.of(DatasetType.PVC, "pvc://weights/m", {}, NS)
    missing = CatalogRequest.of(DatasetType.PVC, "pvc://gone/m", {}, NS)
    assert isinstance(await ClaimLookup(exists)(ok, Credentials()), CatalogEntry)
    refused = await ClaimLookup(exists)(missing, Credentials())
    assert isinstance(refused, Refusal)
    assert refused.reason == RefusalReason.SOURCE_OBJECT_NOT_FOUND and "'gone'" in refused.message
    unknown = await ClaimLookup(down)(ok, Credentials())
    assert isinstance(unknown, Unavailable) and "ConnectionRefusedError" in unknown.message


async def test_an_answer_asked_again_is_asked_of_the_catalog_not_a_cache() -> None:
    forgotten: list[CatalogRequest] = []
    lookup = Recorded(ENTRY)
    service = Catalog(
        lookup=lookup, read_secret=no_secret, forget=forgotten.append, answer_seconds=0.0
    )
    service.start((REQUEST, None), (NS, "s"))
    await asyncio.sleep(0.01)
    assert forgotten == []  # first asked: nothing of it to forget
    service.start((REQUEST, None), (NS, "s"))  # expired at once (answer_seconds=0)
    await asyncio.sleep(0.01)
    assert forgotten == [REQUEST] and len(lookup.calls) == 2


# ----------------------------------------------------------------------------- on the queues


def catalog_cluster(lookup: Any, versions: int = 3) -> MemCluster:
    cluster = MemCluster()
    cluster.namespace(NS)
    cluster.put(obj("ModelSource", NS, "src", {"type": "HTTP"}))
    repos = {f"v{i}": {"repo": "https://h/same/"} for i in range(versions)}
    cluster.put(obj("Model", NS, "mdl", {"sourceRef": "src", "versionConfigs": repos}))
    for i in range(versions):
        cluster.put(obj("ModelSync", NS, f"sync-{i}", {"modelRef": "mdl", "version": f"v{i}"}))
    cluster.runtime.catalog = Catalog(lookup=lookup, read_secret=no_secret)
    return cluster


async def test_no_worker_waits_on_a_lookup_and_the_answer_brings_the_datasets() -> None:
    gate = asyncio.Event()
    lookup = Recorded(ENTRY, gate)
    cluster = catalog_cluster(lookup)
    async with cluster.running() as operator:
        await asyncio.sleep(0.3)
        # every reconcile has returned while the lookup is still out: no worker holds a key
        assert not operator.queues["modelsyncs"].busy()
        assert cluster.objects["datasets"] == {}
        assert not [w for w in cluster.writes if w[1] == "modelsyncs"]  # nothing to say yet
        assert len(lookup.calls) == 1  # three versions of one repository: one request
        gate.set()
        await cluster.settle()
        assert len(cluster.objects["datasets"]) == 3
        status = cluster.objects["modelsyncs"][(NS, "sync-0")]["status"]
        assert status["catalog"]["revision"] == SHA
        cluster.ready_all_datasets()
        await cluster.settle()
    events = [(key, reason) for key, _, reason in cluster.events]
    assert events.count(((NS, "sync-0"), "Synced")) == 1, events


async def test_a_refusal_on_the_queues_creates_no_dataset_and_one_warning() -> None:
    lookup = Recorded(Refusal(RefusalReason.REPO_NOT_FOUND, "repository h/same does not exist"))
    cluster = catalog_cluster(lookup, versions=1)
    before = metrics.CATALOG_LOOKUPS.labels(answer="Refusal")._value.get()
    async with cluster.running() as operator:
        await cluster.settle()
        for _ in range(3):  # resyncs within the answer's life: nothing new is written or asked
            operator.enqueue(triggers.everything(cluster.indexes), low=True)
            await cluster.settle()
    assert cluster.objects["datasets"] == {}
    status = cluster.objects["modelsyncs"][(NS, "sync-0")]["status"]
    assert status["phase"] == "FAILED"
    assert [c["reason"] for c in status["conditions"] if c["type"] == "Ready"] == ["RepoNotFound"]
    warnings = [e for e in cluster.events if e[0] == (NS, "sync-0")]
    assert warnings == [((NS, "sync-0"), "Warning", "RepoNotFound")]
    assert len(lookup.calls) == 1
    assert metrics.CATALOG_LOOKUPS.labels(answer="Refusal")._value.get() == before + 1


async def test_a_skipped_tick_is_counted_once_and_starts_no_round() -> None:
    """A ModelSync whose round ended two hours ago, with a 1h schedule: the tick asks the
    catalog again, finds what round 1 fetched, starts nothing, says so on Catalog and counts it
    once."""
    lookup = Recorded(ENTRY)
    cluster = MemCluster()
    cluster.namespace(NS)
    cluster.put(obj("ModelSource", NS, "src", {"type": "HTTP"}))
    versions = {"v1": {"repo": "https://h/x/"}}
    cluster.put(obj("Model", NS, "mdl", {"sourceRef": "src", "versionConfigs": versions}))
    spec = {"modelRef": "mdl", "version": "v1", "schedule": {"interval": "1h"}}
    cluster.put(obj("ModelSync", NS, "sync", spec))
    cluster.runtime.catalog = Catalog(lookup=lookup, read_secret=no_secret, answer_seconds=0.5)
    before = metrics.SCHEDULE_SKIPS._value.get()
    ago = datetime.now(UTC) - timedelta(hours=2)
    async with cluster.running():
        await cluster.settle()
        assert len(lookup.calls) == 1
        # as if round 1 had been looked up 3h ago and had ended 2h ago
        sync_body = deepcopy(cluster.objects["modelsyncs"][(NS, "sync")])
        looked = (ago - timedelta(hours=1)).strftime("%Y-%m-%dT%H:%M:%SZ")
        sync_body["status"]["catalog"]["lookedUpAt"] = looked
        cluster.put(sync_body)
        cluster.ready_all_datasets()
        [key] = cluster.objects["datasets"]
        cluster.dataset_status(key, lastSyncTime=ago.strftime("%Y-%m-%dT%H:%M:%SZ"))
        await cluster.settle()
    assert len(lookup.calls) == 2  # the tick asked the catalog again
    assert metrics.SCHEDULE_SKIPS._value.get() == before + 1
    [dataset] = cluster.objects["datasets"].values()
    assert dataset["spec"]["dataSyncRound"] == 1
    status = cluster.objects["modelsyncs"][(NS, "sync")]["status"]
    catalog = next(c for c in status["conditions"] if c["type"] == "Catalog")
    assert catalog["reason"] == "ScheduleSkipped", catalog
    assert status["phase"] == "READY" and status["catalog"]["lookedUpAt"] > looked


async def test_a_refusal_lifted_upstream_is_seen_when_its_answer_expires() -> None:
    """No edit of any object: the refused ModelSync is not taken for settled, it asks the
    catalog again when the answer expires, and makes its Dataset once the repository exists."""
    lookup = Recorded(Refusal(RefusalReason.REPO_NOT_FOUND, "repository h/same does not exist"))
    cluster = catalog_cluster(lookup, versions=1)
    assert cluster.runtime.catalog is not None
    cluster.runtime.catalog.answer_seconds = 0.5
    async with cluster.running():
        await asyncio.sleep(2.0)  # refused, and asked again each time the answer expires
        assert cluster.objects["datasets"] == {}
        asked = len(lookup.calls)
        assert asked >= 2, asked
        lookup.result = ENTRY  # the repository now exists
        for _ in range(50):
            await asyncio.sleep(0.1)
            if cluster.objects["datasets"]:
                break
        await cluster.settle()
    assert len(cluster.objects["datasets"]) == 1
    status = cluster.objects["modelsyncs"][(NS, "sync-0")]["status"]
    assert status["catalog"]["revision"] == SHA and status["phase"] != "FAILED"
