"""The aggregation layer the real node's metrics-server plugs into: what the apiserver publishes for extension
apiservers, and the metrics-server objects as the apiserver validates them (the pods themselves run only on the
real node, ``tests/realnode/test_autoscaling.py``)."""

from __future__ import annotations

import json

import pytest
import yaml

from tests.cluster import metrics_server
from tests.cluster.controlplane import FRONT_PROXY_CLIENT, ControlPlane

pytestmark = pytest.mark.cluster


def test_the_apiserver_publishes_the_front_proxy_ca_and_name_for_extension_apiservers(
    control_plane: ControlPlane,
) -> None:
    cm = control_plane.kubectl_json("get", "configmap", "extension-apiserver-authentication", "-n", "kube-system")
    data = cm["data"]
    assert json.loads(data["requestheader-allowed-names"]) == [FRONT_PROXY_CLIENT]
    assert json.loads(data["requestheader-username-headers"]) == ["X-Remote-User"]
    assert json.loads(data["requestheader-group-headers"]) == ["X-Remote-Group"]
    assert json.loads(data["requestheader-extra-headers-prefix"]) == ["X-Remote-Extra-"]
    # Its own CA: a client cert of the cluster CA cannot pass for the front proxy.
    assert "BEGIN CERTIFICATE" in data["requestheader-client-ca-file"]
    assert data["requestheader-client-ca-file"].strip() != data["client-ca-file"].strip()


def test_the_metrics_server_objects_pass_the_apiservers_validation(control_plane: ControlPlane) -> None:
    cp = control_plane
    cert = cp.serving_cert("ms-dry-run", "metrics-server", [f"DNS:{metrics_server.service_dns()}"])
    objects = metrics_server.rbac_objects() + metrics_server.server_objects(
        "localhost/modelpack/metrics-server:dry-run", "172.31.254.2", "https://172.31.254.1:6443",
        cert.cert.read_text(), cert.key.read_text(), cp.ca_cert.read_text(),
    )  # fmt: skip
    got = cp.kubectl("apply", "--dry-run=server", "-f", "-", input=yaml.safe_dump_all(objects))
    kinds = sorted(line.split()[0].split("/")[0] for line in got.stdout.splitlines())
    assert "apiservice.apiregistration.k8s.io" in kinds and "deployment.apps" in kinds, got.stdout
    assert len(kinds) == len(objects), got.stdout
