"""Hostile input (issue 12): generated invalid and hostile objects of all four kinds through the
real API server, the operator and the REAL BaizeAI/dataset controller (`--dataset-controller`).

Each case is a valid object with at most one hostile mutation at a known field path
(tests/hostile_strategies.py). Its verdict must be exactly one of:

- refused: HTTP 422 whose message names the mutated field;
- marked: accepted, with a False condition on the object's own status that names the field,
  and no Dataset made for it (its companions, a Model and ModelSync that use it, are valid);
- valid (no mutation): Ready, and a ModelSync READY.

Then: the operator log holds no Traceback, and an unrelated ModelSync created afterwards still
reaches READY and has a hand edit of its Dataset reverted within the resync period.

The cases come from fixed seeds (`MODELFS_HOSTILE_SEED`, default 1212); `MODELFS_HOSTILE_CASES`
sets how many generated cases are drawn (default 1000; the issue's own values and the valid
bundles come on top). The summary table is printed (`-s` shows it).
"""

from __future__ import annotations

import asyncio
import json
import os
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from kubernetes.aio.client import (
    ApiClient,
    CoreV1Api,
    CustomObjectsApi,
    V1Namespace,
    V1ObjectMeta,
    V1Secret,
)
from kubernetes.aio.client.exceptions import ApiException

from e2e.helpers import custom_object, error_message
from e2e.operator.conftest import (  # noqa: F401 (fixtures)
    OPERATOR_USER,
    OperatorEnv,
    modelfs_crds,
    operator_identity,
)
from e2e.operator.kube import DATASETS, GROUP, PLURALS, VERSION, condition
from modelfs.api.v1 import SourceType
from modelfs.testing.operator import OperatorProcess, problem_lines
from modelfs.testing.pytest_plugin import Cluster, running_dataset_engine
from tests.hostile_strategies import (
    KINDS,
    SECRET_DATA,
    SECRET_NAME,
    Bundle,
    Case,
    case_key,
    emoji_cases,
    generate,
    issue_cases,
    mutated_case,
    names_field,
    shared_source,
    shared_source_spec,
    valid_bundle,
)

SEED = int(os.environ.get("MODELFS_HOSTILE_SEED", "1212"))
GENERATED = int(os.environ.get("MODELFS_HOSTILE_CASES", "1000"))
VALID_SYNCS = 16
"""Valid ModelSource + Model + ModelSync bundles: each runs a real loader Job."""
VALID_PAIRS = 40
"""Valid ModelSource + Model pairs without a ModelSync (no Dataset)."""
VALID_REFERENCES = 3
MIN_OBJECTS = 1000
CONCURRENCY = 16
SETTLE_WITHIN = 150.0
"""After the last object is created: how long every case gets to show its verdict."""
RESYNC_SECONDS = 30.0
MAX_SAME_EVENTS = 2
"""How often one object may get the same Event (reason and message): more is a storm (defect 8)."""
FAIL_ROUNDS = "fake.dataset.baizeai.io/fail-rounds"
CONSUMER_LABEL = "modelfs-hostile/consumer"
ANCHOR_VERSION = "v1"


