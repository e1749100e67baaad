"""Client CPU per API request: the generated client against `pkg.kube.rest.request`.

    python -m benchmarks.requests_bench [--requests 500] [--rounds 2] [--profile FILE]

Starts its own local control plane, installs modelfs's CRDs, creates one ModelSync, and sends
`--requests` requests in a row with each path, as the operator does: a ServiceAccount's Bearer
token over TLS, one `kubernetes.aio` ApiClient (one connection pool, `trust_env` off as in
modelfs/operator.py). Two cases:

- status merge patch: generated `CustomObjectsApi.patch_namespaced_custom_object_status`
  (pydantic argument validation, `param_serialize` with `sanitize_for_serialization` of the
  body, `response_deserialize`) against `ObjectClient.patch_status` (pkg/kube/rest.py: the body
  json.dumps()ed once, the answer json.loads()ed once). The status alternates: each is a write.
- Event create: `CoreV1Api.create_namespaced_event` of the same dict against
  `ObjectClient.create_event`.

Prints this process's CPU time (`time.process_time`: user + system, all threads) per request,
and the wall time, per round (the rounds alternate the two paths so drift hits both), then the
best round and the mean of the rounds of each. `--profile FILE` also writes and prints a
cProfile of each.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from kubernetes.aio import client

from modelfs.api.v1 import GROUP, VERSION, ModelSync
from modelfs.pkg.kube.client import ObjectClient, event_body
from modelfs.testing.controlplane import ControlPlane, ControlPlaneError, find_binaries
from modelfs.testing.pytest_plugin import install_crds, new_api_client

REPO = Path(__file__).resolve().parents[1]
NAMESPACE, ACCOUNT, NAME, PLURAL = "bench", "operator", "sync", ModelSync.plural
WARMUP = 50


def status(i: int) -> dict[str, Any]:
    """A status that differs from the previous one: every patch is a write."""
    return {"phase": "PROCESSING" if i % 2 else "PENDING", "datasetRound": i % 2 + 1}


SYNC: dict[str, Any] = {}  # the ModelSync as created (the Events' involved object)


async def status_generated(api: client.ApiClient, count: int) -> None:
    custom = client.CustomObjectsApi(api)
    for i in range(count):
        await custom.patch_namespaced_custom_object_status(
            GROUP, VERSION, NAMESPACE, PLURAL, NAME, {"status": status(i)}, _request_timeout=30.0
        )


async def status_direct(api: client.ApiClient, count: int) -> None:
    objects = ObjectClient(api)
    for i in range(count):
        await objects.patch_status(PLURAL, NAMESPACE, NAME, status(i))


async def event_generated(api: client.ApiClient, count: int) -> None:
    core = client.CoreV1Api(api)
    for i in range(count):
        # a dict, not a V1Event: what the generated client is handed in the operator's place
        body: Any = event_body(SYNC, "Normal", "Bench", f"event {i}")
        await core.create_namespaced_event(NAMESPACE, body, _request_timeout=30.0)


async def event_direct(api: client.ApiClient, count: int) -> None:
    objects = ObjectClient(api)
    for i in range(count):
        await objects.create_event(SYNC, "Normal", "Bench", f"event {i}")


Run = Callable[[client.ApiClient, int], Awaitable[None]]
CASES: dict[str, dict[str, Run]] = {
    "status merge patch": {"generated": status_generated, "direct": status_direct},
    "Event create": {"generated": event_generated, "direct": event_direct},
}


async def new_client(kubeconfig: Path) -> client.ApiClient:
    api = await new_api_client(kubeconfig)
    # As the operator's client (modelfs/operator.py new_api_client): no proxy lookup per request.
    api.configuration.client_session_kwargs = {"trust_env": False}
    return api


async def measure(
    kubeconfig: Path, requests: int, rounds: int
) -> dict[str, dict[str, list[float]]]:
    """Each round's CPU ms per request, by case and path."""
    api = await new_client(kubeconfig)
    cpu: dict[str, dict[str, list[float]]] = {case: {} for case in CASES}
    try:
        created: Any = await client.CustomObjectsApi(api).get_namespaced_custom_object(
            GROUP, VERSION, NAMESPACE, PLURAL, NAME
        )
        SYNC.update(created)
        for case, paths in CASES.items():
            print(f"{requests} x {case}, one ModelSync, per path and round:")
            for run in paths.values():  # warm the pool and both code paths
                await run(api, WARMUP)
            for _ in range(rounds):
                for name, run in paths.items():
                    cpu0, wall0 = time.process_time(), time.perf_counter()
                    await run(api, requests)
                    cpu_ms = (time.process_time() - cpu0) * 1000 / requests
                    wall_ms = (time.perf_counter() - wall0) * 1000 / requests
                    cpu[case].setdefault(name, []).append(cpu_ms)
                    print(f"  {name:9}  {cpu_ms:6.3f} ms CPU/request  {wall_ms:6.3f} ms wall")
    finally:
        await api.close()  # type: ignore[no-untyped-call]
    return cpu


def profile(kubeconfig: Path, requests: int, out: Path) -> None:
    """Each case and path under cProfile, the top functions of each printed."""
    import cProfile
    import pstats

    async def run(case: str, name: str) -> None:
        api = await new_client(kubeconfig)
        try:
            await CASES[case][name](api, WARMUP)
            profiler = cProfile.Profile()
            profiler.enable()
            await CASES[case][name](api, requests)
            profiler.disable()
        finally:
            await api.close()  # type: ignore[no-untyped-call]
        path = out.with_suffix(f".{case.split()[0].lower()}-{name}.prof")
        profiler.dump_stats(path)
        print(f"\n{case}, {name}: {path}")
        pstats.Stats(str(path)).sort_stats("cumulative").print_stats(25)

    for case, paths in CASES.items():
        for name in paths:
            asyncio.run(run(case, name))


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
    parser.add_argument(
        "--requests", type=int, default=500, help="requests per case, path and round"
    )
    parser.add_argument("--rounds", type=int, default=2, help="rounds of both paths")
    parser.add_argument("--profile", type=Path, help="also profile each path into FILE.*.prof")
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
        cpu = asyncio.run(measure(kubeconfig, args.requests, args.rounds))
        if args.profile:
            profile(kubeconfig, args.requests, args.profile)
    print("client CPU per request, best round / mean of the rounds:")
    for case, paths in cpu.items():
        generated, direct = paths["generated"], paths["direct"]
        best_g, best_d = min(generated), min(direct)
        mean_g, mean_d = statistics.fmean(generated), statistics.fmean(direct)
        print(
            f"  {case:18}  generated {best_g:.3f} / {mean_g:.3f} ms"
            f"  direct {best_d:.3f} / {mean_d:.3f} ms"
            f"  ({1 - best_d / best_g:.0%} / {1 - mean_d / mean_g:.0%} less)"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
