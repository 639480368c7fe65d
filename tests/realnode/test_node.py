"""The real node: registers, runs pods from images built here, Services through kube-proxy, cluster DNS."""

from __future__ import annotations

import ipaddress

from tests.cluster.netns import POD_CIDR
from tests.cluster.realcluster import RealCluster, busybox_image
from tests.cluster.realnode import NODE_NAME, PAUSE_IMAGE, pause_image
from tests.realnode.pods import busybox_pod, wait_phase, wait_ready, web_objects


def _cp(rc: RealCluster):  # type: ignore[no-untyped-def]
    assert rc.cp is not None and rc.node is not None
    return rc.cp


def test_node_registers_with_the_control_plane_from_its_namespace(real_cluster: RealCluster) -> None:
    node = _cp(real_cluster).kubectl_json("get", "node", NODE_NAME)
    info = node["status"]["nodeInfo"]
    assert info["kubeletVersion"] == "v1.34.4"
    assert info["containerRuntimeVersion"].startswith("containerd://1.6")
    addresses = {a["type"]: a["address"] for a in node["status"]["addresses"]}
    assert addresses["InternalIP"] == real_cluster.network.node_ip
    # The apiserver is reached (and advertised) on the host end of the node's veth, not on loopback.
    assert _cp(real_cluster).server.startswith(f"https://{real_cluster.network.host_ip}:")
    endpoints = _cp(real_cluster).kubectl_json("get", "endpointslices", "-n", "default", "-l",
                                               "kubernetes.io/service-name=kubernetes")  # fmt: skip
    assert endpoints["items"][0]["endpoints"][0]["addresses"] == [real_cluster.network.host_ip]
    images = {name for image in node["status"]["images"] for name in image.get("names") or []}
    assert pause_image(real_cluster.node.bins).ref() in images and any(PAUSE_IMAGE in i for i in images)


def test_the_node_namespace_has_no_way_out(real_cluster: RealCluster) -> None:
    routes = real_cluster.network.run("ip", "-4", "route", "show", "table", "all").stdout
    assert "default" not in routes
    host_routes = __import__("subprocess").run(["ip", "-4", "route"], capture_output=True, text=True).stdout
    assert "10.244." not in host_routes and "10.96." not in host_routes


def test_a_pod_is_reachable_by_service_ip_and_dns_name_from_another_pod(
    real_cluster: RealCluster, real_namespace: str
) -> None:
    cp, ns = _cp(real_cluster), real_namespace
    image = real_cluster.node.import_image(busybox_image())  # type: ignore[union-attr]
    cp.apply(web_objects(image), namespace=ns)
    wait_ready(cp, ns, "web")
    pod = cp.kubectl_json("get", "pod", "web", "-n", ns)
    assert ipaddress.ip_address(pod["status"]["podIP"]) in ipaddress.ip_network(POD_CIDR)
    cluster_ip = cp.kubectl("get", "svc", "web", "-n", ns, "-o", "jsonpath={.spec.clusterIP}").stdout.strip()
    for target, name in ((cluster_ip, "by-ip"), (f"web.{ns}.svc.cluster.local", "by-name")):
        # No `-T`: Debian's busybox-static 1.35 wget segfaults with a timeout; the pod's deadline bounds it.
        cp.apply(busybox_pod(name, image, ["wget", "-q", "-O", "-", f"http://{target}/"]), namespace=ns)
    for name in ("by-ip", "by-name"):
        assert wait_phase(cp, ns, name, ("Succeeded", "Failed")) == "Succeeded", cp.kubectl(
            "logs", name, "-n", ns, check=False
        ).stdout
        # `kubectl logs` goes apiserver -> kubelet (its serving cert, the apiserver's kubelet client cert).
        assert cp.kubectl("logs", name, "-n", ns).stdout == "hello from a real pod\n"
    # kube-proxy's rules for the Service exist in the node's namespace, and nothing of it on the host.
    rules = real_cluster.network.run("iptables-save", "-t", "nat").stdout
    assert f"-d {cluster_ip}/32" in rules and "KUBE-SERVICES" in rules
    host = __import__("subprocess").run(["iptables-save", "-t", "nat"], capture_output=True, text=True).stdout
    assert "KUBE-" not in host and "CNI-" not in host


def test_containers_run_as_the_image_user_under_the_nodes_cgroup_root(
    real_cluster: RealCluster, real_namespace: str
) -> None:
    cp, ns = _cp(real_cluster), real_namespace
    image = real_cluster.node.import_image(busybox_image())  # type: ignore[union-attr]
    cp.apply(busybox_pod("who", image, ["sh", "-c", "id -u; cat /proc/self/cgroup; touch /x 2>&1 || echo ro"]),
             namespace=ns)  # fmt: skip
    assert wait_phase(cp, ns, "who", ("Succeeded", "Failed")) == "Succeeded"
    out = cp.kubectl("logs", "who", "-n", ns).stdout.splitlines()
    assert out[0] == "65532"
    assert any(f":/{real_cluster.network.markers.cgroup_root}/kubepods/" in line for line in out[1:])
    # touch's complaint goes to stdout too, so the two lines cannot interleave out of order in the log
    assert out[-2:] == ["touch: /x: Read-only file system", "ro"]
