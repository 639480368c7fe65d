"""A server image rolled across a pack under load, on real pods: the LoadTest's error count is the verdict."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
import yaml

from tests.cluster.realcluster import RealCluster
from tests.cluster.wait import wait_for
from tests.realnode.packs import (
    MODELS,
    PER_SERVER,
    SERVER_SELECTOR,
    control_plane,
    diagnose,
    finished_loadtest,
    loadtest,
    ready_pack,
    status,
)

pytestmark = [pytest.mark.cluster, pytest.mark.realnode, pytest.mark.slow]
RATE, SECONDS = 20, 90  # packs.loadtest's rate; long enough for both servers to roll inside the measured window


def test_a_new_server_image_rolls_across_the_pack_under_load_with_zero_failed_requests(
    real_cluster: RealCluster, real_namespace: str, images: dict[str, str], operator: str, store: Path
) -> None:
    """A platform team's image upgrade: every server pod is replaced while the LoadTest sends, and no request
    fails. The new pod is Ready before the old one stops (maxSurge 1, maxUnavailable 0); the old one keeps serving
    through its preStop pause while endpoints drop it, then finishes what it holds (uvicorn's drain); the load
    generator resends a request only when a reused keep-alive connection closed before any answer byte."""
    cp, ns, node = control_plane(real_cluster), real_namespace, real_cluster.node
    assert node is not None
    pods = ready_pack(cp, ns, store, MODELS[: 2 * PER_SERVER])
    old_pods = {p["metadata"]["name"] for p in pods}
    assert all(p["spec"]["containers"][0]["lifecycle"]["preStop"] == {"sleep": {"seconds": 5}} for p in pods)
    # "A new image": the same bytes under a new reference, so the roll costs no build, yet every pod is replaced.
    new_image = images["server"].rsplit(":", 1)[0] + ":rolled"
    node.ctr("images", "tag", "--force", images["server"], new_image)
    try:
        cp.apply([loadtest(ns, duration=f"{SECONDS}s", slo=False)], namespace=ns)
        wait_for(lambda: status(cp, "loadtest", ns, "lt").get("startTime"), "workers sending", 120, 1)
        cp.kubectl("patch", "modelpack", "bert", "-n", ns, "--type=merge",
                   "-p", yaml.safe_dump({"spec": {"server": {"image": new_image}}}))  # fmt: skip

        def rolled() -> bool:
            now = cp.kubectl_json("get", "pods", "-n", ns, "-l", SERVER_SELECTOR)["items"]
            ready = [p for p in now if all(c["ready"] for c in p["status"].get("containerStatuses") or [{"ready": 0}])]
            return (not {p["metadata"]["name"] for p in now} & old_pods and len(ready) == 2
                    and all(p["spec"]["containers"][0]["image"] == new_image for p in ready))  # fmt: skip

        started = time.monotonic()
        try:
            wait_for(rolled, "both servers replaced by Ready pods of the new image, the old pods gone", 240, 1)
        except TimeoutError as err:
            raise AssertionError(f"{err}\n{diagnose(cp, ns)}") from err
        print(f"[e2e] both servers rolled in {time.monotonic() - started:.0f}s under load")
        assert status(cp, "loadtest", ns, "lt").get("phase") == "Running", "the roll outlasted the load: no verdict"
        final = finished_loadtest(cp, ns, 300)
    finally:
        node.ctr("images", "rm", new_image)
    results = final.get("results") or {}
    summary = {k: v for k, v in results.items() if not k.endswith("istogram") and k != "perModel"}
    print(f"[e2e] LoadTest during the roll: {summary}")
    assert final["phase"] == "Succeeded", f"{final.get('conditions')}\n{diagnose(cp, ns)}"
    assert results["requests"] >= RATE * SECONDS * 0.8, summary
    assert results["errors"] == 0, summary  # the verdict: the roll cost no request
