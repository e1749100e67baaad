"""The command line of the fake Dataset controller.

    python -m modelfs.testing.fake_dataset --kubeconfig PATH [--context C]
        [--namespace NS ...] [--sandbox] [--round-duration 300ms] [--fail-rounds 1,3|all]
        [--backoff-limit 4] [--no-storage] [--resync 10h] [--workers 8] [--log-level info]

It prints `ready` on stdout once its first lists are in (FakeDatasetController waits for that
line), logs to stderr, and stops cleanly on SIGINT or SIGTERM (exit code 0).
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal
import sys
from collections.abc import Sequence
from dataclasses import replace

from modelfs.testing.fake_dataset import logic
from modelfs.testing.fake_dataset.controller import SANDBOX_TIMINGS, FakeDataset, Settings
from modelfs.testing.kubeapi import new_api_client

READY_LINE = "ready"


def _duration(text: str) -> float:
    try:
        return logic.parse_duration(text)
    except logic.InjectionError as error:
        raise argparse.ArgumentTypeError(str(error)) from None


def _fail_rounds(text: str) -> logic.FailRounds:
    try:
        return logic.parse_fail_rounds(text)
    except logic.InjectionError as error:
        raise argparse.ArgumentTypeError(str(error)) from None


def build_parser() -> argparse.ArgumentParser:
    test = logic.Timings()
    parser = argparse.ArgumentParser(
        prog="python -m modelfs.testing.fake_dataset",
        description="A stand-in for the BaizeAI/dataset controller (dataset.baizeai.io/v1alpha1 "
        "Datasets) for tests and the sandbox. Per-Dataset or per-Namespace annotations "
        f"({', '.join(logic.ANNOTATIONS)}) override the timing flags.",
    )
    parser.add_argument("--kubeconfig", required=True, help="kubeconfig of the cluster")
    parser.add_argument("--context", default=None, help="kubeconfig context (default: current)")
    parser.add_argument(
        "--namespace",
        action="append",
        default=[],
        dest="namespaces",
        metavar="NS",
        help="watch only this namespace (repeatable; default: every namespace)",
    )
    parser.add_argument(
        "--sandbox",
        action="store_true",
        help=f"realistic defaults (loader Jobs of {SANDBOX_TIMINGS.round_duration}s) instead of "
        "the near-instant test defaults; the flags below still win",
    )
    parser.add_argument(
        "--round-duration",
        type=_duration,
        default=None,
        help=f"how long a loader Job runs (default {test.round_duration}s)",
    )
    parser.add_argument(
        "--fail-rounds",
        type=_fail_rounds,
        default=None,
        help="rounds whose Job fails: '1,3' or 'all' (default: none)",
    )
    parser.add_argument(
        "--backoff-limit",
        type=int,
        default=logic.DEFAULT_BACKOFF_LIMIT,
        help="spec.backoffLimit of the loader Jobs "
        f"(default {logic.DEFAULT_BACKOFF_LIMIT}, the Helm chart's)",
    )
    parser.add_argument(
        "--no-storage",
        dest="storage",
        action="store_false",
        help="do not bind PVCs nor release deleted ones (when the cluster has "
        "a provisioner and the PV controllers)",
    )
    parser.add_argument(
        "--resync",
        type=_duration,
        default=None,
        help="re-reconcile every Dataset this often (default: never; upstream 10h)",
    )
    parser.add_argument("--workers", type=int, default=8, help="concurrent reconciles")
    parser.add_argument(
        "--log-level", default="info", choices=["debug", "info", "warning", "error"]
    )
    return parser


def settings_from_args(args: argparse.Namespace) -> Settings:
    defaults = SANDBOX_TIMINGS if args.sandbox else logic.Timings()
    overrides = {
        "round_duration": args.round_duration,
        "fail_rounds": args.fail_rounds,
    }
    defaults = replace(defaults, **{k: v for k, v in overrides.items() if v is not None})
    return Settings(
        namespaces=tuple(args.namespaces),
        defaults=defaults,
        backoff_limit=args.backoff_limit,
        storage=args.storage,
        resync=args.resync or None,
        workers=args.workers,
    )


async def serve(args: argparse.Namespace) -> int:
    settings = settings_from_args(args)
    api = await new_api_client(args.kubeconfig, args.context)
    fake = FakeDataset(api, settings)
    loop = asyncio.get_running_loop()

    def on_signal(signum: signal.Signals) -> None:
        logging.getLogger("modelfs.fake_dataset").info("%s received: stopping", signum.name)
        fake.stop()

    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, on_signal, signum)
    try:
        run = asyncio.create_task(fake.run())
        ready = asyncio.create_task(fake.ready.wait())
        await asyncio.wait({run, ready}, return_when=asyncio.FIRST_COMPLETED)
        if ready.done():
            print(READY_LINE, flush=True)
        else:
            ready.cancel()
        await run
    finally:
        await api.close()  # type: ignore[no-untyped-call]
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(
        level=getattr(logging, args.log_level.upper()),
        stream=sys.stderr,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    logging.getLogger("aiohttp").setLevel(logging.WARNING)
    return asyncio.run(serve(args))
