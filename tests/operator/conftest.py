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


def _openapi_v3_bounds(node: Any) -> Any:
    """JSON-Schema-2020 numeric ``exclusiveMinimum: N`` as Kubernetes' OpenAPI v3 wants it (minimum + boolean).

    TEMPORARY: the generated CRDs carry the 2020 form, which the API server refuses; the API owner is told.
    Remove once ``modelpack crds generate`` emits the v3 form (the plain apply then works unchanged).
    """
    if isinstance(node, list):
        return [_openapi_v3_bounds(n) for n in node]
    if not isinstance(node, dict):
        return node
    out = {k: _openapi_v3_bounds(v) for k, v in node.items()}
    for bound, plain in (("exclusiveMinimum", "minimum"), ("exclusiveMaximum", "maximum")):
        if isinstance(out.get(bound), int | float) and not isinstance(out.get(bound), bool):
            out[plain] = out.pop(bound)
            out[bound] = True
    return out


def _install_crd(cp: ControlPlane, path: Path) -> None:
    doc = _openapi_v3_bounds(yaml.safe_load(path.read_text()))
    cp.kubectl("apply", "--server-side", "--force-conflicts", "-f", "-", input=yaml.safe_dump(doc))
    cp.kubectl("wait", "--for=condition=Established", "--timeout=60s", f"crd/{doc['metadata']['name']}")


@pytest.fixture(scope="session")
def crds(control_plane: ControlPlane) -> ControlPlane:
    _install_crd(control_plane, ROOT / "crds" / "modelpack.dev_modelpacks.yaml")
    return control_plane


@pytest.fixture(scope="session")
def loadtest_crd(crds: ControlPlane) -> ControlPlane:
    _install_crd(crds, ROOT / "crds" / "modelpack.dev_loadtests.yaml")
    return crds


@pytest.fixture
def kube(crds: ControlPlane) -> Kube:
    return kube_for(crds)


@pytest.fixture
def start_operator(
    crds: ControlPlane, namespace: str, tmp_path: Path, request: pytest.FixtureRequest
) -> Iterator[Callable[..., OperatorProcess]]:
    """Start (and at teardown stop) operator processes watching the test's namespace; the log is kept in tmp_path."""
    started: list[OperatorProcess] = []

    def start(env: dict[str, str] | None = None) -> OperatorProcess:
        op = OperatorProcess(crds, namespace, tmp_path / f"operator-{len(started)}.log", env).start()
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
