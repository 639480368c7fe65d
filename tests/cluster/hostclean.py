"""What a real test node leaves on the host, found from /proc and /sys alone, and how to remove it.

One function finds, another removes: the node's teardown removes, the next run removes what a crashed run left
(its slot's lock is free but its state is not), and the teardown test asserts that nothing is found. Everything is
matched by the slot's own markers (its state dir, cgroup root and veth name), never by a process name, so another
engineer's containerd or pods are not touched.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

CGROUP_FS = Path("/sys/fs/cgroup")


@dataclass(frozen=True)
class Markers:
    """How one node slot's leftovers are recognised."""

    state_dir: Path  # appears in the command line of containerd, its shims, kubelet, kube-proxy and the holder
    cgroup_root: str  # the kubelet's --cgroup-root, e.g. "modelpack-node-0"; every pod cgroup lies under it
    host_link: str  # the host end of the node's veth pair
    netns_inode: int | None = None  # the node's network namespace, when known (a running node knows it)


@dataclass
class Leftovers:
    processes: dict[int, str] = field(default_factory=dict)  # pid -> command line
    cgroups: list[Path] = field(default_factory=list)
    mounts: list[str] = field(default_factory=list)  # host mountinfo lines under the state dir or of the netns
    links: list[str] = field(default_factory=list)
    netns_holders: list[int] = field(default_factory=list)  # pids still in the node's network namespace

    def empty(self) -> bool:
        return not (self.processes or self.cgroups or self.mounts or self.links or self.netns_holders)

    def describe(self) -> str:
        parts = [f"process {pid}: {cmd[:160]}" for pid, cmd in sorted(self.processes.items())]
        parts += [f"cgroup {c}" for c in self.cgroups]
        parts += [f"mount {m}" for m in self.mounts]
        parts += [f"link {link}" for link in self.links]
        parts += [f"pid {pid} in the node's network namespace" for pid in self.netns_holders]
        return "\n".join(parts) or "nothing"


def _cmdline(pid: int) -> str:
    try:
        return (Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")).strip()
    except OSError:
        return ""


def _in_cgroup(pid: int, root: str) -> bool:
    try:
        text = Path(f"/proc/{pid}/cgroup").read_text()
    except OSError:
        return False
    return any(
        line.split(":", 2)[-1].startswith(f"/{root}/") or line.endswith(f":/{root}") for line in text.splitlines()
    )


def _netns_inode(pid: int) -> int | None:
    try:
        return os.stat(f"/proc/{pid}/ns/net").st_ino
    except OSError:
        return None


def _pids() -> list[int]:
    return [int(d) for d in os.listdir("/proc") if d.isdigit() and int(d) != os.getpid()]


def cgroup_dirs(root: str) -> list[Path]:
    """Every cgroup under ``root`` in every v1 hierarchy (and the unified one), deepest first."""
    found: list[Path] = []
    for hierarchy in CGROUP_FS.iterdir() if CGROUP_FS.is_dir() else []:
        top = hierarchy / root
        if top.is_dir():
            found += [Path(d) for d, _, _ in os.walk(top)]
    return sorted(found, key=lambda p: len(p.parts), reverse=True)


def find(markers: Markers) -> Leftovers:
    found = Leftovers()
    state = str(markers.state_dir)
    for pid in _pids():
        cmd = _cmdline(pid)
        if (state in cmd) or _in_cgroup(pid, markers.cgroup_root):
            found.processes[pid] = cmd or "(exited)"
        elif markers.netns_inode is not None and _netns_inode(pid) == markers.netns_inode:
            found.netns_holders.append(pid)
    found.cgroups = cgroup_dirs(markers.cgroup_root)
    with contextlib.suppress(OSError):
        for line in Path("/proc/self/mountinfo").read_text().splitlines():
            if state in line or (markers.netns_inode is not None and f"net:[{markers.netns_inode}]" in line):
                found.mounts.append(line)
    if Path(f"/sys/class/net/{markers.host_link}").exists():
        found.links.append(markers.host_link)
    return found


def remove(markers: Markers, timeout: float = 20.0) -> Leftovers:
    """SIGKILL the slot's processes until none are left, then delete its cgroups, mounts and link.

    Killing every process frees the node's mount and network namespaces (they have no bind mounts on the
    host), which takes its mounts, the CNI bridge, the pods' namespaces and all of kube-proxy's iptables rules
    with them. Returns what could not be removed within ``timeout`` (empty on success).
    """
    deadline = time.monotonic() + timeout
    while True:
        left = find(markers)
        for pid in [*left.processes, *left.netns_holders]:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(pid, signal.SIGKILL)
        for line in left.mounts:
            mountpoint = line.split()[4]
            subprocess.run(["umount", "-l", mountpoint], capture_output=True, check=False)
        for link in left.links:
            subprocess.run(["ip", "link", "del", link], capture_output=True, check=False)
        for cgroup in left.cgroups:
            with contextlib.suppress(OSError):
                cgroup.rmdir()
        if left.empty():
            return left
        if time.monotonic() > deadline:
            return find(markers)
        time.sleep(0.2)
