"""How long the real control-plane harness costs: binary build, start, node registration, pods, teardown.

Usage:
    python -m benchmarks.controlplane [--runs 3] [--pods 300] [--build-log /tmp/build.log] [--cold-build]
                                      [--kwokctl PATH]

Build time is read from a saved log of ``python -m tests.cluster.binaries`` (``--build-log``); with
``--cold-build`` it is measured instead by building into a temporary binary cache *and* a temporary
GOCACHE (the Go module download cache stays warm: the module proxy fetch is not part of the figure).
Start/stop are measured with the binaries already cached. The pod figure schedules ``--pods`` replicas
of one Deployment across the default kwok pools and times until all are Running (scheduler + kwok +
controllers together), so suites can budget for large packs.

With ``--kwokctl PATH`` each run also times the peer tool, ``kwokctl create cluster --runtime binary``,
on the very same cached binaries, alternating with our harness so both see the same machine load.
Build it with ``GOBIN=DIR go install sigs.k8s.io/kwok/cmd/kwokctl@v0.7.0``.
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

from tests.cluster.binaries import KUBERNETES_VERSION, Binaries, ensure_binaries
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


def kwokctl_cycle(kwokctl: Path, bins: Binaries, workdir: Path) -> tuple[float, float, float]:
    """(create --wait, + until the default ServiceAccount exists like our readiness, delete) in seconds."""
    env = {
        **os.environ,
        "KWOK_WORKDIR": str(workdir),
        "KWOK_KUBECTL_BINARY": str(bins.kubectl),
        "KWOK_KUBE_VERSION": KUBERNETES_VERSION,
    }
    create = [
        str(kwokctl), "create", "cluster", "--name", "peer", "--runtime", "binary", "--wait", "120s",
        f"--kube-apiserver-binary={bins.kube_apiserver}",
        f"--kube-controller-manager-binary={bins.kube_controller_manager}",
        f"--kube-scheduler-binary={bins.kube_scheduler}",
        f"--kwok-controller-binary={bins.kwok}",
        f"--etcd-binary={bins.etcd}",
    ]  # fmt: skip
    t0 = time.monotonic()
    subprocess.run(create, env=env, capture_output=True, text=True, check=True, timeout=180)
    t1 = time.monotonic()
    kubeconfig = workdir / "clusters" / "peer" / "kubeconfig.yaml"
    get_sa = [str(bins.kubectl), f"--kubeconfig={kubeconfig}", "get", "serviceaccount", "default", "-n", "default"]
    deadline = time.monotonic() + 60
    while subprocess.run(get_sa, capture_output=True, check=False).returncode != 0:
        if time.monotonic() > deadline:
            raise TimeoutError("kwokctl cluster: default ServiceAccount never appeared")
        time.sleep(0.1)
    t2 = time.monotonic()
    delete = [str(kwokctl), "delete", "cluster", "--name", "peer"]
    subprocess.run(delete, env=env, capture_output=True, text=True, check=True, timeout=60)
    return t1 - t0, t2 - t0, time.monotonic() - t2


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.controlplane", description=__doc__)
    parser.add_argument("--runs", type=int, default=3, help="start/stop cycles to time (default 3)")
    parser.add_argument("--pods", type=int, default=300, help="Deployment replicas to roll out, 0 to skip")
    parser.add_argument("--build-log", type=Path, default=Path("/tmp/build.log"))
    parser.add_argument("--cold-build", action="store_true", help="time a build into temp caches (~10 min)")
    parser.add_argument("--kwokctl", type=Path, help="a kwokctl v0.7.0 binary to time side by side (peer tool)")
    args = parser.parse_args()
    if args.runs < 1:
        parser.error("--runs must be >= 1")
    if args.kwokctl is not None and not os.access(args.kwokctl, os.X_OK):
        parser.error(f"--kwokctl {args.kwokctl} is not an executable file")
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
    peer_created, peer_ready, peer_deleted = [], [], []
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
        if args.kwokctl is not None:
            with tempfile.TemporaryDirectory(prefix="mp-kwokctl-") as kwok_home:
                created, ready, deleted = kwokctl_cycle(args.kwokctl, bins, Path(kwok_home))
            peer_created.append(created)
            peer_ready.append(ready)
            peer_deleted.append(deleted)

    def fmt(xs: list[float]) -> str:
        return f"median {statistics.median(xs):.2f} s (min {min(xs):.2f}, max {max(xs):.2f}, n={len(xs)})"

    print("## control plane (binaries cached)")
    print(f"  start to ready (etcd, apiserver /readyz, controllers, scheduler, kwok, default SA): {fmt(starts)}")
    print(f"  register {sum(DEFAULT_POOLS.values())} kwok nodes until Ready: {fmt(registers)}")
    print(f"  teardown: {fmt(stops)}")
    if args.kwokctl is not None:
        print("## peer: kwokctl create cluster --runtime binary (same binaries, alternating runs)")
        print(f"  create --wait returns: {fmt(peer_created)}")
        print(f"  until default ServiceAccount exists (our readiness criterion): {fmt(peer_ready)}")
        print(f"  delete cluster: {fmt(peer_deleted)}")
        ratio = statistics.median(starts) / statistics.median(peer_ready)
        print(f"  ratio ours/kwokctl start (same criterion, medians): {ratio:.2f}")
        ratio = statistics.median(stops) / statistics.median(peer_deleted)
        print(f"  ratio ours/kwokctl teardown (medians): {ratio:.2f}")
    if rollout is not None:
        print(f"## {args.pods}-replica Deployment to all Running: {rollout:.2f} s ({args.pods / rollout:.0f} pods/s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
