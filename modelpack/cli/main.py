"""Entry point of the `modelpack` console script.

Subcommands live in their own modules (listed in ``COMMANDS``) and are imported only when needed,
so ``modelpack loadgen`` never pays for importing torch.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

from modelpack import __version__
from modelpack.cli.errors import CliError

DESCRIPTION = (
    "Pack thousands of distinct PyTorch models onto few servers and load-test them: on this machine "
    "(`modelpack run`) or on Kubernetes (`modelpack operator`, with ModelPack and LoadTest resources)."
)
EPILOG = "Start with `modelpack run -f pack.yaml -f loadtest.yaml`; `modelpack COMMAND --help` for each command."

# name -> (module, one-line help). Each module defines register(parser) and run(args) -> int.
COMMANDS: dict[str, tuple[str, str]] = {
    "run": ("modelpack.cli.run", "Run a ModelPack and LoadTest on this machine, no cluster needed."),
    "loadgen": ("modelpack.cli.loadgen", "Generate open- or closed-loop load against model servers."),
    "serve": ("model_server.command", "Start one model server over a model store."),
    "models": ("modelpack.cli.models", "Build fleets of distinct models into a store; trace models for a target."),
    "plan": ("modelpack.cli.plan", "Size a fleet: instance family, node count and hourly cost for a target rate."),
    "crds": ("modelpack.cli.crds", "Generate the CRDs and API docs from the types."),
    "validate": ("modelpack.cli.validate", "Check ModelPack/LoadTest YAML files the way the API server would."),
    "operator": ("modelpack.cli.operator", "Run the Kubernetes operator (kopf)."),
    "worker": ("modelpack.cli.worker", "Run one load-test worker (what LoadTest Job pods run)."),
}


def build_parser(only: str | None = None) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="modelpack", description=DESCRIPTION, epilog=EPILOG)
    parser.add_argument("--version", action="version", version=f"modelpack {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, (module_name, help_text) in COMMANDS.items():
        sp = sub.add_parser(name, help=help_text, description=help_text)
        if only is None or name == only:
            module = importlib.import_module(module_name)
            module.register(sp)
            sp.set_defaults(_run=module.run, _parser=sp)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args_list = list(sys.argv[1:] if argv is None else argv)
    command = next((a for a in args_list if not a.startswith("-")), None)
    parser = build_parser(only=command if command in COMMANDS else None)
    args, extra = parser.parse_known_args(args_list)
    if extra:
        # argparse would report a subcommand's unknown flag with the top-level usage, which does not list it.
        getattr(args, "_parser", parser).error(f"unrecognized arguments: {' '.join(extra)}")
    if getattr(args, "_run", None) is None:
        parser.print_help()
        return 2
    try:
        return int(args._run(args) or 0)
    except CliError as err:
        print(f"modelpack {args.command}: error: {err}", file=sys.stderr)
        return err.exit_code
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
