"""`modelpack models build|trace`: make a fleet of distinct models in a store, or re-trace one for a target."""

from __future__ import annotations

import argparse
import re
from pathlib import Path
from typing import TYPE_CHECKING, cast

from modelpack.cli.errors import CliError

if TYPE_CHECKING:
    from model_server.precision import Tolerance
    from modelpack.api.modelpack import Precision

NAME_PATTERN = re.compile(r"^[A-Za-z0-9._\-]*\{index(:0?[0-9]+d)?\}[A-Za-z0-9._\-]*$")


def register(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="models_command", metavar="ACTION")
    build = sub.add_parser("build", help="Build N distinct BERT-family models with random weights into a store.")
    build.add_argument("--store", required=True, help="store directory (created if missing)")
    build.add_argument("--count", required=True, type=int, help="how many models")
    build.add_argument("--name-pattern", default="model-{index:05d}", help="names; {index} runs from --start-index")
    build.add_argument("--start-index", type=int, default=0, help="first index (default 0)")
    build.add_argument("--size", default="tiny", help="tiny (2x128), small (4x256) or base (12x768, bert-base)")
    build.add_argument("--task", default="classification", help="classification or qa")
    build.add_argument("--layers", type=int, help="override the size's layer count")
    build.add_argument("--hidden", type=int, help="override the size's hidden width")
    build.add_argument("--heads", type=int, help="override the size's attention heads")
    build.add_argument("--seq-len", type=int, default=128, help="sequence length (default 128)")
    build.add_argument("--vocab-size", type=int, default=2000, help="tokenizer vocabulary (default 2000)")
    build.add_argument("--num-labels", type=int, default=2, help="classes for classification (default 2)")
    _precision_flags(build)
    trace = sub.add_parser("trace", help="Re-trace a stored model for a target (x86, graviton, inferentia).")
    trace.add_argument("--store", required=True, help="store directory")
    trace.add_argument("--model", required=True, help="model folder name")
    trace.add_argument("--target", required=True, help="x86, graviton or inferentia")
    trace.add_argument("--output", help="write the traced model to this store instead of in place")
    _precision_flags(trace)


def _precision_flags(parser: argparse.ArgumentParser) -> None:
    from modelpack.api.modelpack import DEFAULT_PRECISION

    parser.add_argument(
        "--precision",
        help="build optimized, gated artifacts: fp32 (frozen), int8-dynamic (x86 VNNI, arm64) or bf16 (native bf16 "
        f"CPUs only); a ModelPack's default is {DEFAULT_PRECISION['x86']} on x86. Unset: the plain trace",
    )
    parser.add_argument(
        "--max-abs-diff",
        type=float,
        help="accuracy gate: largest absolute output difference from fp32 allowed (default 0.25)",
    )
    parser.add_argument(
        "--min-top1-agreement",
        type=float,
        help="accuracy gate: least share of rows whose argmax matches fp32's (default 0.85)",
    )


def _gate(args: argparse.Namespace) -> tuple[Precision | None, Tolerance | None]:
    """The checked precision and tolerance; a tolerance without a precision is refused (it would gate nothing)."""
    from model_server.precision import PrecisionError, Tolerance, require_supported

    tolerances = {
        k: v
        for k, v in (("max_abs_diff", args.max_abs_diff), ("min_top1_agreement", args.min_top1_agreement))
        if v is not None
    }
    if args.precision is None:
        if tolerances:
            raise CliError("--max-abs-diff and --min-top1-agreement gate an optimized artifact: add --precision")
        return None, None
    try:
        require_supported(args.precision)
        return cast("Precision", args.precision), Tolerance(**tolerances)
    except (PrecisionError, ValueError) as err:
        raise CliError(
            f"--precision {args.precision}: {err}" if isinstance(err, PrecisionError) else str(err)
        ) from None


def run(args: argparse.Namespace) -> int:
    if args.models_command == "build":
        return _build(args)
    if args.models_command == "trace":
        return _trace(args)
    raise CliError("choose an action: build or trace")


def _check_positive(flag: str, value: int | None, minimum: int = 1) -> None:
    if value is not None and value < minimum:
        raise CliError(f"{flag} must be at least {minimum}, got {value}")


def _build(args: argparse.Namespace) -> int:
    from model_server.bert import SIZES

    _check_positive("--count", args.count)
    _check_positive("--start-index", args.start_index, 0)
    for flag in ("layers", "hidden", "heads", "seq_len", "num_labels"):
        _check_positive("--" + flag.replace("_", "-"), getattr(args, flag))
    if args.size not in SIZES:
        raise CliError(f"--size must be one of {', '.join(SIZES)}, got {args.size!r}")
    if args.task not in ("classification", "qa"):
        raise CliError(f"--task must be classification or qa, got {args.task!r}")
    if not NAME_PATTERN.match(args.name_pattern):
        raise CliError(f"--name-pattern must contain {{index}} (e.g. model-{{index:05d}}), got {args.name_pattern!r}")
    names = [args.name_pattern.format(index=i) for i in range(args.start_index, args.start_index + args.count)]
    precision, tolerance = _gate(args)
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    from model_server.fleet import build_fleet, shape_for

    with Progress(TextColumn("building models"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn()) as bar:
        task = bar.add_task("build", total=len(names))
        try:
            shape = shape_for(
                args.size,
                layers=args.layers,
                hidden=args.hidden,
                heads=args.heads,
                seq_len=args.seq_len,
                vocab_size=args.vocab_size,
                task=args.task,
                num_labels=args.num_labels,
            )
            result = build_fleet(
                args.store,
                names,
                shape,
                precision=precision,
                tolerance=tolerance,
                progress=lambda done, total: bar.update(task, completed=done),
            )
        except ValueError as err:
            raise CliError(str(err)) from None
    built_as = f" as {precision}" if precision else ""
    print(f"{args.store}: built {len(result.built)} models{built_as}, reused {len(result.reused)}")
    return 0


def _trace(args: argparse.Namespace) -> int:
    from model_server.trace import TARGETS

    if args.target not in TARGETS:
        raise CliError(f"--target must be one of {', '.join(TARGETS)}, got {args.target!r}")
    precision, tolerance = _gate(args)
    from model_server.retrace import RetraceError, retrace

    output = Path(args.output) if args.output else None
    try:
        out = retrace(Path(args.store), args.model, args.target, output, precision=precision, tolerance=tolerance)
    except RetraceError as err:
        raise CliError(str(err)) from None
    built_as = f" as {precision}" if precision else ""
    print(f"{args.model}: traced for {args.target}{built_as} into {out}")
    return 0
