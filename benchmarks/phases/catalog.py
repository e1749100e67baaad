"""catalog: `--catalog-syncs` ModelSyncs created at once whose versions are looked up in a
local catalog first (issue 20), and as many again on sources with `catalog: Disabled`, the same
run's comparison.

The catalogs are modelfs.testing.catalog's, in this process: a Hugging Face Hub (HUGGING_FACE
sources, the official `huggingface_hub` client in the operator) and a file server (HTTP
sources, one HEAD per lookup), filled with repositories and files of plausible sizes. Half the
Models are on the Hub source, half on the HTTP one; their versions share repositories (about
`CATALOG_SHARING` versions per repository), so the operator's cache and its sharing of lookups
in flight are exercised: the figure to beat is one lookup per distinct repository.

First the catalog-off burst (namespace bench-catalog-off: the same Models and versions, sources
with `catalog: Disabled`), then the catalog burst (bench-catalog). Figures: the catalog's own
(lookups from the operator's metrics, requests the catalog servers saw, lookups joined in
flight), the added time create -> Dataset ADDED against the catalog-off burst, writes and CPU
per ModelSync of both.
"""

from __future__ import annotations

import asyncio
from typing import Any

from benchmarks.common import CATALOG_NS, CATALOG_OFF_NS, OPERATOR_USER, log
from benchmarks.harness import Bench
from benchmarks.report import brief
from modelfs.api.v1 import GROUP, VERSION, Model, ModelSource
from modelfs.testing.catalog.files import FileServer
from modelfs.testing.catalog.hub import Catalog, HubServer, Repo

CATALOG_SHARING = 5
"""Versions per repository (at least: repositories are spread over the versions)."""
HUB_SOURCE, HTTP_SOURCE = "hub", "files"


