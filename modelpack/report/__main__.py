"""`python -m modelpack.report DIR`: re-render DIR/report.html from the files a run wrote next to it."""

from __future__ import annotations

import sys
from pathlib import Path

from modelpack.report.rebuild import RebuildError, rebuild


def main(argv: list[str]) -> int:
    if len(argv) != 1:
        print("usage: python -m modelpack.report RESULTS_DIR", file=sys.stderr)
        return 2
    try:
        print(rebuild(Path(argv[0])))
    except RebuildError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
