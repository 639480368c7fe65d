"""Teardown of a real node leaves nothing on the host, and a crashed run is cleaned up by the next one.

"Nothing" is checked from the host's side: no process of the slot (by its state dir in the command line or its
cgroup root), no cgroup under its root in any hierarchy, no mount under its state dir or of its network
namespace, no process left in that namespace (so the kernel has freed it, and the bridge, pod veths and every
iptables rule inside with it), no host veth, and the host's own iptables rules as they were.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from tests.cluster import hostclean
from tests.cluster.binaries import ensure_binaries
from tests.cluster.netns import NodeNetwork, markers
from tests.cluster.realcluster import RealCluster, busybox_image
from tests.realnode.pods import busybox_pod, wait_phase

pytestmark = [pytest.mark.cluster, pytest.mark.realnode]
ROOT = Path(__file__).resolve().parents[2]


def _iptables() -> str:
    return "\n".join(
        line
        for line in subprocess.run(["iptables-save"], capture_output=True, text=True, check=True).stdout.splitlines()
        if not line.startswith("#") and not line.startswith(":")  # comments and counters change on their own
    )


def _run_sleeper(rc: RealCluster, ns: str = "default") -> None:
    assert rc.cp is not None and rc.node is not None
    rc.cp.apply(busybox_pod("sleeper", rc.node.import_image(busybox_image()), ["sleep", "3600"]), namespace=ns)
    wait_phase(rc.cp, ns, "sleeper", ("Running",))


def test_teardown_leaves_no_process_cgroup_mount_namespace_link_or_rule() -> None:
    before = _iptables()
    rc = RealCluster(dns=False).start()
    try:
        _run_sleeper(rc)
        mark = rc.network.markers
        running = hostclean.find(mark)
        # The probe finds what a node consists of, so an empty result after teardown means something.
        assert running.processes and running.cgroups and running.links and mark.netns_inode is not None
        assert any("containerd-shim" in cmd for cmd in running.processes.values())
    finally:
        rc.stop()
    left = hostclean.find(mark)
    assert left.empty(), left.describe()
    assert not mark.state_dir.exists()
    assert _iptables() == before


def test_a_crashed_run_is_cleaned_up_by_the_next_one(tmp_path: Path) -> None:
    """SIGKILL a whole `python -m tests.cluster up --real-node`: its daemons die with it, but containerd's shims
    and the pods they run are designed to outlive containerd; the next node start finds and removes them."""
    log = tmp_path / "up.log"
    with log.open("wb") as out:
        up = subprocess.Popen(
            [sys.executable, "-m", "tests.cluster", "up", "--real-node", "--pools=x86=0"],
            cwd=ROOT, stdout=out, stderr=subprocess.STDOUT, start_new_session=True,
        )  # fmt: skip
    try:
        deadline = time.monotonic() + 240
        while "control plane up" not in log.read_text():
            assert up.poll() is None and time.monotonic() < deadline, log.read_text()[-3000:]
            time.sleep(0.5)
        text = log.read_text()
        kubeconfig = text.split("export KUBECONFIG=")[1].split()[0]
        slot = int(text.split("/tmp/modelpack-node-")[1].split()[0])
        env = {**os.environ, "KUBECONFIG": kubeconfig}
        bins = ensure_binaries()
        spec = busybox_image()
        # The crashed run's containerd imports the image when a pod needs it; here we import it by hand.
        subprocess.run(["ctr", "--address", f"/tmp/modelpack-node-{slot}/containerd.sock", "-n", "k8s.io", "images",
                        "import", str(spec.archive())], check=True, capture_output=True)  # fmt: skip
        pod = busybox_pod("orphan", spec.ref(), ["sleep", "3600"])
        subprocess.run([str(bins.kubectl), "apply", "-f", "-"], input=yaml.safe_dump(pod), text=True, env=env,
                       check=True, capture_output=True)  # fmt: skip

        def running() -> bool:
            got = subprocess.run([str(bins.kubectl), "get", "pod", "orphan", "-o", "jsonpath={.status.phase}"],
                                 env=env, capture_output=True, text=True)  # fmt: skip
            return got.stdout.strip() == "Running"

        while not running():
            assert time.monotonic() < deadline, log.read_text()[-3000:]
            time.sleep(0.5)
    finally:
        os.killpg(up.pid, signal.SIGKILL)
        up.wait()
        # The killed run's control plane work dir (not part of the node slot) has no owner left to delete it.
        workdir = log.read_text().split("kubeconfig: ", 1)[-1].split()[0] if "kubeconfig: " in log.read_text() else ""
        if workdir.startswith("/tmp/modelpack-cp-"):
            shutil.rmtree(Path(workdir).parent, ignore_errors=True)
    mark = markers(slot)
    time.sleep(1)  # the daemons' pdeathsig SIGKILLs are delivered; shims and pods stay
    crashed = hostclean.find(mark)
    assert any("containerd-shim" in cmd for cmd in crashed.processes.values()), crashed.describe()
    assert any("sleep 3600" in cmd for cmd in crashed.processes.values()), crashed.describe()
    assert crashed.cgroups and mark.state_dir.exists()

    nxt = NodeNetwork()
    nxt.create()  # claims the lowest free slot, cleaning every free slot with state on the way
    try:
        gone = hostclean.find(markers(slot))
        if nxt.slot == slot:  # the new node's own holder and link carry the same markers
            gone.processes = {p: c for p, c in gone.processes.items() if p != nxt.holder_pid}
            gone.links = []
        assert gone.empty(), gone.describe()
    finally:
        nxt.destroy()
    left = hostclean.find(nxt.markers)
    assert left.empty(), left.describe()
    assert not nxt.state_dir.exists()
