"""examples/eks agrees with the pools the operator and the test cluster use (modelpack.pools) and the price table."""

from __future__ import annotations

from typing import Any

import pytest

from modelpack.api.loading import load_file
from modelpack.api.modelpack import Compute
from modelpack.pools import ARCH_LABEL, INSTANCE_TYPE_LABEL, POOL_LABEL, POOLS, Pool
from modelpack.pricing import default_price_table
from modelpack_operator.builders.scheduling import node_selector, tolerations
from tests.eks.manifests import EKS_DIR, objects, of_kind

PRICES = default_price_table()
NODEPOOLS = {np["metadata"]["name"]: np for np in of_kind("karpenter.yaml", "NodePool")}


def requirement(nodepool: dict[str, Any], key: str) -> list[str]:
    reqs = [r for r in nodepool["spec"]["template"]["spec"]["requirements"] if r["key"] == key]
    assert len(reqs) == 1, f"NodePool {nodepool['metadata']['name']}: one requirement on {key} expected"
    assert reqs[0]["operator"] == "In"
    return list(reqs[0]["values"])


def tolerates(tols: list[dict[str, Any]], taint: dict[str, Any]) -> bool:
    for t in tols:
        if t.get("key") not in (None, taint["key"]):
            continue
        if t.get("effect") not in (None, "", taint["effect"]):
            continue
        if t.get("operator", "Equal") == "Exists" or t.get("value", "") == taint.get("value", ""):
            return True
    return False


def test_one_nodepool_per_pool() -> None:
    assert set(NODEPOOLS) == set(POOLS)


@pytest.mark.parametrize("pool", POOLS.values(), ids=lambda p: p.name)
def test_nodepool_matches_pool(pool: Pool) -> None:
    np = NODEPOOLS[pool.name]
    template = np["spec"]["template"]
    assert template["metadata"]["labels"][POOL_LABEL] == pool.name
    assert requirement(np, ARCH_LABEL) == [pool.arch]
    types = requirement(np, INSTANCE_TYPE_LABEL)
    assert pool.instance_type in types, "the kwok pool's instance type must be one Karpenter may launch"
    for t in types:
        # Priced, and of the pool's compute type: what plan sizes is what Karpenter launches.
        assert PRICES.compute_of(t) == pool.name, t
        assert PRICES.price_of(t).accelerator_resource == pool.accelerator_resource(), t
    taints = [{k: v for k, v in t.items() if v} for t in template["spec"].get("taints", [])]
    assert taints == [t.to_dict() for t in pool.taints]
    class_names = {c["metadata"]["name"] for c in of_kind("karpenter.yaml", "EC2NodeClass")}
    assert template["spec"]["nodeClassRef"]["name"] in class_names
    accelerator = pool.accelerator_resource()
    if accelerator:
        assert accelerator in np["spec"]["limits"], "accelerator pools are bounded by device count"


@pytest.mark.parametrize("pool", POOLS.values(), ids=lambda p: p.name)
def test_operator_server_pods_fit_their_nodepool_only(pool: Pool) -> None:
    # The operator's own scheduling for the compute type of the same name.
    compute = Compute.model_validate({"type": pool.name})
    selector = node_selector(compute)
    tols = tolerations(compute)
    for other in POOLS.values():
        np = NODEPOOLS[other.name]
        labels = {**np["spec"]["template"]["metadata"]["labels"], ARCH_LABEL: requirement(np, ARCH_LABEL)[0]}
        selector_ok = all(labels.get(k) == v for k, v in selector.items())
        taints = np["spec"]["template"]["spec"].get("taints", [])
        taints_ok = all(tolerates(tols, t) for t in taints)
        # Accelerated servers also request the device, which only their pool's nodes advertise.
        device_ok = other.accelerator_resource() == pool.accelerator_resource() or pool.accelerator_resource() is None
        fits = selector_ok and taints_ok and device_ok
        assert fits == (other.name == pool.name), f"{pool.name} servers {'fit' if fits else 'do not fit'} {other.name}"


def test_neuron_device_plugin_runs_on_every_inferentia_type_and_tolerates_the_taint() -> None:
    (ds,) = of_kind("neuron-device-plugin.yaml", "DaemonSet")
    spec = ds["spec"]["template"]["spec"]
    inferentia = POOLS["inferentia"]
    for taint in inferentia.taints:
        assert tolerates(spec["tolerations"], taint.to_dict())
    (term,) = spec["affinity"]["nodeAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"]["nodeSelectorTerms"]
    (expr,) = term["matchExpressions"]
    assert expr["key"] == INSTANCE_TYPE_LABEL
    priced = {t for t in PRICES.instances if PRICES.compute_of(t) == "inferentia"}
    assert priced <= set(expr["values"])
    assert set(requirement(NODEPOOLS["inferentia"], INSTANCE_TYPE_LABEL)) <= set(expr["values"])
    sa = spec["serviceAccountName"]
    assert [o["metadata"]["name"] for o in of_kind("neuron-device-plugin.yaml", "ServiceAccount")] == [sa]


def test_eksctl_cluster_matches_pool_zones_and_karpenter_discovery() -> None:
    (cluster,) = objects("cluster.yaml")
    assert cluster["apiVersion"] == "eksctl.io/v1alpha5"
    assert cluster["kind"] == "ClusterConfig"
    zones = {z for p in POOLS.values() for z in p.zones}
    assert set(cluster["availabilityZones"]) == zones
    assert {z[:-1] for z in zones} == {cluster["metadata"]["region"]}
    name = cluster["metadata"]["name"]
    assert cluster["metadata"]["tags"]["karpenter.sh/discovery"] == name
    (node_class,) = of_kind("karpenter.yaml", "EC2NodeClass")
    for terms in ("subnetSelectorTerms", "securityGroupSelectorTerms"):
        assert node_class["spec"][terms] == [{"tags": {"karpenter.sh/discovery": name}}]
    # The node role Karpenter launches with is the one eksctl maps into the cluster.
    (mapping,) = cluster["iamIdentityMappings"]
    assert mapping["arn"].endswith(f":role/{node_class['spec']['role']}")
    assert "system:nodes" in mapping["groups"]
    # Server pods read S3 through the ServiceAccount eksctl creates with pod identity.
    sas = {(a["namespace"], a["serviceAccountName"]) for a in cluster["iam"]["podIdentityAssociations"]}
    assert ("default", "modelpack-server") in sas
    assert ("kube-system", "karpenter") in sas
    (system,) = cluster["managedNodeGroups"]
    assert system["labels"][POOL_LABEL] == "system"
    assert system["name"] not in POOLS, "server pools are Karpenter's; the managed group only hosts controllers"


def test_examples_are_valid_modelpack_objects() -> None:
    kinds = {o.kind: o for o in load_file(EKS_DIR / "modelpack.yaml") + load_file(EKS_DIR / "loadtest.yaml")}
    pack, test = kinds["ModelPack"], kinds["LoadTest"]
    assert test.spec.target.model_pack == pack.metadata.name  # type: ignore[union-attr]
    assert pack.spec.compute.type in POOLS  # type: ignore[union-attr]
    assert pack.spec.store.uri.startswith("s3://")  # type: ignore[union-attr]


def test_every_manifest_renders_all_placeholders() -> None:
    for path in sorted(EKS_DIR.glob("*.yaml")):
        for obj in objects(path.name):
            assert obj.get("apiVersion") and obj.get("kind"), path.name
