"""A control plane with one real node and cluster DNS, started and stopped as one unit.

Order matters: the node's network first (the apiserver listens on the host end of its veth pair), then the
control plane, then the node's daemons, then CoreDNS. Teardown runs the other way and ends by checking that the
slot left nothing on the host (``hostclean``); a leftover raises, so every test session proves it.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

from tests.cluster import cluster_dns
from tests.cluster.binaries import NodeBinaries, ensure_node_binaries
from tests.cluster.controlplane import ControlPlane
from tests.cluster.netns import NodeNetwork
from tests.cluster.node_images import ImageSpec, scratch_image
from tests.cluster.realnode import CLUSTER_DNS, CLUSTER_DOMAIN, RealNode

BUSYBOX = Path("/bin/busybox")
# The HPA controller at test speed: a decision every 5 s (default 15 s), and a scale-in once the recommendation
# has been lower for 20 s (default 5 min). Only a cluster with real pods and resource metrics has HPAs that act.
HPA_CONTROLLER_ARGS = (
    "--horizontal-pod-autoscaler-sync-period=5s",
    "--horizontal-pod-autoscaler-downscale-stabilization=20s",
)


def coredns_image(bins: NodeBinaries) -> ImageSpec:
    return scratch_image("localhost/modelpack/coredns", [bins.coredns], "coredns")


def busybox_image() -> ImageSpec:
    """Debian's static busybox alone: ``httpd``, ``wget``, ``nslookup`` for probe pods (run as non-root)."""
    return scratch_image("localhost/modelpack/busybox", [BUSYBOX], "busybox")


class RealCluster:
    """``with RealCluster() as rc:`` gives ``rc.cp`` (ControlPlane), ``rc.node`` (RealNode), ``rc.network``."""

    def __init__(self, *, keep_logs: bool = False, dns: bool = True) -> None:
        self.keep_logs = keep_logs
        self.dns = dns
        self.network = NodeNetwork()
        self.cp: ControlPlane | None = None
        self.node: RealNode | None = None
        self.kept_logs: Path | None = None

    def __enter__(self) -> RealCluster:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def start(self) -> RealCluster:
        began = time.monotonic()
        bins = ensure_node_binaries()
        try:
            self.network.create()
            self.cp = ControlPlane(bind_address=self.network.host_ip, controller_args=HPA_CONTROLLER_ARGS).start()
            self.node = RealNode(self.network, self.cp, bins).start()
            if self.dns:
                image = self.node.import_image(coredns_image(bins))
                cluster_dns.deploy(self.cp, image, CLUSTER_DNS, CLUSTER_DOMAIN)
        except BaseException:
            self.keep_logs = True
            self.stop()
            raise
        print(f"[realcluster] ready in {time.monotonic() - began:.1f}s (slot {self.network.slot})", file=sys.stderr)
        return self

    def stop(self) -> None:
        """Node daemons, then the control plane, then every leftover of the slot; raises if any survives."""
        if self.keep_logs:
            self.kept_logs = Path(f"/tmp/modelpack-node-logs-{time.strftime('%Y%m%dT%H%M%S')}")
        if self.node is not None:
            self.node.stop(keep_logs_in=self.kept_logs)
            self.node = None
        if self.cp is not None:
            if self.kept_logs is not None:
                self.cp.keep_logs = True
            self.cp.stop()
            if self.kept_logs is not None:
                print(f"[realcluster] logs kept in {self.kept_logs} and {self.cp.log_dir}", file=sys.stderr)
            self.cp = None
        self.network.destroy()
