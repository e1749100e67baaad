"""The `modelfs` command line: one subcommand per job, each importing its module lazily.

Lazy imports keep `modelfs manifests` free of kopf and the Kubernetes client, and keep
`modelfs --help` fast.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from modelfs import __version__


def _cmd_manifests(args: argparse.Namespace) -> int:
    from modelfs.manifests import write_manifests

    written = write_manifests(Path(args.output), Path(args.chart) if args.chart else None)
    for path in written:
        print(f"wrote {path}")
    return 0


def _cmd_run(args: argparse.Namespace) -> int:
    from modelfs.operator import run

    if not args.all_namespaces and not args.namespace:
        print("modelfs run: give --namespace NS (repeatable) or --all-namespaces", file=sys.stderr)
        return 2
    bundle = args.catalog_ca_bundle
    if bundle and not Path(bundle).is_file():  # refused at the start, not at every lookup
        print(f"modelfs run: --catalog-ca-bundle {bundle!r} is not a file", file=sys.stderr)
        return 2
    election = None
    if args.leader_elect:
        from modelfs.controllers.leader import Timings, own_namespace
        from modelfs.operator import Election

        try:
            timings = Timings(
                args.leader_elect_lease_duration,
                args.leader_elect_renew_deadline,
                args.leader_elect_retry_period,
            )
        except ValueError as error:
            print(f"modelfs run: {error}", file=sys.stderr)
            return 2
        election = Election(
            namespace=args.leader_election_namespace or own_namespace(),
            name=args.leader_election_id,
            timings=timings,
        )
    return run(
        namespaces=list(args.namespace or []),
        clusterwide=bool(args.all_namespaces),
        health_port=args.health_port,
        metrics_port=args.metrics_port,
        log_format=args.log_format,
        verbose=args.verbose,
        catalog=args.catalog == "on",
        catalog_ca_bundle=args.catalog_ca_bundle,
        catalog_modelscope_endpoint=args.catalog_modelscope_endpoint,
        election=election,
    )


def _cmd_controlplane(args: argparse.Namespace) -> int:
    try:
        from modelfs.testing.controlplane import cli_start
    except ModuleNotFoundError as error:  # the operator alone: no test harness
        return _no_harness(error)
    return int(cli_start(args))


def _cmd_sandbox(args: argparse.Namespace) -> int:
    try:
        from modelfs.testing.sandbox import cli
    except ModuleNotFoundError as error:
        return _no_harness(error)
    return cli(args)


def _no_harness(error: ModuleNotFoundError) -> int:
    if not (error.name or "").startswith("modelfs.testing"):
        raise error
    print(f"modelfs: {error}", file=sys.stderr)
    return 2


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="modelfs",
        description="Declarative LLM model weight management on Kubernetes (BaizeAI/dataset).",
    )
    parser.add_argument("--version", action="version", version=f"modelfs {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    run = sub.add_parser("run", help="run the operator against the current kubeconfig")
    scope = run.add_mutually_exclusive_group()
    scope.add_argument(
        "-n", "--namespace", action="append", help="watch this namespace (repeatable)"
    )
    scope.add_argument("-A", "--all-namespaces", action="store_true", help="watch every namespace")
    run.add_argument(
        "--health-port",
        type=int,
        default=8080,
        help="liveness /healthz and readiness /readyz (0: off)",
    )
    run.add_argument("--metrics-port", type=int, default=8081, help="Prometheus /metrics (0: off)")
    run.add_argument("--log-format", choices=["text", "json"], default="text")
    run.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    run.add_argument(
        "--catalog",
        choices=["on", "off"],
        default="on",
        help="look every version up in its source's own catalog before its download (off: for "
        "air-gapped clusters; ModelSource.spec.catalog: Disabled turns it off per source). "
        "Lookups honour HTTPS_PROXY, HTTP_PROXY and NO_PROXY",
    )
    run.add_argument(
        "--catalog-ca-bundle",
        metavar="PATH",
        default=None,
        help="PEM file of CA certificates trusted for catalog endpoints besides the system's "
        "(a private Hub mirror, MinIO)",
    )
    run.add_argument(
        "--catalog-modelscope-endpoint",
        metavar="URL",
        default=None,
        help="the ModelScope that MODEL_SCOPE lookups ask (default https://www.modelscope.cn, "
        "where the loader downloads from; a ModelSource has no endpoint for it). For a mirror "
        "the loader also uses, and for `modelfs sandbox`'s local ModelScope",
    )
    election = run.add_argument_group(
        "leader election",
        "several replicas, one writer: every replica watches and indexes, only the holder of a "
        "coordination.k8s.io Lease reconciles (controller-runtime's flags and defaults)",
    )
    election.add_argument(
        "--leader-elect",
        action=argparse.BooleanOptionalAction,
        default=False,
        help="elect a leader before reconciling (the installs turn it on; off: this process "
        "always reconciles, for development with a single process)",
    )
    election.add_argument(
        "--leader-election-namespace",
        default="",
        help="the Lease's namespace (default: $POD_NAMESPACE, else the ServiceAccount's, else "
        "modelfs-system)",
    )
    election.add_argument(
        "--leader-election-id", default="modelfs-operator", help="the Lease's name"
    )
    election.add_argument(
        "--leader-elect-lease-duration",
        type=float,
        default=15.0,
        metavar="SECONDS",
        help="how long a standby waits after the Lease last changed before taking it",
    )
    election.add_argument(
        "--leader-elect-renew-deadline",
        type=float,
        default=10.0,
        metavar="SECONDS",
        help="how long the leader tries to renew before it stops reconciling",
    )
    election.add_argument(
        "--leader-elect-retry-period",
        type=float,
        default=2.0,
        metavar="SECONDS",
        help="how often a standby tries to acquire and the leader renews",
    )
    run.set_defaults(func=_cmd_run)

    manifests = sub.add_parser(
        "manifests",
        help="regenerate config/ and the Helm chart's generated files (CRDs from api/, RBAC from "
        "controllers/rbac.py, the install settings from modelfs/install.py)",
    )
    manifests.add_argument(
        "--output", default="config", help="the config/ directory to write into (default: config)"
    )
    manifests.add_argument(
        "--chart",
        default=None,
        help="the chart directory to write into (default: charts/modelfs beside --output)",
    )
    manifests.set_defaults(func=_cmd_manifests)

    controlplane = sub.add_parser(
        "controlplane", help="run a local kube-apiserver + etcd + kube-controller-manager"
    )
    cp_sub = controlplane.add_subparsers(dest="controlplane_command", required=True)
    cp_start = cp_sub.add_parser("start", help="start the control plane until Ctrl-C")
    cp_start.add_argument(
        "--kubeconfig-out", default=None, help="also write the admin kubeconfig to this path"
    )
    cp_start.set_defaults(func=_cmd_controlplane)

    sandbox = sub.add_parser(
        "sandbox",
        help="modelfs at work with no cluster: a local control plane, the BaizeAI/dataset "
        "controller, the operator and config/samples, until Ctrl-C",
        description="Build the control plane binaries and the BaizeAI/dataset controller if "
        "missing, start etcd, kube-apiserver and kube-controller-manager, install the CRDs, run "
        "the Dataset controller (with a pod simulator in place of kubelets) and the operator "
        "(under its own ServiceAccount), apply config/samples and show them until settled; then "
        "stay up until Ctrl-C, which stops everything and removes the temp state.",
    )
    sandbox.add_argument(
        "--kubeconfig-out",
        metavar="PATH",
        default=None,
        help="also write the admin kubeconfig here (removed on exit unless --keep)",
    )
    samples = sandbox.add_mutually_exclusive_group()
    samples.add_argument(
        "--no-samples", action="store_true", help="apply nothing: an empty sandbox"
    )
    samples.add_argument(
        "--samples",
        metavar="DIR",
        default=None,
        help="the kustomization to apply (default: config/samples of this checkout)",
    )
    sandbox.add_argument(
        "--keep", action="store_true", help="keep the temp folder (logs, kubeconfigs, etcd data)"
    )
    sandbox.add_argument(
        "--fast",
        action="store_true",
        help="short downloads (1 s loader pods; near-instant with the fake) instead of "
        "realistic timings (tests, CI)",
    )
    sandbox.add_argument(
        "--dataset-controller",
        choices=["real", "fake"],
        default="real",
        help="real: the BaizeAI/dataset controller, built from its Go module, with a pod "
        "simulator (default); fake: modelfs's fake Dataset controller",
    )
    sandbox.add_argument(
        "--port",
        type=int,
        default=0,
        help="the kube-apiserver's port on 127.0.0.1 (default 0: any free port)",
    )
    sandbox.set_defaults(func=_cmd_sandbox)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    result: int = args.func(args)
    return result


if __name__ == "__main__":
    sys.exit(main())
