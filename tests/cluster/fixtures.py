"""Pytest fixtures for tests that need the real control plane (loaded by ``tests/conftest.py``).

``control_plane`` starts once per session with the default node pools; ``namespace`` gives each test
a fresh namespace. When any test fails, component logs are kept and their path is printed in the
terminal summary, so the apiserver/controller/scheduler view of the failure survives the run.
Set ``MODELPACK_KEEP_CLUSTER_LOGS=1`` to keep them regardless.
"""

from __future__ import annotations

import contextlib
import os
import re
import secrets
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.cluster.controlplane import ControlPlane
from tests.cluster.nodes import DEFAULT_POOLS, register_pools
from tests.cluster.wait import wait_for

_FAILED = pytest.StashKey[bool]()
_KEPT_LOGS = pytest.StashKey[Path]()


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Anything using the plane is a cluster test, so ``-m 'not cluster'`` deselects it even if unmarked."""
    for item in items:
        if "control_plane" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.cluster)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Iterator[None]:
    report = yield
    if getattr(report, "failed", False):
        item.session.stash[_FAILED] = True
    return report


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    kept = terminalreporter.config.stash.get(_KEPT_LOGS, None)
    if kept is not None:
        terminalreporter.write_sep("-", "control plane")
        terminalreporter.write_line(f"control-plane component logs kept in {kept}")


@pytest.fixture(scope="session")
def control_plane(request: pytest.FixtureRequest) -> Iterator[ControlPlane]:
    keep = os.environ.get("MODELPACK_KEEP_CLUSTER_LOGS", "") not in ("", "0")
    cp = ControlPlane(keep_logs=keep)
    cp.start()
    try:
        register_pools(cp, DEFAULT_POOLS)
        yield cp
    finally:
        if request.session.stash.get(_FAILED, False):
            cp.keep_logs = True
        if cp.keep_logs:
            request.config.stash[_KEPT_LOGS] = cp.log_dir
        cp.stop()


def _namespace_name(test_name: str) -> str:
    base = re.sub(r"[^a-z0-9-]+", "-", test_name.lower()).strip("-")[:40].strip("-") or "t"
    return f"{base}-{secrets.token_hex(3)}"


@pytest.fixture(scope="session")
def _admin_core(control_plane: ControlPlane) -> Iterator[Any]:
    """One kept-alive admin client: a kubectl process per poll costs ~0.3 s on a busy 2-core machine."""
    from kubernetes import client

    with control_plane.api_client() as api:
        yield client.CoreV1Api(api)


@pytest.fixture
def namespace(control_plane: ControlPlane, _admin_core: Any, request: pytest.FixtureRequest) -> Iterator[str]:
    """A fresh namespace whose default ServiceAccount exists (pods are refused until it does)."""
    from kubernetes.client.exceptions import ApiException

    name = _namespace_name(request.node.name)
    _admin_core.create_namespace({"metadata": {"name": name}})

    def default_sa_exists() -> bool:
        try:
            _admin_core.read_namespaced_service_account("default", name)
            return True
        except ApiException as err:
            if err.status != 404:
                raise
            return False

    wait_for(default_sa_exists, f"namespace {name}: the default ServiceAccount (serviceaccount controller)", 30, 0.05)
    yield name
    # The plane may already be failing; the session teardown reports that, not every namespace.
    with contextlib.suppress(ApiException, OSError):
        _admin_core.delete_namespace(name)
