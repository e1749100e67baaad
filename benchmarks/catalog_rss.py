"""The operator's memory with and without an S3 source (issue 20: botocore, the S3 client, is
imported on the first S3 lookup only, so an operator with no S3 source pays nothing for it).

    python -m benchmarks.catalog_rss [--settle 10] [--samples 5]

On a local control plane, three operators in turn, each fresh: one with an HTTP ModelSource,
Model and ModelSync on a local file server; one with that and the same on a local Hugging Face
Hub; one with both and the same on moto's S3 server. Each operator's
VmRSS is read once every ModelSync has its catalog answer and `--settle` seconds have passed
(the median of `--samples` reads a second apart). No Dataset controller runs: the figure is the
operator's, with its lookups made.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from benchmarks.cluster import install
from benchmarks.common import mib
from modelfs.testing.catalog.files import FileServer
from modelfs.testing.catalog.hub import Catalog, HubServer, Repo
from modelfs.testing.catalog.s3 import S3Server
from modelfs.testing.controlplane import ControlPlane, find_binaries
from modelfs.testing.operator import OperatorProcess

GROUP_PATH = "/apis/model.samzong.dev/v1"


def objects(
    namespace: str, hub: str | None, files: str, s3: str | None
) -> list[tuple[str, dict[str, Any]]]:
    """(collection path, body) of the namespace's ModelSources, Models and ModelSyncs."""
    crd = f"{GROUP_PATH}/namespaces/{namespace}"
    sources: dict[str, tuple[dict[str, Any], str]] = {
        "files": ({"type": "HTTP", "config": {"endpoint": files}}, "weights/model.gguf"),
    }
    if hub is not None:
        sources["hub"] = ({"type": "HUGGING_FACE", "config": {"endpoint": hub}}, "bench/model")
    if s3 is not None:
        sources["s3"] = (
            {"type": "S3", "config": {"provider": "MINIO", "endpoint": s3}},
            "models/llama",
        )
    out: list[tuple[str, dict[str, Any]]] = [
        ("/api/v1/namespaces", {"metadata": {"name": namespace}})
    ]
    for name, (spec, repo) in sources.items():
        out.append((f"{crd}/modelsources", _obj("ModelSource", name, spec)))
        out.append(
            (
                f"{crd}/models",
                _obj("Model", name, {"sourceRef": name, "versionConfigs": {"v1": {"repo": repo}}}),
            )
        )
        out.append(
            (f"{crd}/modelsyncs", _obj("ModelSync", name, {"modelRef": name, "version": "v1"}))
        )
    return out


def _obj(kind: str, name: str, spec: dict[str, Any]) -> dict[str, Any]:
    return {
        "apiVersion": "model.samzong.dev/v1",
        "kind": kind,
        "metadata": {"name": name},
        "spec": spec,
    }


def wait_catalogs(cp: ControlPlane, namespace: str, count: int, within: float = 60.0) -> bool:
    import json

    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        status, body = cp.request("GET", f"{GROUP_PATH}/namespaces/{namespace}/modelsyncs")
        if status == 200:
            items = json.loads(body)["items"]
            done = [i for i in items if ((i.get("status") or {}).get("catalog") or {}).get("size")]
            if len(done) == count:
                return True
        time.sleep(0.5)
    return False


def measure(
    cp: ControlPlane,
    logs: Path,
    label: str,
    namespace: str,
    created: list[tuple[str, dict[str, Any]]],
    args: argparse.Namespace,
) -> dict[str, Any]:
    import json

    operator = OperatorProcess(cp.kubeconfig, log_path=logs / f"operator-{label}.log")
    operator.start()
    try:
        for path, body in created:
            status, data = cp.request("POST", path, json.dumps(body).encode())
            if status not in (200, 201):
                raise RuntimeError(f"POST {path}: {status} {data[:300]!r}")
        syncs = sum(1 for path, _ in created if path.endswith("/modelsyncs"))
        answered = wait_catalogs(cp, namespace, syncs)
        time.sleep(args.settle)
        samples = []
        for _ in range(args.samples):
            samples.append(operator.rss_bytes())
            time.sleep(1.0)
        return {
            "label": label,
            "syncs": syncs,
            "answered": answered,
            "rss": int(statistics.median(samples)),
            "samples": samples,
        }
    finally:
        operator.stop()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.catalog_rss", description=__doc__)
    parser.add_argument("--settle", type=float, default=10.0)
    parser.add_argument("--samples", type=int, default=5)
    args = parser.parse_args(argv)
    logs = Path(tempfile.mkdtemp(prefix="modelfs-catalog-rss-"))
    catalog = Catalog()
    catalog.add(Repo("bench/model", {"config.json": 700, "model.safetensors": 4_976_698_672}))
    hub = HubServer(catalog).start()
    files = FileServer()
    files.sizes["/weights/model.gguf"] = 4_920_000_000
    files.start()
    s3 = S3Server().start()
    s3.put("models", {"llama/config.json": b"{}", "llama/model.safetensors": b"\0" * 1024})
    cp = ControlPlane(find_binaries())
    try:
        cp.start()
        asyncio.run(install(cp))
        results = [
            measure(cp, logs, label, f"rss-{i}", objects(f"rss-{i}", *urls), args)
            for i, (label, urls) in enumerate(
                [
                    ("HTTP", (None, files.url, None)),
                    ("HTTP + Hub", (hub.url, files.url, None)),
                    ("HTTP + Hub + S3", (hub.url, files.url, s3.url)),
                ]
            )
        ]
    finally:
        cp.stop()
        hub.stop()
        files.stop()
        s3.stop()
    for r in results:
        print(
            f"{r['label']:18} {r['syncs']} ModelSyncs, catalog answered: {r['answered']}; "
            f"VmRSS {mib(r['rss'])} (samples {[round(s / 2**20, 1) for s in r['samples']]} MiB)"
        )
    print(f"a Hub source adds {(results[1]['rss'] - results[0]['rss']) / 2**20:+.1f} MiB")
    print(f"an S3 source adds {(results[2]['rss'] - results[1]['rss']) / 2**20:+.1f} MiB")
    print(f"logs: {logs}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
