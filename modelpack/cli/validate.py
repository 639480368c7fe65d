"""`modelpack validate FILE...`: the API server's checks, offline, with the same field names.

The schema checks are the CRD's (both come from the same types); the size limits are the chart's admission
policy's defaults, overridable to match a cluster that changed them.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable

from modelpack.api.limits import DEFAULT_MAX_MODELS_PER_PACK, DEFAULT_MAX_SERVERS_PER_PACK, pack_limit_problem
from modelpack.api.loading import InvalidObjectError, load_file
from modelpack.api.modelpack import MAX_MODELS, MAX_SERVERS, ModelPack
from modelpack.cli.errors import CliError


def _bounded(ceiling: int) -> Callable[[str], int]:
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
        if not 1 <= value <= ceiling:
            raise argparse.ArgumentTypeError(f"expected 1 to {ceiling}, got {value}")
        return value

    return parse


def register(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("files", nargs="+", help="YAML files holding ModelPack and LoadTest objects")
    parser.add_argument(
        "--max-models-per-pack",
        type=_bounded(MAX_MODELS),
        default=DEFAULT_MAX_MODELS_PER_PACK,
        metavar="N",
        help="the cluster's limit (chart value limits.maxModelsPerPack; default: %(default)s)",
    )
    parser.add_argument(
        "--max-servers-per-pack",
        type=_bounded(MAX_SERVERS),
        default=DEFAULT_MAX_SERVERS_PER_PACK,
        metavar="N",
        help="the cluster's limit (chart value limits.maxServersPerPack; default: %(default)s)",
    )


def run(args: argparse.Namespace) -> int:
    problems = []
    for path in args.files:
        try:
            objects = load_file(path)
        except InvalidObjectError as err:
            problems.append(str(err))
            continue
        for obj in objects:
            limit = (
                pack_limit_problem(obj.spec, args.max_models_per_pack, args.max_servers_per_pack)
                if isinstance(obj, ModelPack)
                else None
            )
            if limit is not None:
                problems.append(f"{path}: {obj.kind} {obj.metadata.name!r} is invalid:\n{limit}")
            else:
                print(f"{path}: {obj.kind} {obj.metadata.name} is valid")
    if problems:
        raise CliError("\n".join(problems))
    return 0
