"""``python -m model_server ...``: the same flags and env vars as ``modelpack serve``."""

from __future__ import annotations

import sys

from model_server.command import main

if __name__ == "__main__":
    sys.exit(main())
