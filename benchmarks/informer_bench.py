"""The watcher layer's CPU per ModelSync: kopf with modelfs's dispatcher, against a minimal
informer of modelfs's own (`kubernetes.aio`), both feeding the operator's index and event
handlers (issue 19, item 5).

    python -m benchmarks.informer_bench [--syncs 1000] [--runs 3] [--concurrency 50] [--keep]

It starts its own ControlPlane (etcd, kube-apiserver, kube-controller-manager) and installs the
CRDs. Each run measures both watchers, one after the other (the order alternates between
runs), each in a namespace of its own and a process of its own (`--child kopf|informer`):

- kopf: `kopf.operator` with the operator's registry (`modelfs.operator.register`) and
  `kopf_internals.install`, as `modelfs run` starts it;
- informer: per kind (namespaces, modelsources, models, modelsyncs, modelreferences,
  datasets) a list, then a watch from the list's resourceVersion (re-listed on 410 Gone), the
  operator's index functions and event handlers (taken from the same registry) called on each
  event; event handlers run only once every kind is listed and indexed, as kopf's rule.

In both, the operator's `Operator` receives the events, but its reconcile queues are not
started (and no writer exists): only the watch, index and enqueue path is measured. Once the
child has listed the namespace (a ModelSource, the Models) and is idle, the benchmark makes a
burst of `--syncs` ModelSyncs and their Datasets as the operator and the Dataset controller
would: per ModelSync, its creation, its Dataset's creation (labelled as modelfs's), the
Dataset's status PENDING then READY, and the ModelSync's status PENDING then READY (six watch
events). The child says when it has seen every ModelSync and Dataset READY; the figure is the
child's CPU time (user + system, /proc) from the burst's start to then, per ModelSync. Its CPU
while idle (over 5 s before the burst) is printed too: it is in the figure, for the burst's
duration.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import statistics
import sys
import time
from collections.abc import Collection, Iterator, Mapping
from pathlib import Path
from typing import Any, cast

import aiohttp

from modelfs.testing.controlplane import ControlPlane, ControlPlaneError, find_binaries
from modelfs.testing.pytest_plugin import DATASET_CRD, install_crds, new_api_client

REPO = Path(__file__).resolve().parents[1]
GROUP, VERSION = "model.samzong.dev", "v1"
DATASET_GROUP, DATASET_VERSION, DATASETS = "dataset.baizeai.io", "v1alpha1", "datasets"
MANAGED_BY_LABEL, MANAGED_BY = "app.kubernetes.io/managed-by", "modelfs"
VERSIONS_PER_MODEL = 50
KINDS = (  # group, version, plural, kind, namespaced
    ("", "v1", "namespaces", "Namespace", False),
    (GROUP, VERSION, "modelsources", "ModelSource", True),
    (GROUP, VERSION, "models", "Model", True),
    (GROUP, VERSION, "modelsyncs", "ModelSync", True),
    (GROUP, VERSION, "modelreferences", "ModelReference", True),
    (DATASET_GROUP, DATASET_VERSION, DATASETS, "Dataset", True),
)
WATCH_SECONDS = 270
IDLE_SECONDS = 5.0


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process so far (Linux)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


# ----------------------------------------------------------------------------- the child


def counting_operator(expect: int) -> Any:
    """The operator's `Operator` (queues not started), which tells the parent once every
    ModelSync and Dataset it was told to expect has been seen READY."""
    from modelfs.controllers.runtime import Runtime, body_key
    from modelfs.operator import Operator

    class Counting(Operator):
        def __init__(self) -> None:
            super().__init__(Runtime(writer=cast(Any, None)))  # no reconcile runs: no writes
            self.events = 0
            self.ready: set[tuple[str, Any]] = set()
            self.told = False

        def on_event(self, kind: Any, body: Mapping[str, Any], *args: Any, **kw: Any) -> None:
            super().on_event(kind, body, *args, **kw)
            self.events += 1
            plural = kind.plural
            if plural in ("modelsyncs", DATASETS):
                key = (plural, body_key(body))
                if (body.get("status") or {}).get("phase") == "READY":
                    self.ready.add(key)
                else:
                    self.ready.discard(key)
                if not self.told and len(self.ready) >= 2 * expect:
                    self.told = True
                    print(f"done {self.events}", flush=True)

    return Counting()


async def child_kopf(namespace: str, expect: int) -> None:
    import kopf

    from modelfs import kopf_internals, operator

    async def startup(settings: kopf.OperatorSettings, memo: kopf.Memo, **_: Any) -> None:
        operator.configure_settings(settings)
        memo.operator = counting_operator(expect)
        print("started", flush=True)

    operator.startup = startup  # no queues, no API client
    registry = operator.register(kopf.OperatorRegistry())
    kopf_internals.install(registry)
    await kopf.operator(
        registry=registry, namespaces=[namespace], standalone=True, memo=kopf.Memo()
    )


class Store(Collection[Any]):
    """The values one index key holds, one per object (as kopf's `Store`)."""

    def __init__(self) -> None:
        self.items: dict[tuple[str, str], Any] = {}

    def __len__(self) -> int:
        return len(self.items)

    def __iter__(self) -> Iterator[Any]:
        return iter(self.items.values())

    def __contains__(self, value: object) -> bool:
        return value in self.items.values()


class Index(dict[Any, Store]):
    """An index: key -> Store, with each object's keys remembered to replace them."""

    def __init__(self) -> None:
        super().__init__()
        self.keys_of: dict[tuple[str, str], list[Any]] = {}

    def discard(self, obj: tuple[str, str]) -> None:
        for key in self.keys_of.pop(obj, ()):
            store = self[key]
            del store.items[obj]
            if not store.items:
                del self[key]

    def replace(self, obj: tuple[str, str], entries: Mapping[Any, Any]) -> None:
        self.discard(obj)
        for key, value in entries.items():
            self.setdefault(key, Store()).items[obj] = value
        self.keys_of[obj] = list(entries)


class Informer:
    """List, then watch from the list's resourceVersion, per kind; the registry's index
    functions and event handlers on each event."""

    def __init__(self, api: Any, registry: Any, memo: Any, namespace: str) -> None:
        from modelfs import kopf_internals

        self.api, self.memo, self.namespace = api, memo, namespace
        self.kinds = []
        self.indices: dict[str, Index] = {}
        for group, version, plural, kind, namespaced in KINDS:
            resource = kopf_internals.Resource(
                group, version, plural, kind=kind, namespaced=namespaced
            )
            found = kopf_internals.handlers_of(registry, resource)
            for index in found.indexes:
                self.indices[index.id] = Index()
            self.kinds.append((group, version, plural, namespaced, found))
        self.known: dict[str, dict[tuple[str, str], dict[str, Any]]] = {}

    def path(self, group: str, version: str, plural: str, namespaced: bool) -> str:
        from modelfs.pkg.kube.rest import object_path

        if namespaced:
            return object_path(group, version, plural, self.namespace)
        return f"/apis/{group}/{version}/{plural}" if group else f"/api/v1/{plural}"

    async def index(self, found: Any, type_: str | None, raw: dict[str, Any]) -> Any:
        import kopf

        body = kopf.Body(cast(Any, raw))
        meta = raw["metadata"]
        obj = (meta.get("namespace") or "", meta["name"])
        event = {"type": type_, "object": raw}
        for index in found.indexes:
            if type_ == "DELETED" or not labels_match(index.labels, raw):
                self.indices[index.id].discard(obj)
            else:
                entries = await index.fn(body=body, spec=body.spec, event=event)
                if entries is not None:
                    self.indices[index.id].replace(obj, entries)
        return body, event

    async def notify(self, found: Any, body: Any, event: dict[str, Any]) -> None:
        for handler in found.events:
            if labels_match(handler.labels, event["object"]):
                await handler.fn(body=body, event=event, memo=self.memo, **self.indices)

    async def list(
        self, kind: tuple[Any, ...]
    ) -> tuple[str, list[dict[str, Any]], list[dict[str, Any]]]:
        from modelfs.pkg.kube.rest import request

        group, version, plural, namespaced, _ = kind
        _, listed = await request(self.api, "GET", self.path(group, version, plural, namespaced))
        assert listed is not None
        known = self.known.setdefault(plural, {})
        items = listed["items"]
        seen = {(i["metadata"].get("namespace") or "", i["metadata"]["name"]) for i in items}
        gone = [body for key, body in known.items() if key not in seen]
        known.clear()
        for item in items:
            known[(item["metadata"].get("namespace") or "", item["metadata"]["name"])] = item
        # what went while no watch was open (a re-list) is told as a deletion
        return listed["metadata"]["resourceVersion"], gone, items

    async def run(self) -> None:
        # kopf's rule: no event handler runs before every listed object of every kind is indexed
        listed = await asyncio.gather(*(self.list(kind) for kind in self.kinds))
        calls = []
        for kind, (_, _, items) in zip(self.kinds, listed, strict=True):
            for item in items:
                calls.append((kind[4], *(await self.index(kind[4], None, item))))
        for found, body, event in calls:
            await self.notify(found, body, event)
        print("started", flush=True)
        await asyncio.gather(
            *(self.watch(kind, rv) for kind, (rv, _, _) in zip(self.kinds, listed, strict=True))
        )

    async def watch(self, kind: tuple[Any, ...], rv: str) -> None:
        group, version, plural, namespaced, found = kind
        known = self.known[plural]
        path = self.path(group, version, plural, namespaced)
        while True:
            query = {
                "watch": "true",
                "resourceVersion": rv,
                "allowWatchBookmarks": "true",
                "timeoutSeconds": str(WATCH_SECONDS),
            }
            gone = False
            async for event in stream(self.api, path, query):
                type_, raw = event["type"], event["object"]
                if type_ == "BOOKMARK":
                    rv = raw["metadata"]["resourceVersion"]
                    continue
                if type_ == "ERROR":
                    gone = raw.get("code") == 410
                    break
                rv = raw["metadata"]["resourceVersion"]
                key = (raw["metadata"].get("namespace") or "", raw["metadata"]["name"])
                if type_ == "DELETED":
                    known.pop(key, None)
                else:
                    known[key] = raw
                await self.notify(found, *(await self.index(found, type_, raw)))
            if gone:  # the resourceVersion is too old: list again, then watch from there
                rv, gone_items, items = await self.list(kind)
                for type_, item in [("DELETED", i) for i in gone_items] + [
                    (None, i) for i in items
                ]:
                    await self.notify(found, *(await self.index(found, type_, item)))


def labels_match(filter_: Mapping[str, Any] | None, raw: Mapping[str, Any]) -> bool:
    if not filter_:
        return True
    labels = raw.get("metadata", {}).get("labels") or {}
    return all(labels.get(key) == value for key, value in filter_.items())


async def stream(api: Any, path: str, query: dict[str, str]) -> Any:
    """The events of one watch request, decoded, until the server ends it."""
    from urllib.parse import quote, urlencode

    headers: dict[str, str] = {**api.default_headers, "Accept": "application/json"}
    queries = list(query.items())
    await api.update_params_for_auth(headers, queries, ["BearerToken"], path, "GET", None)
    url = api.configuration.host + path + "?" + urlencode(queries, quote_via=quote)
    timeout = aiohttp.ClientTimeout(total=None, sock_read=WATCH_SECONDS + 30)
    response = await api.call_api("GET", url, headers, None, None, _request_timeout=timeout)
    try:
        if response.status != 200:
            raise RuntimeError(f"GET {path}: {response.status} {await response.read()!r}")
        async for line in response.response.content:
            if line.strip():
                yield json.loads(line)
    finally:
        response.response.release()


async def child_informer(namespace: str, expect: int) -> None:
    import kopf

    from modelfs import operator

    registry = operator.register(kopf.OperatorRegistry())
    api = await operator.new_api_client()
    memo = kopf.Memo()
    memo.operator = counting_operator(expect)
    try:
        await Informer(api, registry, memo, namespace).run()
    finally:
        await api.close()  # type: ignore[no-untyped-call]


def child(variant: str, namespace: str, expect: int) -> int:
    import logging

    logging.basicConfig(level=logging.WARNING)
    run = child_kopf if variant == "kopf" else child_informer
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(run(namespace, expect))
    return 0


# ----------------------------------------------------------------------------- the parent


async def prepare(api: Any, namespace: str, syncs: int) -> list[tuple[str, str, str]]:
    """A namespace, a ModelSource and Models with enough versions for `syncs` ModelSyncs."""
    from modelfs.pkg.kube.rest import object_path, request

    await request(api, "POST", "/api/v1/namespaces", {"metadata": {"name": namespace}})
    await request(
        api,
        "POST",
        object_path(GROUP, VERSION, "modelsources", namespace),
        {"apiVersion": f"{GROUP}/{VERSION}", "kind": "ModelSource", "metadata": {"name": "src"}}
        | {"spec": {"type": "HTTP"}},
    )
    triples = [
        (f"sync-{i}", f"m{i // VERSIONS_PER_MODEL}", f"v{i % VERSIONS_PER_MODEL}")
        for i in range(syncs)
    ]
    for model in sorted({m for _, m, _ in triples}):
        versions = {
            v: {"repo": f"https://files.example.com/{model}/{v}/"}
            for _, m, v in triples
            if m == model
        }
        body = {"apiVersion": f"{GROUP}/{VERSION}", "kind": "Model", "metadata": {"name": model}}
        body["spec"] = {"sourceRef": "src", "versionConfigs": versions}
        await request(api, "POST", object_path(GROUP, VERSION, "models", namespace), body)
    return triples


async def one_sync(api: Any, namespace: str, name: str, model: str, version: str) -> None:
    """What the operator and the Dataset controller write for one ModelSync."""
    from modelfs.pkg.kube.rest import MERGE_PATCH, object_path, request

    syncs = object_path(GROUP, VERSION, "modelsyncs", namespace)
    datasets = object_path(DATASET_GROUP, DATASET_VERSION, DATASETS, namespace)
    dataset = f"{model}-{version}"
    _, created = await request(
        api,
        "POST",
        syncs,
        {
            "apiVersion": f"{GROUP}/{VERSION}",
            "kind": "ModelSync",
            "metadata": {"name": name},
            "spec": {"modelRef": model, "version": version},
        },
    )
    assert created is not None
    owner = {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": "ModelSync",
        "name": name,
        "uid": created["metadata"]["uid"],
        "controller": True,
    }
    await request(
        api,
        "POST",
        datasets,
        {
            "apiVersion": f"{DATASET_GROUP}/{DATASET_VERSION}",
            "kind": "Dataset",
            "metadata": {
                "name": dataset,
                "labels": {MANAGED_BY_LABEL: MANAGED_BY},
                "ownerReferences": [owner],
            },
            "spec": {
                "source": {"type": "HTTP", "uri": f"https://files.example.com/{model}/{version}/"}
            },
        },
    )
    for phase in ("PENDING", "READY"):
        status = {"status": {"phase": phase}}
        await request(api, "PATCH", f"{datasets}/{dataset}/status", status, MERGE_PATCH)
        status = {"status": {"phase": phase, "datasetName": dataset}}
        await request(api, "PATCH", f"{syncs}/{name}/status", status, MERGE_PATCH)


async def wait_idle(pid: int, *, seconds: float = 2.0, within: float = 120.0) -> None:
    """Until the process has used under 1% of a CPU for `seconds` in a row."""
    deadline = time.monotonic() + within
    quiet, last = 0.0, cpu_seconds(pid)
    while time.monotonic() < deadline:
        await asyncio.sleep(0.5)
        now = cpu_seconds(pid)
        quiet = quiet + 0.5 if now - last < 0.005 else 0.0
        last = now
        if quiet >= seconds:
            return
    raise RuntimeError(f"process {pid} never went idle")


async def measure(
    cp: ControlPlane, variant: str, namespace: str, syncs: int, concurrency: int
) -> dict[str, Any]:
    api = await new_api_client(cp.kubeconfig)
    try:
        triples = await prepare(api, namespace, syncs)
        proc = await asyncio.create_subprocess_exec(
            *(sys.executable, "-m", "benchmarks.informer_bench", "--child", variant),
            *("--namespace", namespace, "--expect", str(syncs)),
            stdout=asyncio.subprocess.PIPE,
            cwd=REPO,
            env={**os.environ, "KUBECONFIG": str(cp.kubeconfig)},
        )
        assert proc.stdout is not None
        try:
            line = await asyncio.wait_for(proc.stdout.readline(), 120)
            if line.strip() != b"started":
                raise RuntimeError(f"{variant}: did not start ({line!r})")
            await wait_idle(proc.pid)
            # what the watcher costs doing nothing, to tell apart from the burst's figure
            idle0 = cpu_seconds(proc.pid)
            await asyncio.sleep(IDLE_SECONDS)
            idle = (cpu_seconds(proc.pid) - idle0) / IDLE_SECONDS
            cpu0, t0 = cpu_seconds(proc.pid), time.monotonic()
            in_flight = asyncio.Semaphore(concurrency)

            async def bounded(triple: tuple[str, str, str]) -> None:
                async with in_flight:
                    await one_sync(api, namespace, *triple)

            await asyncio.gather(*(bounded(t) for t in triples))
            written = time.monotonic() - t0
            line = await asyncio.wait_for(proc.stdout.readline(), 300)
            cpu1, t1 = cpu_seconds(proc.pid), time.monotonic()
            if not line.startswith(b"done "):
                raise RuntimeError(f"{variant}: {line!r}")
            events = int(line.split()[1])
        finally:
            with contextlib.suppress(ProcessLookupError):
                proc.terminate()
            await proc.wait()
    finally:
        await api.close()  # type: ignore[no-untyped-call]
    return {
        "variant": variant,
        "cpu_s": round(cpu1 - cpu0, 3),
        "ms_per_sync": round((cpu1 - cpu0) / syncs * 1000, 2),
        "events": events,
        "writes_s": round(written, 2),
        "seen_s": round(t1 - t0, 2),
        "idle_ms_per_s": round(idle * 1000, 2),
    }


async def served(api: Any, within: float = 60.0) -> None:
    """Until every kind can be listed: a new CRD's storage answers 429 while it initialises."""
    from modelfs.pkg.kube.errors import ApiError
    from modelfs.pkg.kube.rest import request

    deadline = time.monotonic() + within
    for group, version, plural, _, _ in KINDS:
        path = f"/apis/{group}/{version}/{plural}" if group else f"/api/v1/{plural}"
        while True:
            try:
                await request(api, "GET", path, query={"limit": "1"})
                break
            except ApiError:
                if time.monotonic() > deadline:
                    raise
                await asyncio.sleep(0.5)


async def bench(args: argparse.Namespace, cp: ControlPlane) -> list[dict[str, Any]]:
    api = await new_api_client(cp.kubeconfig)
    try:
        crds = sorted((REPO / "config" / "crd" / "bases").glob("*.yaml"))
        await install_crds(api, *crds, DATASET_CRD)
        await served(api)
    finally:
        await api.close()  # type: ignore[no-untyped-call]
    results = []
    for run in range(args.runs):
        order = ("kopf", "informer") if run % 2 == 0 else ("informer", "kopf")
        for variant in order:
            found = await measure(cp, variant, f"{variant}-{run}", args.syncs, args.concurrency)
            found["run"] = run
            log(json.dumps(found))
            results.append(found)
    return results


def report(results: list[dict[str, Any]], syncs: int) -> str:
    lines = [
        f"watcher CPU per ModelSync, {syncs} ModelSyncs and their Datasets at once "
        f"(six watch events each), reconcile queues not running",
        f"{'run':>3}  {'watcher':<8}  {'CPU s':>6}  {'ms/ModelSync':>12}  {'events':>6}  "
        f"{'writes s':>8}  {'seen s':>6}  {'idle ms/s':>9}",
    ]
    for r in results:
        lines.append(
            f"{r['run']:>3}  {r['variant']:<8}  {r['cpu_s']:>6.2f}  {r['ms_per_sync']:>12.2f}  "
            f"{r['events']:>6}  {r['writes_s']:>8.2f}  {r['seen_s']:>6.2f}  "
            f"{r['idle_ms_per_s']:>9.2f}"
        )
    for variant in ("kopf", "informer"):
        figures = [r["ms_per_sync"] for r in results if r["variant"] == variant]
        lines.append(
            f"{variant}: median {statistics.median(figures):.2f} ms/ModelSync "
            f"(min {min(figures):.2f}, max {max(figures):.2f})"
        )
    return "\n".join(lines)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--syncs", type=int, default=1000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--concurrency", type=int, default=50, help="requests in flight")
    parser.add_argument("--keep", action="store_true", help="keep the control plane's files")
    parser.add_argument("--json", type=Path, help="write the figures to this file")
    parser.add_argument("--child", choices=("kopf", "informer"), help=argparse.SUPPRESS)
    parser.add_argument("--namespace", help=argparse.SUPPRESS)
    parser.add_argument("--expect", type=int, help=argparse.SUPPRESS)
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.child:
        return child(args.child, args.namespace, args.expect)
    try:
        binaries = find_binaries()
    except ControlPlaneError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    cp = ControlPlane(binaries, keep_workdir=args.keep)
    try:
        log("starting the control plane")
        cp.start()
        results = asyncio.run(bench(args, cp))
    except KeyboardInterrupt:
        return 130
    finally:
        cp.stop()
    print(report(results, args.syncs), flush=True)
    if args.json:
        args.json.write_text(json.dumps(results, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
