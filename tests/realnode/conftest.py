"""Fixtures for tests on the real node: one control plane + real node + CoreDNS for the whole session.

Starting a node costs seconds and its images minutes (once), so every real-node test shares it; each test gets a
fresh namespace. The session's teardown raises if the node's slot left anything on the host (processes, cgroups,
mounts, the veth), so every run that uses the node also checks its cleanup.
"""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.cluster import metrics_server
from tests.cluster.binaries import ensure_metrics_server
from tests.cluster.fixtures import _namespace_name
from tests.cluster.realcluster import RealCluster
from tests.cluster.wait import wait_for
from tests.realnode.packs import (
    RELEASE,
    RELEASE_NS,
    control_plane,
    fill_store,
    helm,
    import_images,
    install_args,
    operator_pods,
)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        if "real_cluster" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.cluster)
            item.add_marker(pytest.mark.realnode)


@pytest.fixture(scope="session")
def real_cluster() -> Iterator[RealCluster]:
    keep = os.environ.get("MODELPACK_KEEP_CLUSTER_LOGS", "") not in ("", "0")
    rc = RealCluster(keep_logs=keep).start()
    try:
        yield rc
    finally:
        rc.stop()


@pytest.fixture
def real_namespace(real_cluster: RealCluster, request: pytest.FixtureRequest) -> Iterator[str]:
    """A fresh namespace on the real cluster whose default ServiceAccount exists."""
    cp = real_cluster.cp
    assert cp is not None
    name = _namespace_name(request.node.name)
    cp.kubectl("create", "namespace", name)
    wait_for(lambda: cp.kubectl("get", "sa", "default", "-n", name, check=False).returncode == 0,
             f"namespace {name}: default ServiceAccount", 30, 0.1)  # fmt: skip
    yield name
    with contextlib.suppress(Exception):
        cp.kubectl("delete", "namespace", name, "--wait=false")


@pytest.fixture(scope="session")
def images(real_cluster: RealCluster) -> dict[str, str]:
    """Both images built from the Dockerfiles (cached by content hash) and imported into the node."""
    node = real_cluster.node
    assert node is not None
    return import_images(node)


@pytest.fixture(scope="session")
def operator(real_cluster: RealCluster, images: dict[str, str]) -> Iterator[str]:
    """``helm install`` of the chart with the local images, once per session; yields the first operator pod's name.

    A test may delete that pod (the Deployment replaces it): look the current one up with ``operator_pods``.
    """
    cp = control_plane(real_cluster)
    helm(cp, *install_args(images))
    (pod,) = operator_pods(cp)
    try:
        yield pod["metadata"]["name"]
    finally:
        helm(cp, "uninstall", RELEASE, "--namespace", RELEASE_NS, "--wait", "--timeout", "2m")


@pytest.fixture(scope="session")
def store(real_cluster: RealCluster) -> Path:
    """24 distinct tiny BERTs in a directory on the node's filesystem, readable by the servers' uid."""
    return fill_store(real_cluster.network.state_dir / "store")


@pytest.fixture(scope="session")
def metrics_api(real_cluster: RealCluster) -> str:
    """metrics-server on the node, once per session, for the tests whose HPAs read CPU: returns the APIService's
    name once the API serves the node's usage. Left running until the session's cluster stops."""
    cp, node = real_cluster.cp, real_cluster.node
    assert cp is not None and node is not None
    started = time.monotonic()
    metrics_server.deploy(cp, node, ensure_metrics_server())
    print(f"[e2e] metrics API serving in {time.monotonic() - started:.0f}s")
    return metrics_server.APISERVICE
