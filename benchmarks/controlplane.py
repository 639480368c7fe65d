"""How long the real control-plane harness costs: binary build, start, node registration, pods, teardown.

Usage:
    python -m benchmarks.controlplane [--runs 3] [--pods 300] [--build-log /tmp/build.log] [--cold-build]

Build time is read from a saved log of ``python -m tests.cluster.binaries`` (``--build-log``); with
``--cold-build`` it is measured instead by building into a temporary binary cache *and* a temporary
GOCACHE (the Go module download cache stays warm: the module proxy fetch is not part of the figure).
Start/stop are measured with the binaries already cached. The pod figure schedules ``--pods`` replicas
of one Deployment across the default kwok pools and times until all are Running (scheduler + kwok +
controllers together), so suites can budget for large packs.
"""

from __future__ import annotations

import argparse
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from tests.cluster.binaries import ensure_binaries
from tests.cluster.controlplane import ControlPlane
from tests.cluster.nodes import DEFAULT_POOLS, register_pools

BUILD_LINE = re.compile(r"\[binaries\] (?:built (\S+) in (\d+)s|(\S+) (v\S+) ready in (\d+)s)")


def parse_build_log(text: str) -> dict[str, int]:
    """Seconds per binary (``built X in Ns``) and per group (``X vN ready in Ns``) from the builder's log."""
    out: dict[str, int] = {}
    for m in BUILD_LINE.finditer(text):
        if m.group(1):
            out[m.group(1)] = int(m.group(2))
        else:
            out[f"{m.group(3)} {m.group(4)} (group total)"] = int(m.group(5))
    return out


def cold_build() -> tuple[float, str]:
    with (
        tempfile.TemporaryDirectory(prefix="mp-bin-") as cache,
        tempfile.TemporaryDirectory(prefix="mp-go-") as gocache,
    ):
        env = {**os.environ, "MODELPACK_BIN_CACHE": cache, "GOCACHE": gocache}
        started = time.monotonic()
        proc = subprocess.run(
            [sys.executable, "-m", "tests.cluster.binaries"], env=env, capture_output=True, text=True, check=True
        )
        return time.monotonic() - started, proc.stderr


def pod_rollout(cp: ControlPlane, pods: int) -> float:
    ns = "bench"
    cp.kubectl("create", "namespace", ns)
    while cp.kubectl("get", "serviceaccount", "default", "-n", ns, check=False).returncode != 0:
        time.sleep(0.1)
    deployment: dict[str, Any] = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "bench"},
        "spec": {
            "replicas": pods,
            "selector": {"matchLabels": {"app": "bench"}},
            "template": {
                "metadata": {"labels": {"app": "bench"}},
                "spec": {
                    "containers": [{"name": "c", "image": "bench", "resources": {"requests": {"cpu": "10m"}}}],
                    "nodeSelector": {"kubernetes.io/arch": "amd64"},
                },
            },
        },
    }
    started = time.monotonic()
    cp.apply(deployment, namespace=ns)
    cp.kubectl("rollout", "status", "deployment/bench", "-n", ns, "--timeout=300s", timeout=320)
    return time.monotonic() - started


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.controlplane", description=__doc__)
    parser.add_argument("--runs", type=int, default=3, help="start/stop cycles to time (default 3)")
    parser.add_argument("--pods", type=int, default=300, help="Deployment replicas to roll out, 0 to skip")
    parser.add_argument("--build-log", type=Path, default=Path("/tmp/build.log"))
    parser.add_argument("--cold-build", action="store_true", help="time a build into temp caches (~10 min)")
    args = parser.parse_args()
    if args.runs < 1:
        parser.error("--runs must be >= 1")
    if not 0 <= args.pods <= 468:
        parser.error("--pods must be between 0 and 468 (two x86 nodes of 234 pods; taints keep them off gpu/inf2)")

    print("## binary build")
    if args.cold_build:
        total, log = cold_build()
        source = "measured now (--cold-build: temp binary cache and GOCACHE)"
    else:
        if not args.build_log.is_file():
            parser.error(f"--build-log {args.build_log} does not exist (pass --cold-build to measure instead)")
        log = args.build_log.read_text()
        total = float("nan")
        source = f"read from {args.build_log}"
    for name, secs in parse_build_log(log).items():
        print(f"  {name}: {secs} s")
    if args.cold_build:
        print(f"  wall total: {total:.0f} s")
    print(f"  source: {source}")
    cached_started = time.monotonic()
    bins = ensure_binaries()
    print(f"  cached lookup: {time.monotonic() - cached_started:.3f} s")

    starts, registers, stops = [], [], []
    rollout: float | None = None
    for run in range(args.runs):
        cp = ControlPlane(bins)
        t0 = time.monotonic()
        cp.start()
        t1 = time.monotonic()
        register_pools(cp, DEFAULT_POOLS)
        t2 = time.monotonic()
        if run == 0 and args.pods:
            rollout = pod_rollout(cp, args.pods)
        t3 = time.monotonic()
        cp.stop()
        t4 = time.monotonic()
        starts.append(t1 - t0)
        registers.append(t2 - t1)
        stops.append(t4 - t3)

    def fmt(xs: list[float]) -> str:
        return f"median {statistics.median(xs):.2f} s (min {min(xs):.2f}, max {max(xs):.2f}, n={len(xs)})"

    print("## control plane (binaries cached)")
    print(f"  start to ready (etcd, apiserver /readyz, controllers, scheduler, kwok, default SA): {fmt(starts)}")
    print(f"  register {sum(DEFAULT_POOLS.values())} kwok nodes until Ready: {fmt(registers)}")
    print(f"  teardown: {fmt(stops)}")
    if rollout is not None:
        print(f"## {args.pods}-replica Deployment to all Running: {rollout:.2f} s ({args.pods / rollout:.0f} pods/s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
