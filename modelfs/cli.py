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

    written = write_manifests(Path(args.output))
    for path in written:
        print(f"wrote {path}")
    return 0


def _cmd_run(args: argparse.Namespace) -> int:
    from modelfs.operator import run

    if not args.all_namespaces and not args.namespace:
        print("modelfs run: give --namespace NS (repeatable) or --all-namespaces", file=sys.stderr)
        return 2
    return run(
        namespaces=list(args.namespace or []),
        clusterwide=bool(args.all_namespaces),
        health_port=args.health_port,
        metrics_port=args.metrics_port,
        log_format=args.log_format,
        verbose=args.verbose,
    )


def _cmd_controlplane(args: argparse.Namespace) -> int:
    from modelfs.testing.controlplane import cli_start

    return int(cli_start(args))


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
        "--health-port", type=int, default=8080, help="liveness endpoint /healthz (0: off)"
    )
    run.add_argument("--metrics-port", type=int, default=8081, help="Prometheus /metrics (0: off)")
    run.add_argument("--log-format", choices=["text", "json"], default="text")
    run.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    run.set_defaults(func=_cmd_run)

    manifests = sub.add_parser(
        "manifests", help="regenerate the CRD YAML in config/ from the api/ models"
    )
    manifests.add_argument(
        "--output", default="config", help="the config/ directory to write into (default: config)"
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
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    result: int = args.func(args)
    return result


if __name__ == "__main__":
    sys.exit(main())
