"""``python -m tests.cluster up|build``: a throw-away control plane for poking at by hand.

``up`` starts the same plane the test fixture uses, prints how to point kubectl at it, and tears it
down on Ctrl-C (or SIGTERM). ``build`` builds (or finds cached) binaries and prints their paths.
"""

from __future__ import annotations

import argparse
import signal
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from types import FrameType

from tests.cluster.binaries import ensure_binaries
from tests.cluster.controlplane import ControlPlane, ControlPlaneError
from tests.cluster.nodes import DEFAULT_POOLS, parse_pools, register_pools


def _pools_arg(value: str) -> dict[str, int]:
    try:
        return parse_pools(value)
    except ValueError as err:
        raise argparse.ArgumentTypeError(str(err)) from None


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m tests.cluster", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    up = sub.add_parser("up", help="start a control plane with kwok node pools and wait for Ctrl-C")
    default = ",".join(f"{k}={v}" for k, v in DEFAULT_POOLS.items())
    up.add_argument("--pools", type=_pools_arg, default=dict(DEFAULT_POOLS), help=f"NAME=COUNT,... (default {default})")
    up.add_argument("--keep-logs", action="store_true", help="keep the work dir (logs, certs, kubeconfig) on exit")
    up.add_argument("--workdir", type=Path, help="use this directory instead of a fresh temp dir")
    up.add_argument(
        "--real-node",
        action="store_true",
        help="add a real node (containerd, kubelet, kube-proxy, CoreDNS) in its own network namespace",
    )
    up.add_argument(
        "--metrics-server",
        action="store_true",
        help="with --real-node: also run metrics-server, so `kubectl top` and CPU-based HPAs work",
    )
    sub.add_parser("build", help="build the control-plane binaries into the cache (instant when cached)")
    return parser


def _stop_on_sigterm(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt


def _up(args: argparse.Namespace) -> int:
    if args.workdir is not None and args.workdir.exists() and any(args.workdir.iterdir()):
        print(f"python -m tests.cluster up: error: --workdir {args.workdir} is not empty", file=sys.stderr)
        return 2
    signal.signal(signal.SIGTERM, _stop_on_sigterm)
    # A shell starting us with `&` leaves SIGINT ignored; Ctrl-C / kill -INT must still tear down.
    signal.signal(signal.SIGINT, signal.default_int_handler)
    if args.real_node:
        return _up_real(args)
    if args.metrics_server:
        print("python -m tests.cluster up: error: --metrics-server needs --real-node (kwok nodes run no kubelet "
              "to scrape)", file=sys.stderr)  # fmt: skip
        return 2
    cp = ControlPlane(keep_logs=args.keep_logs, workdir=args.workdir)

    def start() -> list[str]:
        cp.start()
        nodes = register_pools(cp, args.pools)
        return [f"nodes: {', '.join(nodes) or '(none)'}", f"kubeconfig: {cp.kubeconfig}", f"logs: {cp.log_dir}",
                f"export KUBECONFIG={cp.kubeconfig}"]  # fmt: skip

    return _serve(start, cp.stop, (ControlPlaneError, TimeoutError))


def _up_real(args: argparse.Namespace) -> int:
    from tests.cluster.realcluster import RealCluster

    rc = RealCluster(keep_logs=args.keep_logs)

    def start() -> list[str]:
        rc.start()
        assert rc.cp is not None and rc.node is not None
        if args.metrics_server:
            from tests.cluster import metrics_server
            from tests.cluster.binaries import ensure_metrics_server

            metrics_server.deploy(rc.cp, rc.node, ensure_metrics_server())
        nodes = register_pools(rc.cp, args.pools)
        return [f"nodes: {', '.join([*nodes, 'modelpack-node (real)'])}", f"kubeconfig: {rc.cp.kubeconfig}",
                f"node state: {rc.network.state_dir} (netns holder pid {rc.network.holder_pid})",
                f"export KUBECONFIG={rc.cp.kubeconfig}"]  # fmt: skip

    return _serve(start, rc.stop, (RuntimeError, TimeoutError))


def _serve(start: Callable[[], list[str]], stop: Callable[[], None], errors: tuple[type[Exception], ...]) -> int:
    """Start, say how to reach the cluster, hold it until Ctrl-C; stop it however this ends."""
    try:
        for line in start():
            print(line, flush=True)
        print("control plane up; Ctrl-C to stop", file=sys.stderr, flush=True)
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        print("stopping", file=sys.stderr, flush=True)
        return 0
    except errors as err:
        print(f"python -m tests.cluster up: error: {err}", file=sys.stderr)
        return 1
    finally:
        stop()


def _build() -> int:
    started = time.monotonic()
    try:
        bins = ensure_binaries()
    except RuntimeError as err:
        print(f"python -m tests.cluster build: error: {err}", file=sys.stderr)
        return 1
    for name, path in vars(bins).items():
        print(f"{name}: {path}")
    print(f"total: {time.monotonic() - started:.1f}s")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return _up(args) if args.command == "up" else _build()


if __name__ == "__main__":
    sys.exit(main())
