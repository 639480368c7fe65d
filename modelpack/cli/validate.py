"""`modelpack validate FILE...`: the API server's checks, offline, with the same field names."""

from __future__ import annotations

import argparse

from modelpack.api.loading import InvalidObjectError, load_file
from modelpack.cli.errors import CliError


def register(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("files", nargs="+", help="YAML files holding ModelPack and LoadTest objects")


def run(args: argparse.Namespace) -> int:
    problems = []
    for path in args.files:
        try:
            for obj in load_file(path):
                print(f"{path}: {obj.kind} {obj.metadata.name} is valid")
        except InvalidObjectError as err:
            problems.append(str(err))
    if problems:
        raise CliError("\n".join(problems))
    return 0
