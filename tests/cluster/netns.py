"""The real node's own network and mount namespaces, and the veth pair that is its only way out.

A holder process (``unshare --mount --net``) owns both namespaces; every node component joins them with
``nsenter``. Nothing is bind-mounted on the host to keep the namespaces alive, so when the last process in them
dies, the kernel frees them with everything inside: the CNI bridge, the pods' veths, kube-proxy's and the bridge
plugin's iptables rules, every overlay/tmpfs/bind mount containerd and the kubelet made, and the veth pair (a veth
dies with its peer's namespace).

Layout (slot ``n`` of ``SLOTS``, so concurrent runs on one machine do not collide):

    host netns                              node netns (holder pid)
    mpk<n>h 172.31.254.<4n+1>/30  <-veth->  eth0 172.31.254.<4n+2>/30   (the node's InternalIP)
      kube-apiserver listens here            cni0 10.244.0.1/24 -> pods 10.244.0.0/24
                                             10.96.0.0/16 (Services) routed to lo; kube-proxy DNATs

The node netns has no default route: a pod can reach the apiserver and other pods, nothing else. The host has no
route into the pod or Service CIDR; tests reach pods from inside the namespace (``run()``) or from other pods.

A slot is claimed by binding the abstract unix socket ``@modelpack-node-<n>`` (no file to leave behind; the
kernel releases it when the claiming process dies, however it dies). A slot that is free but whose state is not
(a crashed run) is cleaned before use by ``hostclean.remove``.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

from tests.cluster import hostclean
from tests.cluster.process import Component

SLOTS = 16
LINK_PREFIX = "172.31.254"
POD_CIDR = "10.244.0.0/24"
POD_GATEWAY = "10.244.0.1"
CLUSTER_CIDR = "10.244.0.0/16"
SERVICE_CIDR = "10.96.0.0/16"
STATE_PARENT = Path("/tmp")
# Host directories the node's components write to by fixed path; in the node's mount namespace each is a fresh
# tmpfs, so nothing lands on the host: /run (containerd's shim sockets, runc state, CNI netns pins, the
# xtables lock), /var/log (pod logs and their /var/log/containers links), /var/lib (libcni's result cache).
PRIVATE_DIRS = ("/run", "/var/log", "/var/lib")


class NodeNetworkError(RuntimeError):
    """The node's namespaces or veth could not be set up; the message names the command and its output."""


def _log(msg: str) -> None:
    print(f"[realnode] {msg}", file=sys.stderr, flush=True)


