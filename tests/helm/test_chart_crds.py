"""The chart's CRDs are templates rendering exactly the generated CRDs, with Helm's keep policy unless turned off."""

from __future__ import annotations

from typing import Any

import pytest
import yaml

from tests.helm.helmcli import ROOT, of_kind, render

KEEP = "helm.sh/resource-policy"


def _by_name(docs: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {d["metadata"]["name"]: d for d in of_kind(docs, "CustomResourceDefinition")}


def test_rendered_crds_are_the_generated_ones_plus_helm_metadata() -> None:
    rendered = _by_name(render())
    generated = {d["metadata"]["name"]: d for d in (yaml.safe_load(p.read_text()) for p in (ROOT / "crds").glob("*"))}
    assert rendered.keys() == generated.keys() == {"modelpacks.modelpack.dev", "loadtests.modelpack.dev"}
    for name, crd in rendered.items():
        assert {k: v for k, v in crd.items() if k != "metadata"} == {
            k: v for k, v in generated[name].items() if k != "metadata"
        }
        assert crd["metadata"]["annotations"] == {KEEP: "keep"}
        assert generated[name]["metadata"]["labels"].items() <= crd["metadata"]["labels"].items()
        assert crd["metadata"]["labels"]["helm.sh/chart"].startswith("modelpack-")


@pytest.mark.parametrize(
    ("sets", "count", "keep"),
    [(["crds.keep=false"], 2, False), (["crds.install=false"], 0, False), (["crds.install=true"], 2, True)],
)
def test_crd_switches(sets: list[str], count: int, keep: bool) -> None:
    crds = of_kind(render(*sets), "CustomResourceDefinition")
    assert len(crds) == count
    assert all(((c["metadata"].get("annotations") or {}).get(KEEP) == "keep") == keep for c in crds)
