"""A real Kubernetes node for the test control plane: containerd + runc + CNI bridge, kubelet, kube-proxy.

Every component runs inside the node's own network and mount namespaces (``tests/cluster/netns.py``): the
kubelet registers with the control plane through the veth pair, containerd runs pods with runc and wires them into
a CNI bridge, kube-proxy programs iptables (inside the namespace only). Images come only from archives built here
(``tests/cluster/node_images.py``) and imported with ``ctr``; nothing can be pulled (no registry is reachable, and
the node has no route to one).

Two things this machine needs (both found by running it): containerd's CRI plugin runs with
``restrict_oom_score_adj`` because processes here lack CAP_SYS_RESOURCE (runc would fail every sandbox with
"failed to update /proc/self/oom_score_adj: Permission denied"); and the kubelet's pod cgroups live under their
own ``--cgroup-root`` (``/modelpack-node-<slot>``), which makes them findable and removable at teardown.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import time
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml

from tests.cluster import tomlw
from tests.cluster.binaries import NodeBinaries, ensure_node_binaries
from tests.cluster.hostclean import CGROUP_FS
from tests.cluster.netns import CLUSTER_CIDR, POD_CIDR, NodeNetwork
from tests.cluster.node_images import ImageSpec, build, images_dir, scratch_image
from tests.cluster.process import Component, stop_all

if TYPE_CHECKING:
    from tests.cluster.controlplane import ControlPlane

NODE_NAME = "modelpack-node"
CLUSTER_DNS = "10.96.0.10"
CLUSTER_DOMAIN = "cluster.local"
PAUSE_IMAGE = "localhost/modelpack/pause"
CNI_BIN_DIR = "/usr/lib/cni"
NODE_LABELS = {"modelpack.dev/real-node": "true"}
# In containerd's root after a stop that removed every container: the next start of the slot may keep the root.
CLEAN_MARK = ".stopped-clean"


def containerd_root(slot: int) -> Path:
    """containerd's root (content store, snapshots) for one node slot, kept across sessions in the cache.

    Importing the server image (gigabytes: PyPI's x86 torch brings CUDA) took 200 s per session; kept, an
    unchanged image costs nothing (a changed one is imported whole again). Only images survive a stop: every
    container is removed first, and a root without the clean-stop mark (a crashed run) is deleted on start.
    """
    return images_dir().parent / "node-containerd" / f"slot-{slot}"


class RealNodeError(RuntimeError):
    """A node component failed; the message carries the tail of its log."""


def stale_refs(listing: str, name: str, keep: str) -> list[str]:
    """From ``ctr images ls`` output, the references to delete so only ``keep`` of image ``name`` remains.

    containerd's CRI gives every image a second reference, ``sha256:<image id>``, with the same manifest
    digest; deleting only the old tag left that one holding the old image's gigabytes. So: the other tags of
    ``name``, and every ``sha256:`` reference whose manifest no remaining named reference points at.
    """
    rows = [line.split() for line in listing.splitlines()[1:] if line.strip()]
    digest = {row[0]: row[2] for row in rows if len(row) >= 3}
    tags = [r for r in digest if r.rsplit(":", 1)[0] == name and r != keep]
    kept = {d for r, d in digest.items() if not r.startswith("sha256:") and r not in tags}
    return tags + [r for r, d in digest.items() if r.startswith("sha256:") and d not in kept]


def pause_image(bins: NodeBinaries) -> ImageSpec:
    return scratch_image(PAUSE_IMAGE, [bins.pause], "pause", user="65535:65535")


def containerd_config(state: Path, sandbox_image: str, root: Path) -> dict[str, Any]:
    """containerd 1.6's config: own root/state/socket, CRI with a local sandbox image and our CNI conf dir."""
    return {
        "version": 2,
        "root": str(root),
        "state": "/run/containerd",  # a tmpfs of the node's mount namespace
        # A plugin that would create /opt/containerd on the host, and snapshotters nobody uses.
        "disabled_plugins": [
            "io.containerd.internal.v1.opt",
            "io.containerd.snapshotter.v1.aufs",
            "io.containerd.snapshotter.v1.btrfs",
            "io.containerd.snapshotter.v1.devmapper",
            "io.containerd.snapshotter.v1.zfs",
            "io.containerd.tracing.processor.v1.otlp",
        ],
        "grpc": {"address": str(state / "containerd.sock")},
        "debug": {"address": ""},
        "metrics": {"address": ""},
        "plugins": {
            "io.containerd.grpc.v1.cri": {
                "sandbox_image": sandbox_image,
                "restrict_oom_score_adj": True,
                "disable_apparmor": True,
                "enable_selinux": False,
                "containerd": {
                    "snapshotter": "overlayfs",
                    "default_runtime_name": "runc",
                    "runtimes": {
                        "runc": {
                            "runtime_type": "io.containerd.runc.v2",
                            "options": {"SystemdCgroup": False},
                        }
                    },
                },
                "cni": {"bin_dir": CNI_BIN_DIR, "conf_dir": str(state / "cni")},
            }
        },
    }


def cni_config(state: Path) -> dict[str, Any]:
    """One bridge network for the node's pods; host-local IPAM keeps its leases in the state dir."""
    return {
        "cniVersion": "1.0.0",
        "name": "modelpack",
        "plugins": [
            {
                "type": "bridge",
                "bridge": "cni0",
                "isGateway": True,
                "ipMasq": True,  # pod -> apiserver leaves with the node's address (the host has no pod route)
                "hairpinMode": True,
                "ipam": {
                    "type": "host-local",
                    "ranges": [[{"subnet": POD_CIDR}]],
                    "routes": [{"dst": "0.0.0.0/0"}],
                    "dataDir": str(state / "cni-ipam"),
                },
            },
            {"type": "portmap", "capabilities": {"portMappings": True}},
        ],
    }


def kubelet_config(state: Path, node_ip: str, cgroup_root: str, ca: Path, serving: tuple[Path, Path]) -> dict[str, Any]:
    """The KubeletConfiguration: webhook authn/authz, cgroupfs under our own root, no image GC, no swap check."""
    return {
        "apiVersion": "kubelet.config.k8s.io/v1beta1",
        "kind": "KubeletConfiguration",
        "address": node_ip,
        "port": 10250,
        "readOnlyPort": 0,
        "healthzBindAddress": "127.0.0.1",
        "healthzPort": 10248,
        "authentication": {
            "anonymous": {"enabled": False},
            "webhook": {"enabled": True},
            "x509": {"clientCAFile": str(ca)},
        },
        "authorization": {"mode": "Webhook"},
        "tlsCertFile": str(serving[0]),
        "tlsPrivateKeyFile": str(serving[1]),
        "containerRuntimeEndpoint": f"unix://{state / 'containerd.sock'}",
        "cgroupDriver": "cgroupfs",
        "cgroupRoot": f"/{cgroup_root}",
        "cgroupsPerQOS": True,
        "failCgroupV1": False,  # this machine has cgroup v1 (the kubelet's maintenance mode, still supported)
        "failSwapOn": False,
        "clusterDNS": [CLUSTER_DNS],
        "clusterDomain": CLUSTER_DOMAIN,
        "resolvConf": "",  # pods get the cluster DNS only, never the host's resolvers
        "podLogsDir": str(state / "pod-logs"),
        # Imported images cannot be pulled again: never garbage-collect them, never evict for disk.
        "imageGCHighThresholdPercent": 100,
        "imageGCLowThresholdPercent": 99,
        "evictionHard": {"memory.available": "100Mi", "nodefs.available": "1%", "imagefs.available": "1%"},
        "serializeImagePulls": False,
        "shutdownGracePeriod": "0s",
        "nodeStatusUpdateFrequency": "4s",
        "syncFrequency": "10s",
        "registerNode": True,
        "rotateCertificates": False,
        "serverTLSBootstrap": False,
    }


def kube_proxy_config(kubeconfig: Path, node_ip: str) -> dict[str, Any]:
    """iptables mode; conntrack sysctls are global on this kernel, so kube-proxy must leave them alone."""
    return {
        "apiVersion": "kubeproxy.config.k8s.io/v1alpha1",
        "kind": "KubeProxyConfiguration",
        "clientConnection": {"kubeconfig": str(kubeconfig)},
        "mode": "iptables",
        "clusterCIDR": CLUSTER_CIDR,
        "hostnameOverride": NODE_NAME,
        "bindAddress": node_ip,
        "healthzBindAddress": f"{node_ip}:10256",
        "metricsBindAddress": "127.0.0.1:10249",
        "conntrack": {"maxPerCore": 0, "min": 0, "tcpEstablishedTimeout": "0s", "tcpCloseWaitTimeout": "0s"},
        "iptables": {"masqueradeAll": True, "syncPeriod": "10s", "minSyncPeriod": "0s"},
    }


def _write_yaml(path: Path, doc: Mapping[str, Any]) -> Path:
    path.write_text(yaml.safe_dump(dict(doc), sort_keys=False))
    return path


def make_cgroup_root(root: str) -> None:
    """The kubelet refuses a --cgroup-root that does not exist; cpuset children need cpus/mems to take tasks."""
    for hierarchy in sorted(CGROUP_FS.iterdir()):
        if not (hierarchy / "cgroup.procs").exists():
            continue
        child = hierarchy / root
        child.mkdir(exist_ok=True)
        for name in ("cpuset.cpus", "cpuset.mems"):
            if (hierarchy / name).exists():
                (child / name).write_text((hierarchy / name).read_text())


class RealNode:
    """``node = RealNode(network, cp).start()`` ... ``node.stop()``; ``network`` and ``cp`` are started first."""

    def __init__(self, network: NodeNetwork, cp: ControlPlane, binaries: NodeBinaries | None = None) -> None:
        self.network = network
        self.cp = cp
        self.bins = binaries or ensure_node_binaries()
        self.state = network.state_dir
        self.log_dir = self.state / "logs"
        self._components: list[Component] = []
        self.images: dict[str, str] = {}  # ref -> archive already imported
        self.root: Path | None = None

    def _spawn(self, name: str, argv: list[str]) -> Component:
        comp = Component(name=name, argv=self.network.nsenter(argv), log_path=self.log_dir / f"{name}.log",
                         cwd=self.state)  # fmt: skip
        comp.start()
        self._components.append(comp)
        return comp

    def _wait(self, comp: Component, ready, what: str, timeout: float = 90) -> None:  # type: ignore[no-untyped-def]
        deadline = time.monotonic() + timeout
        while not ready():
            if comp.exit_code() is not None:
                raise RealNodeError(
                    f"{comp.name} exited with {comp.exit_code()} while waiting for {what}:\n{comp.tail()}"
                )
            if time.monotonic() > deadline:
                raise RealNodeError(f"timed out after {timeout:.0f}s waiting for {what}:\n{comp.tail()}")
            time.sleep(0.2)

    def ctr(self, *args: str, timeout: float = 600) -> subprocess.CompletedProcess[str]:
        """``ctr`` against the node's containerd in the CRI's namespace (where the kubelet's images live)."""
        proc = subprocess.run(
            ["ctr", "--address", str(self.state / "containerd.sock"), "--namespace", "k8s.io", *args],
            capture_output=True, text=True, timeout=timeout, check=False,
        )  # fmt: skip
        if proc.returncode != 0:
            raise RealNodeError(f"ctr {' '.join(args)} exited {proc.returncode}: {proc.stderr.strip()}")
        return proc

    def import_image(self, spec: ImageSpec) -> str:
        """Build (or find cached) ``spec`` and import it into the node's containerd; returns its reference."""
        ref = spec.ref()
        if ref in self.images:
            return ref
        present = self.ctr("images", "ls", "-q").stdout.split()
        if ref in present:
            self.images[ref] = "kept"
            return ref
        archive = build(spec)
        started = time.monotonic()
        self.ctr("images", "import", "--platform", spec.platform, str(archive))
        self.images[ref] = str(archive)
        # Other tags of the same image are older trees' builds: drop them after the import, so the layers they
        # share with the new tag (the server's gigabytes of dependencies) are not imported again.
        stale = stale_refs(self.ctr("images", "ls").stdout, spec.name, ref)
        if stale:
            self.ctr("images", "rm", "--sync", *stale)
        print(f"[realnode] imported {ref} in {time.monotonic() - started:.1f}s", flush=True)
        return ref

    def start(self) -> RealNode:
        net, cp, state = self.network, self.cp, self.state
        for sub in ("cni", "cni-ipam", "containerd", "kubelet", "pod-logs"):
            (state / sub).mkdir(parents=True, exist_ok=True)
        pause = pause_image(self.bins)
        (state / "cni" / "10-modelpack.conflist").write_text(json.dumps(cni_config(state), indent=1))
        root = self.root = containerd_root(net.slot)
        if root.exists() and not (root / CLEAN_MARK).exists():
            print(f"[realnode] {root}: slot {net.slot}'s last run did not stop cleanly; starting empty", flush=True)
            shutil.rmtree(root)
        root.mkdir(parents=True, exist_ok=True)
        (root / CLEAN_MARK).unlink(missing_ok=True)
        (state / "containerd.toml").write_text(tomlw.dumps(containerd_config(state, pause.ref(), root)))
        containerd = self._spawn("containerd", ["containerd", "--config", str(state / "containerd.toml")])
        sock = state / "containerd.sock"
        self._wait(containerd, lambda: sock.exists() and self._ctr_ok(), "containerd's socket")
        self.import_image(pause)

        serving = cp.serving_cert("kubelet-serving", NODE_NAME, [f"IP:{net.node_ip}", f"DNS:{NODE_NAME}"])
        kubelet_kc = cp.kubeconfig_for(f"system:node:{NODE_NAME}", ["system:nodes"])
        proxy_kc = cp.kubeconfig_for("system:kube-proxy")
        make_cgroup_root(net.markers.cgroup_root)
        cfg = _write_yaml(
            state / "kubelet.yaml",
            kubelet_config(state, net.node_ip, net.markers.cgroup_root, cp.ca_cert, (serving.cert, serving.key)),
        )
        labels = ",".join(f"{k}={v}" for k, v in NODE_LABELS.items())
        kubelet = self._spawn("kubelet", [
            str(self.bins.kubelet), f"--config={cfg}", f"--kubeconfig={kubelet_kc}", f"--root-dir={state / 'kubelet'}",
            f"--node-ip={net.node_ip}", f"--hostname-override={NODE_NAME}", f"--node-labels={labels}", "--v=1",
        ])  # fmt: skip
        proxy_cfg = _write_yaml(state / "kube-proxy.yaml", kube_proxy_config(proxy_kc, net.node_ip))
        self._spawn("kube-proxy", [str(self.bins.kube_proxy), f"--config={proxy_cfg}", "--v=1"])
        self._wait(kubelet, self._node_ready, f"node {NODE_NAME} Ready", timeout=120)
        return self

    def _ctr_ok(self) -> bool:
        try:
            self.ctr("version", timeout=5)
            return True
        except (RealNodeError, subprocess.TimeoutExpired):
            return False

    def _node_ready(self) -> bool:
        ready = "jsonpath={.status.conditions[?(@.type=='Ready')].status}"
        proc = self.cp.kubectl("get", "node", NODE_NAME, "-o", ready, check=False)
        return proc.stdout.strip() == "True"

    def logs(self) -> dict[str, Path]:
        return {c.name: c.log_path for c in self._components}

    def _remove_containers(self) -> bool:
        """Kill and delete every container in containerd (the images stay); True if none is left."""
        try:
            ids = self.ctr("containers", "ls", "-q", timeout=30).stdout.split()
            for cid in ids:
                subprocess.run(
                    ["ctr", "--address", str(self.state / "containerd.sock"), "-n", "k8s.io", "tasks", "rm", "-f", cid],
                    capture_output=True, timeout=30, check=False,
                )  # fmt: skip
            if ids:
                self.ctr("containers", "rm", *ids, timeout=60)
            return not self.ctr("containers", "ls", "-q", timeout=30).stdout.split()
        except (RealNodeError, subprocess.TimeoutExpired) as err:
            print(f"[realnode] could not empty containerd ({err}); its root will be deleted on the next start")
            return False

    def stop(self, keep_logs_in: Path | None = None) -> None:
        """Stop the kubelet and kube-proxy, delete every container, stop containerd; the slot's cleanup
        (``NodeNetwork.destroy``) then kills whatever is left (pods, shims) with the namespaces."""
        daemons = [c for c in reversed(self._components) if c.name != "containerd"]
        containerd = [c for c in self._components if c.name == "containerd"]
        stop_all(daemons, grace=3.0)
        clean = bool(containerd) and containerd[0].exit_code() is None and self._remove_containers()
        stop_all(containerd, grace=5.0)
        if clean and self.root is not None and containerd[0].exit_code() == 0:
            (self.root / CLEAN_MARK).touch()
        self._components = []
        if keep_logs_in is not None and self.log_dir.exists():
            shutil.copytree(self.log_dir, keep_logs_in, dirs_exist_ok=True)
