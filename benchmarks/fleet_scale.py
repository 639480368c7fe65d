"""Fleet scale: the real operator packing 3,000-30,000 models on an EKS-sized kwok cluster.

Usage:
    python -m benchmarks.fleet_scale [--models 3000,10000] [--per-server 16] [--density 32] \
        [--steady-seconds 180] [--json out.json]

Steps, on one fresh control plane (etcd, kube-apiserver, controller-manager, scheduler, kwok) with node
pools sized like an EKS cluster (graviton nodes for the pack plus x86, inferentia and gpu nodes):

1. baseline: the same server Deployments and Services the operator would make, applied in one
   ``kubectl apply --server-side`` (what a templating script does), timed until every Deployment is
   available: the peer the operator's time-to-Ready is compared with;
2. for the first size: create the ModelPack -> Ready, settle, a steady state with nothing changing; change
   the image (every server rolls) -> Ready, change density -> Ready, settle, a second steady state; delete
   -> everything garbage-collected. "Settle" waits (at most 300 s) until the operator is 5 s without a request;
3. for each further size: create -> Ready, delete -> collected.

Per step: wall time, the operator's API requests as the API server counted them (by verb and resource;
see tests/fleet/observe.py), operator CPU seconds and RSS/peak RSS from /proc. Readiness in the simulation
is described in tests/fleet/fleet.py: kwok marks bound pods Ready; nothing loads models.
"""

from __future__ import annotations

import argparse
import json
import math
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import yaml

from modelpack.api.modelpack import ModelPack
from modelpack.placement import place
from modelpack_operator.builders.server import server_deployment, server_service
from modelpack_operator.settings import ServerSettings
from tests.cluster.controlplane import ControlPlane
from tests.fleet.fleet import Fleet, StepResult, nodes_for, pack_doc

OTHER_POOLS = {"x86": 20, "inferentia": 10, "gpu": 2}
NEW_IMAGE = "ghcr.io/modelpack/model-server:0.1.1"


def _log(msg: str) -> None:
    print(f"[fleet] {msg}", file=sys.stderr, flush=True)


def baseline_objects(models: int, per_server: int, namespace: str) -> list[dict[str, Any]]:
    """The operator's own server objects for a pack, without the owner (a script has none)."""
    pack = ModelPack.model_validate({**pack_doc("raw", namespace, models, per_server), "metadata": {
        "name": "raw", "namespace": namespace, "uid": "00000000-0000-0000-0000-000000000000"}})  # fmt: skip
    placement = place(pack.spec.models.expand(), per_server)
    out = []
    settings = ServerSettings()
    for server in placement.servers:
        for obj in (server_deployment(pack, server, settings), server_service(pack, server, settings)):
            obj["metadata"].pop("ownerReferences", None)
            out.append(obj)
    return out


def run_baseline(cp: ControlPlane, models: int, per_server: int) -> dict[str, Any]:
    namespace = "baseline"
    cp.kubectl("create", "namespace", namespace)
    objs = baseline_objects(models, per_server, namespace)
    servers = len(objs) // 2
    text = yaml.safe_dump_all(objs, sort_keys=False)
    began = time.monotonic()
    cp.kubectl("apply", "--server-side", "-f", "-", input=text, timeout=600)
    applied = time.monotonic() - began
    deadline = time.monotonic() + 900
    while True:
        items = cp.kubectl_json("get", "deployments", "-n", namespace)["items"]
        available = sum(1 for d in items if (d.get("status") or {}).get("availableReplicas", 0) >= 1)
        if available == servers:
            break
        if time.monotonic() > deadline:
            raise TimeoutError(f"baseline: {available}/{servers} Deployments available after 900s")
        time.sleep(0.5)
    seconds = time.monotonic() - began
    cp.kubectl("delete", "namespace", namespace, "--wait=true", timeout=900)
    return {"step": f"baseline: kubectl apply {servers} Deployments+Services", "seconds": round(seconds, 2),
            "apply_seconds": round(applied, 2), "models": models, "servers": servers}  # fmt: skip


