"""`helm upgrade` from the previous chart (CRDs in ``crds/``) to this one (templated CRDs with a keep policy), on a
control plane of its own: the CRDs are cluster-wide, and the session plane's are shared by every other test.

``fixtures/modelpack-0.1.0.tgz`` is the chart as it was before the change (``helm package`` of main's
``helm/modelpack``), so the test does not need git history.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.cluster.controlplane import ControlPlane
from tests.helm.helmcli import CHART, helm
from tests.operator.factories import loadtest_doc, pack_doc

pytestmark = pytest.mark.cluster

PREVIOUS_CHART = Path(__file__).with_name("fixtures") / "modelpack-0.1.0.tgz"
CRDS = ("modelpacks.modelpack.dev", "loadtests.modelpack.dev")
RELEASE, RELEASE_NS, PACKS_NS = "mp", "modelpack-system", "team-a"
KEEP = "helm.sh/resource-policy"


@pytest.fixture(scope="module")
def plane() -> Iterator[ControlPlane]:
    with ControlPlane() as cp:
        yield cp


def _crd(cp: ControlPlane, name: str) -> dict[str, Any]:
    return dict(cp.kubectl_json("get", "crd", name))


def _uids(cp: ControlPlane) -> dict[str, str]:
    out = {}
    for kind in ("modelpack/bert", "loadtest/lt"):
        out[kind] = cp.kubectl_json("get", kind, "-n", PACKS_NS)["metadata"]["uid"]
    return out


def _next_chart(tmp_path: Path) -> Path:
    """This chart as its next version would ship it, with a CRD change (a longer description of spec.models)."""
    chart = tmp_path / "modelpack"
    shutil.copytree(CHART, chart)
    meta = chart / "Chart.yaml"
    meta.write_text(meta.read_text().replace("\nversion: 0.2.0\n", "\nversion: 0.2.1\n"))
    template = chart / "templates" / "crds" / "modelpack.dev_modelpacks.yaml"
    text = template.read_text()
    old = "description: Which models the pack serves."
    assert text.count(old) == 1, "spec.models' description changed: update this test"
    template.write_text(text.replace(old, "description: Upgraded by helm. Which models the pack serves."))
    return chart


def test_helm_upgrade_from_the_previous_chart_upgrades_the_crds_and_keeps_them_and_the_objects(
    plane: ControlPlane, tmp_path: Path
) -> None:
    kc = plane.kubeconfig
    helm("install", RELEASE, str(PREVIOUS_CHART), "-n", RELEASE_NS, "--create-namespace", kubeconfig=kc)
    plane.kubectl("wait", "--for=condition=Established", "--timeout=60s", *(f"crd/{c}" for c in CRDS))
    before = _crd(plane, CRDS[0])
    assert KEEP not in before["metadata"].get("annotations", {})  # crds/: installed once, owned by no release
    plane.kubectl("create", "namespace", PACKS_NS)
    plane.apply([pack_doc(namespace=PACKS_NS), loadtest_doc(namespace=PACKS_NS)], namespace=PACKS_NS)
    uids = _uids(plane)

    # Plain `helm upgrade` refuses to adopt CRDs another tool (here: the old chart's crds/ folder) created.
    refused = helm("upgrade", RELEASE, str(CHART), "-n", RELEASE_NS, kubeconfig=kc, check=False)
    assert refused.returncode != 0
    assert "invalid ownership metadata" in refused.stderr, refused.stderr
    helm("upgrade", RELEASE, str(CHART), "-n", RELEASE_NS, "--take-ownership", kubeconfig=kc)
    for name in CRDS:
        meta = _crd(plane, name)["metadata"]
        assert meta["annotations"][KEEP] == "keep"
        assert meta["annotations"]["meta.helm.sh/release-name"] == RELEASE
        assert meta["labels"]["helm.sh/chart"] == "modelpack-0.2.0"

    # From now on a CRD change in the chart reaches the cluster with a plain `helm upgrade`.
    helm("upgrade", RELEASE, str(_next_chart(tmp_path)), "-n", RELEASE_NS, kubeconfig=kc)
    served = _crd(plane, CRDS[0])
    models = served["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"]["properties"]["models"]
    assert models["description"].startswith("Upgraded by helm. ")
    assert served["metadata"]["labels"]["helm.sh/chart"] == "modelpack-0.2.1"
    explained = plane.kubectl("explain", "modelpack.spec.models").stdout
    assert "Upgraded by helm." in explained
    assert _uids(plane) == uids

    # Uninstall: the keep policy leaves both CRDs and so every pack and LoadTest.
    out = helm("uninstall", RELEASE, "-n", RELEASE_NS, kubeconfig=kc).stdout
    assert "kept due to the resource policy" in out, out
    for name in CRDS:
        assert _crd(plane, name)["metadata"]["name"] == name
    assert _uids(plane) == uids
    pack = plane.kubectl_json("get", "modelpack/bert", "-n", PACKS_NS)
    assert pack["spec"]["models"] == yaml.safe_load(yaml.safe_dump(pack_doc()["spec"]["models"]))
