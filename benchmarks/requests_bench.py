"""Client CPU per API request: the generated client against `pkg.kube.rest.request`.

    python -m benchmarks.requests_bench [--requests 500] [--rounds 2]

Starts its own local control plane, installs modelfs's CRDs, creates one ModelSync and merge-
patches its status `--requests` times in a row with each path, as the operator does: a
ServiceAccount's Bearer token over TLS, one `kubernetes.aio` ApiClient (one connection pool).

- generated: `CustomObjectsApi.patch_namespaced_custom_object_status` (argument validation,
  `param_serialize` and `sanitize_for_serialization` of the body, `response_deserialize`);
- direct: `ObjectClient.patch_status` (pkg/kube/rest.py: json.dumps once, json.loads once).

Every patch writes (the status alternates), so each is a real round trip with the same body.
Prints this process's CPU time (`time.process_time`: user + system, all threads) per request,
and the wall time, per round; the rounds alternate the two paths so drift hits both.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from kubernetes.aio import client

from modelfs.api.v1 import GROUP, VERSION
from modelfs.pkg.kube.client import ObjectClient
from modelfs.testing.controlplane import ControlPlane, ControlPlaneError, find_binaries
from modelfs.testing.pytest_plugin import install_crds, new_api_client

REPO = Path(__file__).resolve().parents[1]
NAMESPACE, ACCOUNT, NAME, PLURAL = "bench", "operator", "sync", "modelsyncs"
WARMUP = 50


def status(i: int) -> dict[str, Any]:
    """A status that differs from the previous one: every patch is a write."""
    return {"phase": "PROCESSING" if i % 2 else "PENDING", "datasetRound": i % 2 + 1}


async def generated(api: client.ApiClient, count: int) -> None:
    custom = client.CustomObjectsApi(api)
    for i in range(count):
        await custom.patch_namespaced_custom_object_status(
            GROUP, VERSION, NAMESPACE, PLURAL, NAME, {"status": status(i)}, _request_timeout=30.0
        )


async def direct(api: client.ApiClient, count: int) -> None:
    objects = ObjectClient(api)
    for i in range(count):
        await objects.patch_status(PLURAL, NAMESPACE, NAME, status(i))


PATHS = {"generated": generated, "direct": direct}


async def measure(kubeconfig: Path, requests: int, rounds: int) -> dict[str, list[float]]:
    api = await new_api_client(kubeconfig)
    cpu: dict[str, list[float]] = {name: [] for name in PATHS}
    try:
        for run in PATHS.values():  # warm the pool and both code paths
            await run(api, WARMUP)
        for _ in range(rounds):
            for name, run in PATHS.items():
                cpu0, wall0 = time.process_time(), time.perf_counter()
                await run(api, requests)
                cpu_ms = (time.process_time() - cpu0) * 1000 / requests
                wall_ms = (time.perf_counter() - wall0) * 1000 / requests
                cpu[name].append(cpu_ms)
                print(f"  {name:9}  {cpu_ms:6.3f} ms CPU/request  {wall_ms:6.3f} ms wall/request")
    finally:
        await api.close()  # type: ignore[no-untyped-call]
    return cpu


def setup(cp: ControlPlane, workdir: Path) -> Path:
    """modelfs's CRDs, the ModelSync, and a cluster-admin ServiceAccount's kubeconfig."""

    async def crds() -> None:
        api = await new_api_client(cp.kubeconfig)
        try:
            await install_crds(api, *sorted((REPO / "config" / "crd" / "bases").glob("*.yaml")))
        finally:
            await api.close()  # type: ignore[no-untyped-call]

    asyncio.run(crds())
    kubeconfig = cp.service_account_kubeconfig(NAMESPACE, ACCOUNT, workdir / "sa.kubeconfig")
    for path, body in (
        (
            "/apis/rbac.authorization.k8s.io/v1/clusterrolebindings",
            {
                "metadata": {"name": "bench-operator"},
                "roleRef": {
                    "apiGroup": "rbac.authorization.k8s.io",
                    "kind": "ClusterRole",
                    "name": "cluster-admin",
                },
                "subjects": [{"kind": "ServiceAccount", "name": ACCOUNT, "namespace": NAMESPACE}],
            },
        ),
        (
            f"/apis/{GROUP}/{VERSION}/namespaces/{NAMESPACE}/{PLURAL}",
            {
                "apiVersion": f"{GROUP}/{VERSION}",
                "kind": "ModelSync",
                "metadata": {"name": NAME},
                "spec": {"modelRef": "mdl", "version": "v1"},
            },
        ),
    ):
        code, data = cp.request("POST", path, body)
        if code != 201:
            raise ControlPlaneError(f"POST {path}: {code} {data[:300]!r}")
    return kubeconfig


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.requests_bench")
    parser.add_argument("--requests", type=int, default=500, help="patches per path and round")
    parser.add_argument("--rounds", type=int, default=2, help="rounds of both paths")
    args = parser.parse_args(argv)
    try:
        binaries = find_binaries()
    except ControlPlaneError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    with (
        tempfile.TemporaryDirectory(prefix="modelfs-requests-") as tmp,
        ControlPlane(binaries) as cp,
    ):
        kubeconfig = setup(cp, Path(tmp))
        print(f"{args.requests} status merge patches of one ModelSync per path and round:")
        cpu = asyncio.run(measure(kubeconfig, args.requests, args.rounds))
    best = {name: min(values) for name, values in cpu.items()}
    print(
        f"best round: generated {best['generated']:.3f} ms, direct {best['direct']:.3f} ms CPU"
        f" per request ({1 - best['direct'] / best['generated']:.0%} less)"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