def code_version() -> str:
    """The commit the operator code came from, flagged when the working tree differs (others edit it live)."""
    git = ["git", "-C", str(Path(__file__).resolve().parents[1])]
    head = subprocess.run([*git, "rev-parse", "--short", "HEAD"], capture_output=True, text=True, check=False)
    dirty = subprocess.run([*git, "status", "--porcelain", "operator", "modelpack"], capture_output=True, text=True)
    return head.stdout.strip() + (" + uncommitted changes" if dirty.stdout.strip() else "")


def machine() -> dict[str, str]:
    lscpu = subprocess.run(["lscpu"], capture_output=True, text=True, check=False).stdout
    model = next((ln.split(":", 1)[1].strip() for ln in lscpu.splitlines() if ln.startswith("Model name")), "?")
    return {"cpu": model, "cores": str(len(__import__("os").sched_getaffinity(0))), "python": platform.python_version()}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", default="3000,10000", help="comma-separated pack sizes (first gets every step)")
    parser.add_argument("--per-server", type=int, default=16)
    parser.add_argument("--density", type=int, default=32, help="density the first pack changes to")
    parser.add_argument("--steady-seconds", type=float, default=180.0)
    parser.add_argument("--no-baseline", action="store_true")
    parser.add_argument(
        "--split", type=int, default=1, help="sizes after the first as this many packs (compare with one pack)"
    )
    parser.add_argument(
        "--create-only", action="store_true", help="first size too: only create, settle, steady, delete"
    )
    parser.add_argument("--json", type=Path, help="write the results here too")
    args = parser.parse_args(argv)
    sizes = [int(s) for s in args.models.split(",") if s.strip()]
    if not sizes or min(sizes) < 1:
        parser.error("--models: give one or more positive sizes, e.g. 3000,10000")
    if args.per_server < 1 or args.density < 1 or args.steady_seconds < 0:
        parser.error("--per-server and --density must be >= 1, --steady-seconds >= 0")

    log_dir = Path(tempfile.mkdtemp(prefix="modelpack-fleet-"))
    results: list[dict[str, Any]] = []
    started = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    version = code_version()
    _log(f"code: {version}")
    cp = ControlPlane(keep_logs=True)
    cp.start()
    fleet = Fleet(cp, "fleet", log_dir)
    try:
        first_servers = math.ceil(sizes[0] / args.per_server)
        fleet.prepare({"graviton": nodes_for(first_servers), **OTHER_POOLS})
        _log(f"nodes: graviton={nodes_for(first_servers)} {OTHER_POOLS}")
        if not args.no_baseline:
            results.append(run_baseline(cp, sizes[0], args.per_server))
            _log(json.dumps(results[-1]))
        fleet.start_operator()

        def record(step: StepResult) -> None:
            results.append(step.summary())
            _log(json.dumps(results[-1]))
            if args.json:
                args.json.write_text(json.dumps({"started": started, "partial": True, "steps": results}, indent=2))

        models = sizes[0]
        record(fleet.create("fleet", models, args.per_server))
        record(fleet.settle())
        if args.steady_seconds:
            record(fleet.steady(args.steady_seconds, " (idle pack)"))
        if not args.create_only:
            record(fleet.change_image("fleet", models, args.per_server, NEW_IMAGE))
            record(fleet.change_density("fleet", models, args.density))
            record(fleet.settle())
            if args.steady_seconds:
                record(fleet.steady(args.steady_seconds, " (after image + density changes)"))
        record(fleet.delete("fleet"))
        for models in sizes[1:]:
            servers = math.ceil(models / args.per_server)
            fleet.add_nodes({"graviton": nodes_for(servers)}, timeout=600)
            _log(f"nodes: graviton={nodes_for(servers)}")
            if args.split > 1:
                record(fleet.create_split(f"fleet-{models}", models, args.split, args.per_server, timeout=1800))
                record(fleet.settle())
                if args.steady_seconds:
                    record(fleet.steady(args.steady_seconds, f" ({args.split} idle packs)"))
                record(fleet.delete_all(timeout=1800))
            else:
                record(fleet.create(f"fleet-{models}", models, args.per_server, timeout=1800))
                record(fleet.delete(f"fleet-{models}", timeout=1800))
    finally:
        fleet.stop_operator()
        cp.stop()
    report = {
        "started": started,
        "code": version,
        "machine": machine(),
        "command": " ".join(sys.argv),
        "steps": results,
        "logs": str(log_dir),
    }
    print(json.dumps(report, indent=2))
    if args.json:
        args.json.write_text(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
