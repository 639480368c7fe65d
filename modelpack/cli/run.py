"""`modelpack run`: a ModelPack and a LoadTest on this machine, no cluster (like `k6 run` next to the k6 operator)."""

from __future__ import annotations

import argparse
from pathlib import Path

from rich.console import Console

from modelpack.api.loading import InvalidObjectError
from modelpack.cli.errors import CliError
from modelpack.loadgen.errors import LoadgenError
from modelpack.local.discovery import DiscoveryError
from modelpack.local.objects import ObjectsError
from modelpack.local.runner import EXIT_RUN_FAILED, RunOptions, run_local
from modelpack.local.servers import ServerStartError
from modelpack.local.store import StoreError

EPILOG = """\
exit codes:
  0    the LoadTest succeeded: the SLO was met, or it sets none, and at most half the requests failed
  1    the LoadTest failed: the SLO was missed, or most requests failed (the reason is printed and in
       results.json)
  2    bad input: invalid YAML, a LoadTest whose ModelPack is missing, a bad flag
  3    the run failed: a server did not start (its log tail is printed)
  130  interrupted (Ctrl-C): partial results are printed and written, every server is stopped

file:// stores: file:///abs/path is used as is; file:///./rel/path is relative to the current
directory (the examples use file:///./.modelpack/store/...). Missing models are built there.
"""


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def _positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if not value > 0:
        raise argparse.ArgumentTypeError(f"must be greater than 0, got {text}")
    return value


def register(parser: argparse.ArgumentParser) -> None:
    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    parser.epilog = EPILOG
    parser.add_argument(
        "-f",
        "--filename",
        dest="files",
        action="append",
        required=True,
        metavar="FILE",
        help="YAML with a ModelPack and/or a LoadTest (repeat -f, or one multi-document file)",
    )
    parser.add_argument(
        "--endpoint",
        "--pack-url",
        dest="endpoints",
        action="append",
        default=[],
        metavar="URL",
        help="load-test servers already running at URL (repeatable); models found via /v2/repository/index",
    )
    parser.add_argument(
        "--out",
        type=Path,
        default=None,
        metavar="DIR",
        help="results directory (default ./modelpack-results/<loadtest>-<timestamp>)",
    )
    parser.add_argument(
        "--threads",
        type=_positive_int,
        default=None,
        help="torch threads per server (default: the cores available split over the servers)",
    )
    parser.add_argument(
        "--ready-timeout",
        type=_positive_float,
        default=120.0,
        metavar="SECONDS",
        help="how long servers may take to become ready (default 120)",
    )
    parser.add_argument(
        "--price-per-hour",
        type=_positive_float,
        default=None,
        metavar="USD",
        help="this machine's hourly price: adds cost per million requests to the results",
    )
    parser.add_argument(
        "--model-size",
        choices=["tiny", "small", "base"],
        default="tiny",
        help="architecture of models built into a file:// store when missing (default tiny)",
    )
    parser.add_argument("--layers", type=_positive_int, default=None, help="override the built models' layers")
    parser.add_argument("--hidden", type=_positive_int, default=None, help="override the built models' hidden size")
    parser.add_argument(
        "--max-servers",
        type=_positive_int,
        default=None,
        metavar="N",
        help="start at most N server processes (default: what 80%% of the available memory holds)",
    )
    parser.add_argument("--host", default="127.0.0.1", help=argparse.SUPPRESS)


def run(args: argparse.Namespace) -> int:
    if args.host not in ("127.0.0.1", "localhost", "::1"):
        raise CliError(f"--host {args.host!r}: local servers only listen on 127.0.0.1 or localhost")
    opts = RunOptions(
        files=args.files,
        endpoints=args.endpoints,
        out_dir=args.out,
        host=args.host,
        threads=args.threads,
        ready_timeout=args.ready_timeout,
        price_per_hour=args.price_per_hour,
        model_size=args.model_size,
        layers=args.layers,
        hidden=args.hidden,
        max_servers=args.max_servers,
    )
    console = Console()
    try:
        return run_local(opts, console).exit_code
    except (InvalidObjectError, ObjectsError, StoreError, DiscoveryError, LoadgenError) as err:
        raise CliError(str(err)) from None
    except ServerStartError as err:
        raise CliError(str(err), exit_code=EXIT_RUN_FAILED) from None
