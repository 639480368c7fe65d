"""Fixtures for operator tests: CRDs installed once, an operator process per test scoped to its namespace."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from modelpack_operator.kube import Kube
from tests.cluster.controlplane import ControlPlane
from tests.operator.harness import ROOT, OperatorProcess, kube_for


def _install_crd(cp: ControlPlane, path: Path) -> None:
    cp.kubectl("apply", "--server-side", "--force-conflicts", "-f", str(path))
    name = yaml.safe_load(path.read_text())["metadata"]["name"]
    cp.kubectl("wait", "--for=condition=Established", "--timeout=60s", f"crd/{name}")


@pytest.fixture(scope="session")
def crds(control_plane: ControlPlane) -> ControlPlane:
    """Both CRDs, as generated (the operator watches both kinds)."""
    _install_crd(control_plane, ROOT / "crds" / "modelpack.dev_modelpacks.yaml")
    _install_crd(control_plane, ROOT / "crds" / "modelpack.dev_loadtests.yaml")
    return control_plane


@pytest.fixture
def kube(crds: ControlPlane) -> Kube:
    return kube_for(crds)


@pytest.fixture
def start_operator(
    crds: ControlPlane, namespace: str, tmp_path: Path, request: pytest.FixtureRequest
) -> Iterator[Callable[..., OperatorProcess]]:
    """Start (and at teardown stop) operator processes watching the test's namespace; the log is kept in tmp_path."""
    started: list[OperatorProcess] = []

    def start(
        env: dict[str, str] | None = None,
        metrics_port: int = 0,
        kubeconfig: Path | None = None,
        liveness_port: int = 0,
    ) -> OperatorProcess:
        log = tmp_path / f"operator-{len(started)}.log"
        op = OperatorProcess(crds, namespace, log, env, metrics_port, kubeconfig, liveness_port).start()
        started.append(op)
        return op

    yield start
    for op in started:
        op.stop()
    if getattr(request.node, "rep_call", None) is not None and request.node.rep_call.failed:
        for op in started:
            print(f"--- {op.log_path}\n{op.log()[-6000:]}")


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: Any) -> Any:
    report = yield
    setattr(item, f"rep_{report.when}", report)
    return report
