"""A real kube-apiserver, with Karpenter's and modelpack's CRDs, accepts examples/eks (server-side dry run)."""

from __future__ import annotations

import copy
from pathlib import Path

import pytest
import yaml

from tests.cluster.controlplane import ControlPlane
from tests.eks.karpenter_crds import karpenter_crds
from tests.eks.manifests import EKS_DIR, objects, rendered

REPO = Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.cluster


def install_crds(cp: ControlPlane, files: list[Path]) -> ControlPlane:
    for path in files:
        cp.kubectl("apply", "--server-side", "--force-conflicts", "-f", str(path))
    names = [yaml.safe_load(p.read_text())["metadata"]["name"] for p in files]
    cp.kubectl("wait", "--for=condition=Established", "--timeout=60s", *[f"crd/{n}" for n in names])
    return cp


@pytest.fixture(scope="module")
def crds_installed(control_plane: ControlPlane) -> ControlPlane:
    return install_crds(control_plane, karpenter_crds())


@pytest.fixture(scope="module")
def modelpack_crds(control_plane: ControlPlane) -> ControlPlane:
    return install_crds(control_plane, sorted((REPO / "crds").glob("*.yaml")))


def dry_run(cp: ControlPlane, text: str, namespace: str | None = None, check: bool = True) -> str:
    ns = ["-n", namespace] if namespace else []
    proc = cp.kubectl("apply", "--dry-run=server", "--validate=strict", *ns, "-f", "-", input=text, check=check)
    return proc.stdout + proc.stderr


def test_karpenter_nodepools_and_nodeclass_are_accepted(crds_installed: ControlPlane) -> None:
    out = dry_run(crds_installed, rendered("karpenter.yaml"))
    for name in ("graviton", "x86", "inferentia", "gpu"):
        assert f"nodepool.karpenter.sh/{name} created (server dry run)" in out
    assert "ec2nodeclass.karpenter.k8s.aws/modelpack created (server dry run)" in out


def test_karpenter_schema_is_really_enforced(crds_installed: ControlPlane) -> None:
    # The check above can fail: a taint effect Karpenter does not know is refused.
    docs = objects("karpenter.yaml")
    broken = copy.deepcopy(next(d for d in docs if d["metadata"]["name"] == "inferentia"))
    broken["spec"]["template"]["spec"]["taints"][0]["effect"] = "Sometimes"
    out = dry_run(crds_installed, yaml.safe_dump(broken), check=False)
    assert 'Unsupported value: "Sometimes"' in out


def test_neuron_device_plugin_is_accepted(crds_installed: ControlPlane) -> None:
    out = dry_run(crds_installed, rendered("neuron-device-plugin.yaml"))
    assert "daemonset.apps/neuron-device-plugin created (server dry run)" in out


def test_modelpack_examples_are_accepted(modelpack_crds: ControlPlane, namespace: str) -> None:
    for name in ("modelpack.yaml", "loadtest.yaml"):
        text = (EKS_DIR / name).read_text().replace("namespace: default", f"namespace: {namespace}")
        assert "created (server dry run)" in dry_run(modelpack_crds, text, namespace)