@pytest.fixture(scope="module")
def hostile_env(
    k8s_cluster: Cluster,
    dataset_controller: str,
    modelfs_crds: list[str],  # noqa: F811
    operator_identity: Path,  # noqa: F811
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[OperatorEnv]:
    """The Dataset controller of `--dataset-controller` and the operator, for this module
    alone: both act cluster-wide, so they go when it ends."""
    logs = tmp_path_factory.mktemp("hostile")
    with running_dataset_engine(dataset_controller, k8s_cluster, logs) as engine:
        operator = OperatorProcess(operator_identity, log_path=logs / "operator.log").start()
        try:
            yield OperatorEnv(operator, engine, OPERATOR_USER, operator_identity)
        finally:
            operator.stop()
            print(f"\noperator log: {operator.log_path}")


# ----------------------------------------------------------------------------- verdicts


@dataclass
class Result:
    case: Case
    namespace: str
    outcome: str = "pending"
    """refused | marked | valid (passes), or what went wrong."""
    detail: str = ""
    datasets: list[str] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        return self.outcome in ("refused", "marked", "valid") and not self.datasets


@dataclass
class Run:
    api: ApiClient
    namespaces: dict[str, str]
    results: list[Result] = field(default_factory=list)
    bundles: list[Bundle] = field(default_factory=list)
    valid_refs: list[str] = field(default_factory=list)
    created: Counter[str] = field(default_factory=Counter)
    gate: asyncio.Semaphore = field(default_factory=lambda: asyncio.Semaphore(CONCURRENCY))

    @property
    def custom(self) -> CustomObjectsApi:
        return CustomObjectsApi(self.api)

    async def create(self, namespace: str, kind: str, body: dict[str, Any]) -> dict[str, Any]:
        body = {"apiVersion": f"{GROUP}/{VERSION}", "kind": kind, **body}
        async with self.gate:
            self.created[kind] += 1
            return custom_object(
                await self.custom.create_namespaced_custom_object(
                    GROUP, VERSION, namespace, PLURALS[kind], body
                )
            )

    async def listed(self, namespace: str, kind: str) -> dict[str, dict[str, Any]]:
        found = await self.custom.list_namespaced_custom_object(
            GROUP, VERSION, namespace, PLURALS[kind]
        )
        return {item["metadata"]["name"]: item for item in custom_object(found)["items"]}

    async def datasets(self, namespace: str) -> list[dict[str, Any]]:
        found = await self.custom.list_namespaced_custom_object(
            *DATASETS[:2], namespace, DATASETS[2]
        )
        return list(custom_object(found)["items"])


def home(case: Case, namespaces: dict[str, str]) -> str:
    if case.kind == "ModelReference":
        return namespaces["consumer"]
    if case.mutation is not None and case.mutation.tolerated:
        return namespaces["good"]  # may be valid: its loader round must be able to succeed
    return namespaces["bad"]


async def try_case(run: Run, result: Result) -> None:
    """Create the case's object; when accepted, create its companions (valid objects that use
    it, or that it uses), so that a Dataset made for it would show."""
    case, namespace = result.case, result.namespace
    body = case.body()
    if case.kind == "ModelReference":
        good = run.namespaces["good"]
        spec = body["spec"]
        if isinstance(spec.get("modelRef"), dict):
            ref = spec["modelRef"]
            ref.setdefault("namespace", "")
            if ref.get("namespace") == "{good}":
                ref["namespace"] = good
            if ref.get("name") == "{anchor}":
                ref["name"] = "anchor"
        if spec.get("version") == "{version}":
            spec["version"] = ANCHOR_VERSION
    try:
        stored = await run.create(namespace, case.kind, body)
    except ApiException as error:
        message = error_message(error)
        if error.status != 422:
            result.outcome, result.detail = f"refused with HTTP {error.status}", message
        elif case.mutation is None:
            result.outcome, result.detail = "valid object refused", message
        elif names_field(message, case.mutation):
            result.outcome, result.detail = "refused", message
        else:
            result.outcome, result.detail = "refused without naming the field", message
        return
    name = stored["metadata"]["name"]
    companion = case.companion
    if case.kind == "ModelSource":
        repo = case.extras["repo"]
        model = {"sourceRef": name, "versionConfigs": {"v1": {"repo": repo}}}
        await run.create(namespace, "Model", {"metadata": {"name": companion}, "spec": model})
        sync = {"modelRef": companion, "version": "v1"}
        await run.create(namespace, "ModelSync", {"metadata": {"name": companion}, "spec": sync})
    elif case.kind == "Model":
        sync = {"modelRef": name, "version": case.version}
        await run.create(namespace, "ModelSync", {"metadata": {"name": companion}, "spec": sync})
    elif case.kind == "ModelSync":
        repo = "https://h.example.com/x/"
        model = {
            "sourceRef": shared_source(SourceType.HTTP),
            "versionConfigs": {"v1": {"repo": repo}},
        }
        await run.create(namespace, "Model", {"metadata": {"name": companion}, "spec": model})


def verdict(result: Result, objects: dict[tuple[str, str, str], dict[str, Any]]) -> None:
    """The verdict on an accepted case from the objects as they are now."""
    case, namespace = result.case, result.namespace
    mutation = case.mutation
    body = objects.get((namespace, case.kind, case.name))
    if body is None:
        result.outcome, result.detail = "accepted but gone", ""
        return
    status = body.get("status") or {}
    false = [c for c in status.get("conditions") or [] if c.get("status") == "False"]
    if mutation is None:
        ready = status.get("phase") == "READY" or condition(body, "Ready").get("status") == "True"
        result.outcome = "valid" if ready else "not ready"
        result.detail = str(status)[:300]
        return
    named = [c for c in false if names_field(str(c.get("message", "")), mutation)]
    if named:
        result.outcome = "marked"
        result.detail = (
            f"{named[0].get('type')}={named[0].get('reason')}: {named[0].get('message')}"
        )
        return
    if mutation.tolerated:
        sync = objects.get((namespace, "ModelSync", case.companion)) or {}
        if (sync.get("status") or {}).get("phase") == "READY" and not false:
            result.outcome, result.detail = "valid", "accepted, and its ModelSync is READY"
            return
    if false:
        result.outcome = "condition does not name the field"
        result.detail = "; ".join(f"{c.get('reason')}: {c.get('message')}" for c in false)[:400]
    else:
        result.outcome = "silent"
        ready = condition(body, "Ready")
        result.detail = f"Ready={ready.get('status')} {ready.get('message', '')}"[:300]


Events = dict[tuple[str, str, str], list[tuple[str, str, str, int]]]


async def events_by_object(run: Run) -> Events:
    """(namespace, kind, name) -> (type, reason, message, count) of each Event on it."""
    core = CoreV1Api(run.api)
    found: Events = {}
    for namespace in run.namespaces.values():
        listed = await core.list_namespaced_event(namespace)
        for event in listed.items:
            target = event.involved_object
            key = (namespace, str(target.kind), str(target.name))
            entry = (str(event.type), str(event.reason), str(event.message), event.count or 1)
            found.setdefault(key, []).append(entry)
    return found


def check_events(run: Run, events: Events) -> list[str]:
    """A marked case must also have a Warning Event naming the field (the status is not the only
    place a user looks); and no object gets the same Event again and again."""
    for result in run.results:
        mutation = result.case.mutation
        if result.outcome != "marked" or mutation is None:
            continue
        mine = events.get((result.namespace, result.case.kind, result.case.name), [])
        if not any(t == "Warning" and names_field(m, mutation) for t, _, m, _ in mine):
            result.outcome = "marked without a Warning Event naming the field"
            result.detail += f" | events: {[(t, r) for t, r, _, _ in mine]}"
    storms = []
    for (namespace, kind, name), entries in events.items():
        if kind not in KINDS:  # a PVC's FailedBinding, say, is kube-controller-manager's
            continue
        same: Counter[tuple[str, str]] = Counter()
        for _, reason, message, count in entries:
            same[(reason, message)] += count
        for (reason, message), count in same.items():
            if count > MAX_SAME_EVENTS:
                storms.append(f"{kind} {namespace}/{name}: {count} x {reason} {message[:100]!r}")
    return storms


async def snapshot(run: Run) -> dict[tuple[str, str, str], dict[str, Any]]:
    pairs = [(ns, kind) for ns in run.namespaces.values() for kind in KINDS]
    listed = await asyncio.gather(*(run.listed(ns, kind) for ns, kind in pairs))
    return {
        (ns, kind, name): body
        for (ns, kind), items in zip(pairs, listed, strict=True)
        for name, body in items.items()
    }


def bundle_results(run: Run, objects: dict[tuple[str, str, str], dict[str, Any]]) -> list[str]:
    """What is wrong with the valid bundles and references (empty when all are ready)."""
    problems = []
    good = run.namespaces["good"]
    for bundle in run.bundles:
        for kind, name in bundle.names().items():
            if kind == "ModelSync" and bundle.sync is None:
                continue
            body = objects.get((good, kind, name)) or {}
            status = body.get("status") or {}
            ready = (
                status.get("phase") == "READY"
                if kind == "ModelSync"
                else condition(body, "Ready").get("status") == "True"
            )
            if not ready:
                problems.append(f"valid {kind} {good}/{name} not ready: {str(status)[:300]}")
    consumer = run.namespaces["consumer"]
    for name in run.valid_refs:
        body = objects.get((consumer, "ModelReference", name)) or {}
        if (body.get("status") or {}).get("phase") != "READY":
            problems.append(f"valid ModelReference {name} not READY: {body.get('status')}")
    return problems


# ----------------------------------------------------------------------------- setup


async def make_namespaces(core: CoreV1Api, stem: str) -> dict[str, str]:
    names = {role: f"{stem}-{role}" for role in ("bad", "good", "consumer", "late")}
    specs: dict[str, dict[str, Any]] = {
        # every loader round of a hostile object fails: its retry paths run too
        "bad": {"annotations": {FAIL_ROUNDS: "all"}},
        "good": {},
        "consumer": {"labels": {CONSUMER_LABEL: "yes"}},
        "late": {},
    }
    for role, name in names.items():
        metadata = V1ObjectMeta.model_validate({"name": name, **specs[role]})
        await core.create_namespace(V1Namespace(metadata=metadata))
        if role in ("bad", "good"):
            secret = V1Secret(metadata=V1ObjectMeta(name=SECRET_NAME), string_data=SECRET_DATA)
            await core.create_namespaced_secret(name, secret)
    return names


async def make_fixtures(run: Run) -> None:
    """The shared ModelSources that Model and ModelSync cases use, and the anchor Model that
    ModelReference cases read (shared with the consumer namespace, synced)."""
    bad, good = run.namespaces["bad"], run.namespaces["good"]
    for source_type in SourceType:
        for namespace in (bad, good):
            body = {
                "metadata": {"name": shared_source(source_type)},
                "spec": shared_source_spec(source_type),
            }
            await run.create(namespace, "ModelSource", body)
    await run.create(
        good,
        "Model",
        {
            "metadata": {"name": "anchor"},
            "spec": {
                "sourceRef": shared_source(SourceType.HTTP),
                "versionConfigs": {ANCHOR_VERSION: {"repo": "https://h.example.com/anchor/"}},
                "share": {"namespaceSelector": {"matchLabels": {CONSUMER_LABEL: "yes"}}},
            },
        },
    )
    await run.create(
        good,
        "ModelSync",
        {"metadata": {"name": "anchor"}, "spec": {"modelRef": "anchor", "version": "v1"}},
    )


async def create_bundle(run: Run, bundle: Bundle) -> None:
    for kind, body in bundle.bodies().items():
        await run.create(run.namespaces["good"], kind, body)


# ----------------------------------------------------------------------------- the late sync


async def late_sync(run: Run) -> tuple[float, str]:
    """An unrelated ModelSync made after the storm: seconds to READY, and its Dataset."""
    namespace = run.namespaces["late"]
    start = time.monotonic()
    await run.create(
        namespace, "ModelSource", {"metadata": {"name": "late"}, "spec": {"type": "HTTP"}}
    )
    spec = {"sourceRef": "late", "versionConfigs": {"v1": {"repo": "https://h.example.com/l/"}}}
    await run.create(namespace, "Model", {"metadata": {"name": "late"}, "spec": spec})
    sync = {"modelRef": "late", "version": "v1"}
    await run.create(namespace, "ModelSync", {"metadata": {"name": "late"}, "spec": sync})
    body: dict[str, Any] = {}
    while time.monotonic() < start + 120:
        body = custom_object(
            await run.custom.get_namespaced_custom_object(
                GROUP, VERSION, namespace, "modelsyncs", "late"
            )
        )
        if (body.get("status") or {}).get("phase") == "READY":
            return time.monotonic() - start, str(body["status"]["datasetName"])
        await asyncio.sleep(0.5)
    pytest.fail(f"the late ModelSync did not reach READY in 120s: {body.get('status')}")


HAND_EDITED = "hand-edited"


async def drift_repair(run: Run, datasets: list[tuple[str, str]]) -> float:
    """Hand-edit every Dataset's model label and source options at once; seconds until modelfs
    has reverted them all (failing after the resync period and a margin)."""
    originals: dict[tuple[str, str], str] = {}
    for namespace, name in datasets:
        found = custom_object(
            await run.custom.get_namespaced_custom_object(
                *DATASETS[:2], namespace, DATASETS[2], name
            )
        )
        originals[(namespace, name)] = found["metadata"]["labels"]["model.samzong.dev/model"]
    edit = {
        "metadata": {"labels": {"model.samzong.dev/model": HAND_EDITED}},
        "spec": {"source": {"options": {"handEdited": "x"}}},
    }
    edited = time.monotonic()
    await asyncio.gather(
        *(
            run.custom.patch_namespaced_custom_object(
                *DATASETS[:2], namespace, DATASETS[2], name, edit
            )
            for namespace, name in datasets
        )
    )
    left = dict(originals)
    while time.monotonic() < edited + RESYNC_SECONDS + 10:
        for (namespace, name), label in list(left.items()):
            found = custom_object(
                await run.custom.get_namespaced_custom_object(
                    *DATASETS[:2], namespace, DATASETS[2], name
                )
            )
            labels = found["metadata"].get("labels") or {}
            options = (found["spec"].get("source") or {}).get("options") or {}
            if labels.get("model.samzong.dev/model") == label and "handEdited" not in options:
                del left[(namespace, name)]
        if not left:
            return time.monotonic() - edited
        await asyncio.sleep(0.3)
    pytest.fail(
        f"{len(left)} of {len(datasets)} hand-edited Datasets not reverted within "
        f"{RESYNC_SECONDS + 10:.0f}s: {sorted(left)[:10]}"
    )


# ----------------------------------------------------------------------------- the test


def draw_cases() -> tuple[list[Case], list[Bundle]]:
    fixed_cases = issue_cases() + emoji_cases()
    generated = generate(mutated_case(), GENERATED, SEED, case_key)
    cases = [c.numbered(i) for i, c in enumerate(fixed_cases + generated)]
    bundles = generate(valid_bundle(True), VALID_SYNCS, SEED + 1) + generate(
        valid_bundle(False), VALID_PAIRS, SEED + 2
    )
    return cases, [b.numbered(i) for i, b in enumerate(bundles)]


def summary(
    run: Run, seconds: dict[str, float], operator: OperatorProcess, problems: list[str]
) -> str:
    rows = []
    header = f"{'kind':<16}{'cases':>7}{'refused':>9}{'marked':>8}{'valid':>7}{'failed':>8}"
    rows.append(header)
    totals: Counter[str] = Counter()
    for kind in KINDS:
        mine = [r for r in run.results if r.case.kind == kind]
        counts = Counter(r.outcome if r.passed else "failed" for r in mine)
        valid = counts["valid"] + (
            sum(1 for b in run.bundles for k in b.bodies() if k == kind)
            if kind != "ModelReference"
            else len(run.valid_refs)
        )
        row = (len(mine), counts["refused"], counts["marked"], valid, counts["failed"])
        totals.update(
            dict(zip(("cases", "refused", "marked", "valid", "failed"), row, strict=True))
        )
        rows.append(
            f"{kind:<16}" + "".join(f"{v:>{w}}" for v, w in zip(row, (7, 9, 8, 7, 8), strict=True))
        )
    rows.append(
        f"{'total':<16}"
        + "".join(
            f"{totals[k]:>{w}}"
            for k, w in zip(
                ("cases", "refused", "marked", "valid", "failed"), (7, 9, 8, 7, 8), strict=True
            )
        )
    )
    log = operator.log_text()
    silent = sum(1 for r in run.results if r.outcome == "silent")
    wrong = sum(len(r.datasets) for r in run.results)
    objects = sum(run.created.values())
    rows.append("")
    rows.append(
        f"seed {SEED}; objects created {objects} ({dict(run.created)}); tried {len(run.results)}, "
        f"refused at admission {totals['refused']}, with a clear condition {totals['marked']}, "
        f"silent {silent}, wrong Datasets {wrong}, other problems {len(problems)}, "
        "operator Tracebacks "
        f"{log.count('Traceback (most recent call last)')}, operator error lines "
        f"{len(problem_lines(log))}"
    )
    rows.append("seconds: " + ", ".join(f"{k} {v:.1f}" for k, v in seconds.items()))
    return "\n".join(rows)


def write_results(run: Run, path: Path) -> None:
    """Every case's verdict, one JSON line each, to read a failure again by its case name."""
    with path.open("w") as out:
        for r in run.results:
            line = {
                "kind": r.case.kind,
                "name": r.case.name,
                "namespace": r.namespace,
                "field": r.case.mutation.field if r.case.mutation else None,
                "case": r.case.label,
                "value": repr(r.case.mutation.value) if r.case.mutation else None,
                "outcome": r.outcome,
                "passed": r.passed,
                "datasets": r.datasets,
                "detail": r.detail,
            }
            out.write(json.dumps(line, ensure_ascii=False) + "\n")


async def test_hostile_input(hostile_env: OperatorEnv, k8s_api: ApiClient, tmp_path: Path) -> None:
    began = time.monotonic()
    seconds: dict[str, float] = {}
    cases, bundles = draw_cases()
    seconds["generate"] = time.monotonic() - began
    core = CoreV1Api(k8s_api)
    namespaces = await make_namespaces(core, f"hostile-{uuid.uuid4().hex[:5]}")
    run = Run(k8s_api, namespaces, bundles=bundles)
    try:
        await make_fixtures(run)
        run.results = [Result(case, home(case, namespaces)) for case in cases]
        mark = time.monotonic()
        run.valid_refs = [f"vref{i}" for i in range(VALID_REFERENCES)]
        ref_spec = {
            "modelRef": {"namespace": namespaces["good"], "name": "anchor"},
            "version": ANCHOR_VERSION,
        }
        await asyncio.gather(
            *(try_case(run, result) for result in run.results),
            *(create_bundle(run, bundle) for bundle in bundles),
            *(
                run.create(
                    namespaces["consumer"],
                    "ModelReference",
                    {"metadata": {"name": name}, "spec": ref_spec},
                )
                for name in run.valid_refs
            ),
        )
        seconds["create"] = time.monotonic() - mark
        assert sum(run.created.values()) >= MIN_OBJECTS, run.created

        mark = time.monotonic()
        accepted = [r for r in run.results if r.outcome == "pending"]
        problems: list[str] = []
        passing, last_change = -1, 0.0
        while True:
            objects = await snapshot(run)
            for result in accepted:
                verdict(result, objects)
            problems = bundle_results(run, objects)
            now_passing = sum(r.passed for r in accepted) - len(problems)
            if now_passing != passing:
                passing, last_change = now_passing, time.monotonic() - mark
            if now_passing == len(accepted) or time.monotonic() - mark > SETTLE_WITHIN:
                break
            await asyncio.sleep(3)
        seconds["settle"] = time.monotonic() - mark
        seconds["last verdict reached"] = last_change

        problems += check_events(run, await events_by_object(run))

        # No Dataset for an invalid object: every object of the bad namespace is one or uses
        # one, and so is every ModelReference case of the consumer namespace.
        by_owner: dict[tuple[str, str], Result] = {}
        for result in run.results:
            by_owner[(result.namespace, result.case.name)] = result
            by_owner[(result.namespace, result.case.companion)] = result
        for role in ("bad", "consumer", "good"):
            namespace = namespaces[role]
            for dataset in await run.datasets(namespace):
                owners = [o.get("name") for o in dataset["metadata"].get("ownerReferences") or []]
                name = f"{namespace}/{dataset['metadata']['name']}"
                owner = next(
                    (by_owner[(namespace, o)] for o in owners if (namespace, o) in by_owner), None
                )
                if owner is not None and owner.case.mutation is not None:
                    if not owner.case.mutation.tolerated or owner.outcome != "valid":
                        owner.datasets.append(name)
                elif owner is None and role == "bad":
                    problems.append(f"Dataset {name} in the hostile namespace (owners {owners})")

        mark = time.monotonic()
        seconds["late READY"], late = await late_sync(run)
        drifted = [(namespaces["late"], late)] + [
            (namespaces["good"], str(body["status"]["datasetName"]))
            for (namespace, kind, _), body in objects.items()
            if namespace == namespaces["good"]
            and kind == "ModelSync"
            and (body.get("status") or {}).get("phase") == "READY"
            and (body.get("status") or {}).get("datasetName")
        ]
        seconds[f"{len(drifted)} drifts reverted"] = await drift_repair(run, drifted)
        seconds["late check"] = time.monotonic() - mark
        seconds["total"] = time.monotonic() - began
        print("\n" + summary(run, seconds, hostile_env.operator, problems))
        write_results(run, tmp_path / "hostile-results.jsonl")
        print(f"verdicts: {tmp_path / 'hostile-results.jsonl'}")

        failed = [r for r in run.results if not r.passed]
        by_what = Counter(
            (r.case.kind, r.case.mutation.field if r.case.mutation else "", r.outcome)
            for r in failed
        )
        lines = [
            f"{n:>4} x {kind} {path}: {outcome}"
            for (kind, path, outcome), n in by_what.most_common()
        ]
        examples = [
            f"{r.case.kind} {r.namespace}/{r.case.name} [{r.case.label}]: {r.outcome}"
            f"{' + Dataset ' + ', '.join(r.datasets) if r.datasets else ''}: {r.detail[:240]}"
            for r in failed[:60]
        ]
        assert hostile_env.operator.alive(), "the operator died"
        traceback_count = hostile_env.operator.log_text().count("Traceback (most recent")
        assert not failed and not problems and not traceback_count, (
            f"{len(failed)} of {len(run.results)} cases failed, {traceback_count} Tracebacks in "
            "the operator log:\n"
            + "\n".join(lines)
            + "\n\nexamples:\n"
            + "\n".join(examples)
            + ("\n\nother problems:\n" + "\n".join(problems[:30]) if problems else "")
        )
    finally:
        for name in namespaces.values():
            try:
                await core.delete_namespace(name)
            except ApiException as error:
                if error.status != 404:
                    raise