def repositories(syncs: int) -> int:
    """Distinct repositories per source type."""
    return max(1, syncs // (2 * CATALOG_SHARING))


def start_servers(syncs: int) -> tuple[HubServer, FileServer]:
    catalog = Catalog()
    count = repositories(syncs)
    for k in range(count):
        catalog.add(
            Repo(
                f"bench/model-{k}",
                {
                    "config.json": 700 + k,
                    "tokenizer.json": 7_031_645,
                    "model-00001-of-00002.safetensors": 4_976_698_672 + k,
                    "model-00002-of-00002.safetensors": 3_500_000_000 + k,
                },
                parameters=8_030_261_248,
                architecture="LlamaForCausalLM",
                license="apache-2.0",
            )
        )
    hub = HubServer(catalog).start()
    files = FileServer()
    files.sizes.update({f"/weights/model-{k}.gguf": 4_920_000_000 + k for k in range(count)})
    files.start()
    return hub, files


def catalog_metrics(text: str) -> dict[str, float]:
    """The operator's catalog counters: lookups by answer, and lookups joined in flight."""
    found: dict[str, float] = {}
    for line in text.splitlines():
        if line.startswith("modelfs_catalog_lookups_total{"):
            answer = line.split('answer="', 1)[1].split('"', 1)[0]
            found[f"lookups {answer}"] = float(line.rsplit(" ", 1)[1])
        elif line.startswith("modelfs_catalog_shared_total "):
            found["shared"] = float(line.rsplit(" ", 1)[1])
    return found


async def prepare(
    bench: Bench, namespace: str, syncs: int, hub: str, files: str, *, disabled: bool
) -> list[tuple[str, str, str]]:
    """A namespace, a Hub source and an HTTP source on the local catalogs (`catalog:
    Disabled` with `disabled`), Models alternating between them, their versions spread over
    `repositories(syncs)` repositories per source; waits for the Models' statuses."""
    # at least two Models, so that both sources get half the ModelSyncs
    per_model = min(bench.args.versions_per_model, max(1, -(-syncs // 2)))
    await bench.create_namespace(namespace)
    policy = {"catalog": "Disabled"} if disabled else {}
    await bench.create(
        namespace,
        ModelSource.plural,
        HUB_SOURCE,
        {"type": "HUGGING_FACE", "config": {"endpoint": hub}, **policy},
    )
    await bench.create(
        namespace,
        ModelSource.plural,
        HTTP_SOURCE,
        {"type": "HTTP", "config": {"endpoint": files}, **policy},
    )
    count = repositories(syncs)
    triples = [(f"sync-{i}", f"m{i // per_model}", f"v{i % per_model}") for i in range(syncs)]
    models = sorted({m for _, m, _ in triples}, key=lambda m: int(m[1:]))
    for model in models:
        on_hub = int(model[1:]) % 2 == 0
        versions = {}
        for i, (_, m, v) in enumerate(triples):
            if m == model:
                k = i % count
                versions[v] = {"repo": f"bench/model-{k}" if on_hub else f"weights/model-{k}.gguf"}
        await bench.create(
            namespace,
            Model.plural,
            model,
            {"sourceRef": HUB_SOURCE if on_hub else HTTP_SOURCE, "versionConfigs": versions},
        )
    await bench.models_settled(namespace)
    return triples


async def catalog_statuses(bench: Bench, namespace: str) -> dict[str, int]:
    """How many ModelSyncs have a status.catalog with a size, and with a revision."""
    from modelfs.api.v1 import ModelSync

    listed = await bench.custom.list_namespaced_custom_object(
        GROUP, VERSION, namespace, ModelSync.plural
    )
    catalogs = [(item.get("status") or {}).get("catalog") or {} for item in listed["items"]]
    return {
        "with_size": sum(bool(c.get("size")) for c in catalogs),
        "with_revision": sum(bool(c.get("revision")) for c in catalogs),
    }


async def run(bench: Bench, results: dict[str, Any]) -> None:
    n = bench.args.catalog_syncs
    hub, files = await asyncio.to_thread(start_servers, n)
    try:
        log(f"catalog: {n} ModelSyncs at once on sources with catalog: Disabled (the comparison)")
        triples = await prepare(bench, CATALOG_OFF_NS, n, hub.url, files.url, disabled=True)
        off = await bench.run_syncs(CATALOG_OFF_NS, triples, None)
        log(f"  {brief(off)}")
        if hub.requests() or files.requests():
            log("  the catalog servers were asked during the catalog-off burst")
        off_requests = len(hub.requests()) + len(files.requests())

        log(
            f"catalog: {n} ModelSyncs at once looked up in a local Hub and file server "
            f"({repositories(n)} repositories each)"
        )
        before = catalog_metrics(await asyncio.to_thread(bench.procs.operator.metrics))
        hub.clear()
        files.clear()
        triples = await prepare(bench, CATALOG_NS, n, hub.url, files.url, disabled=False)
        on = await bench.run_syncs(CATALOG_NS, triples, None)
        after = catalog_metrics(await asyncio.to_thread(bench.procs.operator.metrics))
        log(f"  {brief(on)}")
        delta = {k: round(v - before.get(k, 0.0), 1) for k, v in after.items()}
        lookups = sum(v for k, v in delta.items() if k.startswith("lookups "))
        shared = delta.get("shared", 0.0)
        requests = {"hub": len(hub.requests()), "files": len(files.requests())}
        distinct = len(hub.catalog.repos) + len(files.sizes)
        on["catalog"] = {
            "repositories": distinct,
            "metrics": delta,
            "lookups": lookups,
            "lookups_per_sync": round(lookups / n, 3),
            "shared": shared,
            "kept_answers": n - lookups - shared,
            "catalog_requests": requests,
            "catalog_requests_per_sync": round(sum(requests.values()) / n, 3),
            "catalog_requests_during_off": off_requests,
            "statuses": await catalog_statuses(bench, CATALOG_NS),
        }
        results["catalog_off"] = off
        results["catalog"] = on
        c = on["catalog"]
        log(
            f"  {c['lookups']:g} lookups for {distinct} repositories ({c['lookups_per_sync']} per "
            f"ModelSync), {c['shared']:g} joined in flight, {c['kept_answers']:g} kept answers; "
            f"the servers saw {requests}"
        )
    finally:
        hub.stop()
        files.stop()
    log("deleting the catalog namespaces")
    if not await bench.delete_namespaces([CATALOG_OFF_NS, CATALOG_NS]):
        log("  namespaces still there after 120s; the next phases hold more objects")
    bench.syncs_alive = 0
    await bench.audit.quiet(OPERATOR_USER, seconds=2.0, within=30.0)
