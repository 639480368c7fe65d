"""`modelpack crds generate|check`: the CRDs and docs/api.md come from the types, and the chart's RBAC rules from
the operator's definition of them, never by hand."""

from __future__ import annotations

import argparse
from pathlib import Path

from modelpack.api import crd, docs
from modelpack.cli.errors import CliError


def register(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("action", choices=["generate", "check"], help="write the files, or fail if they drifted")
    parser.add_argument("--root", type=Path, default=Path.cwd(), help="repository root (default: current dir)")


def generated_files(root: Path) -> dict[Path, str]:
    """Every generated file under ``root`` with the text it must hold."""
    from modelpack_operator.builders import rbac

    return {**crd.expected_files(root), **docs.expected_files(root), root / rbac.RULES_TEMPLATE: rbac.chart_rules()}


def run(args: argparse.Namespace) -> int:
    root: Path = args.root
    if not (root / "pyproject.toml").exists():
        raise CliError(f"{root} is not the modelpack repository root (no pyproject.toml)")
    expected = generated_files(root)
    if args.action == "generate":
        for path, text in expected.items():
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text)
            print(f"wrote {path.relative_to(root)}")
        return 0
    stale = [p for p, text in expected.items() if not p.exists() or p.read_text() != text]
    if stale:
        names = ", ".join(str(p.relative_to(root)) for p in stale)
        raise CliError(f"out of date: {names}; run `modelpack crds generate`", exit_code=1)
    print("CRDs, docs/api.md and the chart's RBAC rules are up to date")
    return 0
