"""A few hundred models through the real operator: placement, readiness and GC at fleet shape, small size.

The benchmark (benchmarks/fleet_scale.py) runs the same steps at 3,000-30,000 models; this keeps them working.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.cluster.controlplane import ControlPlane
from tests.fleet.fleet import PACK_LABEL, Fleet, nodes_for

pytestmark = pytest.mark.cluster

MODELS = 400
PER_SERVER = 16
SERVERS = math.ceil(MODELS / PER_SERVER)


@pytest.fixture
def fleet(control_plane: ControlPlane, namespace: str, tmp_path: Path) -> Iterator[Fleet]:
    fleet = Fleet(control_plane, namespace, tmp_path)
    fleet.prepare({"graviton": nodes_for(SERVERS)})
    fleet.start_operator()
    yield fleet
    fleet.stop_operator()


def test_small_fleet_places_readies_and_collects(fleet: Fleet) -> None:
    ns, cp = fleet.namespace, fleet.cp
    created = fleet.create("fleet", MODELS, PER_SERVER, timeout=60)
    status = fleet.pack("fleet")["status"]
    assert (status["servers"], status["readyServers"], status["models"], status["readyModels"]) == (
        SERVERS, SERVERS, MODELS, MODELS,
    )  # fmt: skip

    # Placement: every model on exactly one server, 16 per server, in model order.
    deployments = cp.kubectl_json("get", "deployments", "-n", ns, "-l", f"{PACK_LABEL}=fleet")["items"]
    assert len(deployments) == SERVERS
    placed: list[str] = []
    for d in sorted(deployments, key=lambda d: d["metadata"]["name"]):
        args = d["spec"]["template"]["spec"]["containers"][0]["args"]
        models = args[args.index("--models") + 1].split(",")
        assert len(models) == PER_SERVER or d is deployments[-1]
        placed += models
    assert sorted(placed) == [f"model-{i:05d}" for i in range(MODELS)]

    # Readiness came from real scheduling: every server pod bound to a graviton node.
    pods = cp.kubectl_json("get", "pods", "-n", ns, "-l", f"{PACK_LABEL}=fleet")["items"]
    assert len(pods) == SERVERS
    assert all(p["spec"]["nodeName"].startswith("graviton-") for p in pods)

    # The operator's writes scale with servers, not models: no create or patch per model.
    writes = sum(n for (verb, _), n in created.requests.items() if verb in ("create", "patch", "update"))
    assert writes < MODELS, created.summary()
    for kind in ("deployments", "services"):
        # One write per server object (create, or server-side apply's patch), none per model.
        assert created.requests[("create", kind)] + created.requests[("patch", kind)] == SERVERS, created.summary()

    deleted = fleet.delete("fleet", timeout=60)
    assert deleted.requests[("delete", "deployments")] == 0, "deletion is the garbage collector's job (ownerReferences)"
    for kind in ("deployments", "services", "configmaps", "pods"):
        assert fleet.count(kind, f"{PACK_LABEL}=fleet") == 0
