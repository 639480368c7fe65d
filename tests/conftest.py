"""Shared pytest configuration: the real control-plane fixtures (``control_plane``, ``namespace``)."""

import os
import time

import pytest

pytest_plugins = ["tests.cluster.fixtures"]

# hack/fresh-clock.sh sets MODELPACK_FRESH_CLOCK=1 and starts the clocks at ~30 s; a run meant to prove the suite
# does not depend on uptime must not pass quietly because the namespace was never entered.
FRESH_CLOCK_LIMIT_S = 120.0


def pytest_sessionstart(session: pytest.Session) -> None:
    if os.environ.get("MODELPACK_FRESH_CLOCK") == "1" and time.monotonic() > FRESH_CLOCK_LIMIT_S:
        raise pytest.UsageError(
            f"MODELPACK_FRESH_CLOCK=1 but time.monotonic() reads {time.monotonic():.0f} s"
            f" (> {FRESH_CLOCK_LIMIT_S:.0f}): the fresh time namespace was not entered"
        )