def _run(argv: list[str], what: str) -> str:
    proc = subprocess.run(argv, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise NodeNetworkError(f"{what}: {' '.join(argv)} exited {proc.returncode}: {proc.stderr.strip()}")
    return proc.stdout


def markers(slot: int) -> hostclean.Markers:
    return hostclean.Markers(
        state_dir=STATE_PARENT / f"modelpack-node-{slot}",
        cgroup_root=f"modelpack-node-{slot}",
        host_link=f"mpk{slot}h",
    )


class NodeNetwork:
    """Claims a slot, cleans what a crashed run left in it, and creates the namespaces and veth pair."""

    def __init__(self) -> None:
        self.slot = -1
        self.markers = markers(0)
        self.holder: Component | None = None
        self._lock: socket.socket | None = None

    @property
    def state_dir(self) -> Path:
        return self.markers.state_dir

    @property
    def host_ip(self) -> str:
        return f"{LINK_PREFIX}.{4 * self.slot + 1}"

    @property
    def node_ip(self) -> str:
        return f"{LINK_PREFIX}.{4 * self.slot + 2}"

    @property
    def holder_pid(self) -> int:
        if self.holder is None or self.holder.popen is None:
            raise NodeNetworkError("the node network is not up")
        return self.holder.popen.pid

    def nsenter(self, argv: list[str]) -> list[str]:
        """``argv`` run inside the node's mount and network namespaces."""
        return ["nsenter", f"--target={self.holder_pid}", "--mount", "--net", "--", *argv]

    def run(self, *argv: str, check: bool = True, timeout: float = 60) -> subprocess.CompletedProcess[str]:
        """Run a command inside the node's namespaces (``iptables-save``, ``ctr``, ``busybox wget`` ...)."""
        proc = subprocess.run(self.nsenter(list(argv)), capture_output=True, text=True, timeout=timeout, check=False)
        if check and proc.returncode != 0:
            raise NodeNetworkError(f"in the node netns: {' '.join(argv)} exited {proc.returncode}: {proc.stderr}")
        return proc

    # lifecycle ---------------------------------------------------------------------------------

    def _claim_slot(self) -> None:
        """Take the first free slot; on the way, clean every free slot a crashed run left state in."""
        for slot in range(SLOTS):
            lock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            try:
                lock.bind(f"\0modelpack-node-{slot}")
            except OSError:
                lock.close()
                continue
            mark = markers(slot)
            if mark.state_dir.exists() or Path(f"/sys/class/net/{mark.host_link}").exists():
                _log(f"slot {slot}: removing what a crashed run left:\n{hostclean.find(mark).describe()}")
                left = hostclean.remove(mark)
                if not left.empty():
                    lock.close()
                    raise NodeNetworkError(f"could not clean node slot {slot}:\n{left.describe()}")
                shutil.rmtree(mark.state_dir, ignore_errors=True)
            if self._lock is None:
                self._lock, self.slot, self.markers = lock, slot, mark
            else:
                lock.close()  # cleaned only: a lower slot is already ours
        if self._lock is None:
            raise NodeNetworkError(f"all {SLOTS} real-node slots are in use (abstract sockets @modelpack-node-*)")

    def create(self) -> NodeNetwork:
        self._claim_slot()
        state = self.state_dir
        (state / "logs").mkdir(parents=True, exist_ok=True)
        holder = Component(
            name="netns-holder",
            # The state dir in the command line marks the holder as this slot's (hostclean matches on it).
            argv=[
                "unshare",
                "--mount",
                "--net",
                "--propagation",
                "private",
                "--",
                sys.executable,
                "-c",
                "import signal; signal.pause()",
                str(state),
            ],
            log_path=state / "logs" / "netns-holder.log",
            cwd=state,
        )
        holder.start()
        self.holder = holder
        own = os.stat("/proc/self/ns/net").st_ino
        deadline = time.monotonic() + 10
        while True:
            with contextlib.suppress(OSError):
                if os.stat(f"/proc/{self.holder_pid}/ns/net").st_ino != own:
                    break
            if holder.exit_code() is not None or time.monotonic() > deadline:
                raise NodeNetworkError(f"the namespace holder did not start:\n{holder.tail()}")
            time.sleep(0.02)
        inode = os.stat(f"/proc/{self.holder_pid}/ns/net").st_ino
        self.markers = hostclean.Markers(
            state_dir=state, cgroup_root=self.markers.cgroup_root, host_link=self.markers.host_link, netns_inode=inode
        )
        link = self.markers.host_link
        _run(["ip", "link", "add", link, "type", "veth", "peer", "name", "eth0", "netns", str(self.holder_pid)], "veth")
        _run(["ip", "addr", "add", f"{self.host_ip}/30", "dev", link], "host address")
        _run(["ip", "link", "set", link, "up"], "host link up")
        for argv in (
            ["ip", "link", "set", "lo", "up"],
            ["ip", "addr", "add", f"{self.node_ip}/30", "dev", "eth0"],
            ["ip", "link", "set", "eth0", "up"],
            # A route for Service IPs so the node's own processes can connect (kube-proxy's OUTPUT DNAT
            # rewrites them); a Service IP nobody serves goes to lo and is dropped there.
            ["ip", "route", "add", SERVICE_CIDR, "dev", "lo"],
            ["sysctl", "-qw", "net.ipv4.ip_forward=1"],
            *(["mount", "-t", "tmpfs", "-o", "mode=755", "tmpfs", d] for d in PRIVATE_DIRS),
        ):
            _run(self.nsenter(argv), "node namespace setup")
        # Pod -> Service -> pod on the same bridge needs bridged replies to pass conntrack (br_netfilter).
        self.run("sh", "-c", "[ ! -e /proc/sys/net/bridge ] || sysctl -qw net.bridge.bridge-nf-call-iptables=1")
        _log(f"slot {self.slot}: netns ready, host {self.host_ip} <-> node {self.node_ip} ({link})")
        return self

    def destroy(self) -> None:
        """Kill everything of this slot, delete its state dir, check nothing is left, release the slot."""
        if self._lock is None:
            return
        try:
            left = hostclean.remove(self.markers)
            if self.holder is not None:
                self.holder.close()
            if not left.empty():
                raise NodeNetworkError(f"node slot {self.slot} teardown left:\n{left.describe()}")
            shutil.rmtree(self.state_dir, ignore_errors=True)
        finally:
            self._lock.close()
            self._lock = None
