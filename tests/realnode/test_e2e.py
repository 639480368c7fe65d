"""modelpack end to end on the real node: the chart's operator in its pod, real server pods, real load workers.

Nothing runs as a local stand-in: ``helm install`` puts the operator (the image built from Dockerfile.operator) in
a pod authenticated by the chart's ServiceAccount with exactly the chart's RBAC; the operator creates server
Deployments whose pods run the image built from Dockerfile.server and read 24 distinct tiny BERTs from a
hostPath PersistentVolume the test fills; their readiness probes are the server's own; the LoadTest's Indexed
Job pods (the operator image again) reach the servers by Service DNS name through CoreDNS and kube-proxy, and
their histograms are merged into the status that ``kubectl get loadtest`` prints.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.cluster.realcluster import RealCluster
from tests.cluster.realnode import NODE_NAME
from tests.realnode.packs import (
    MODELS,
    RELEASE_NS,
    ROOT,
    control_plane,
    diagnose,
    finished_loadtest,
    finished_workers,
    loadtest,
    operator_pods,
    ready_pack,
)

pytestmark = [pytest.mark.cluster, pytest.mark.realnode, pytest.mark.slow]


def test_chart_operator_serves_24_models_on_real_pods_and_a_loadtest_measures_them(
    real_cluster: RealCluster, real_namespace: str, images: dict[str, str], operator: str, store: Path
) -> None:
    cp, ns = control_plane(real_cluster), real_namespace
    pods = ready_pack(cp, ns, store, MODELS)
    for pod in pods:
        assert pod["spec"]["nodeName"] == NODE_NAME
        (cs,) = pod["status"]["containerStatuses"]
        assert cs["ready"] and cs["image"] == images["server"], cs
    # The chart's securityContext holds on the real runtime: the server runs as 10001, its root is read-only.
    probe = "import os; print(os.getuid()); open('/probe', 'w')"
    got = cp.kubectl("exec", pods[0]["metadata"]["name"], "-n", ns, "--", "python", "-c", probe, check=False)
    assert got.stdout.strip() == "10001" and "Read-only file system" in got.stderr, got
    # The images run this tree's code (a stale build-cache layer would not): the same bytes as the checkout.
    handlers = ROOT / "operator" / "modelpack_operator" / "handlers.py"
    operator_pod = operator_pods(cp)[0]["metadata"]["name"]
    checks = ((pods[0]["metadata"]["name"], ns, "model_server.app", ROOT / "model_server" / "app.py"),
              (operator_pod, RELEASE_NS, "modelpack_operator.handlers", handlers))  # fmt: skip
    for pod_name, pod_ns, module, local in checks:
        show = f"import importlib; print(open(importlib.import_module('{module}').__file__, 'rb').read().hex())"
        got = cp.kubectl("exec", pod_name, "-n", pod_ns, "--", "python", "-c", show)
        assert bytes.fromhex(got.stdout.strip()) == local.read_bytes(), f"{module} in {pod_name} is not the checkout's"

    cp.apply([loadtest(ns)], namespace=ns)
    final = finished_loadtest(cp, ns, 300)
    assert final["phase"] == "Succeeded", (final, diagnose(cp, ns))
    assert final["workersSucceeded"] == 2
    results = final["results"]
    assert results["requests"] >= 20 * 15 * 0.8 and results["errors"] == 0, results
    assert final["sloVerdict"] == "Met"
    table = cp.kubectl("get", "loadtest", "lt", "-n", ns).stdout
    print(table)
    header, row = table.splitlines()
    assert header.split()[:7] == ["NAME", "PHASE", "RPS", "P50(MS)", "P99(MS)", "ERRORS", "SLO"]
    cells = row.split()
    assert cells[1] == "Succeeded" and float(cells[2]) > 0 and float(cells[3]) > 0 and cells[5] == "0"
    assert cells[6] == "Met"

    # The workers were real pods of the operator image, on the node, and finished.
    workers = finished_workers(cp, ns)
    assert all(w["spec"]["nodeName"] == NODE_NAME for w in workers)
