"""Server Deployment and Service builders: what each compute type, store and override produces."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import ValidationError

from modelpack.api.base import parse_quantity
from modelpack.placement import place
from modelpack.serving import DEFAULT_MEMORY_OVERHEAD
from modelpack_operator import labels as L
from modelpack_operator.builders.rbac import server_service_account
from modelpack_operator.builders.server import models_config_map, server_deployment, server_service, service_url
from modelpack_operator.settings import OperatorSettings, ServerSettings
from tests.operator.factories import make_pack

OVERHEAD_MI = parse_quantity(DEFAULT_MEMORY_OVERHEAD) // 2**20

SETTINGS = OperatorSettings().server


def _deployment(index: int = 0, settings: ServerSettings = SETTINGS, **spec: Any) -> dict[str, Any]:
    pack = make_pack(**spec)
    placement = place(pack.spec.models.expand(), pack.spec.models_per_server)
    return server_deployment(pack, placement.servers[index], settings)


def _pod(dep: dict[str, Any]) -> dict[str, Any]:
    return dep["spec"]["template"]["spec"]


def _container(dep: dict[str, Any]) -> dict[str, Any]:
    return _pod(dep)["containers"][0]


def _arg(container: dict[str, Any], flag: str) -> str:
    args = container["args"]
    return args[args.index(flag) + 1]


def test_a_server_of_many_models_reads_its_list_from_a_mounted_config_map() -> None:
    pack = make_pack(models={"count": 8000}, modelsPerServer=8000)
    server = place(pack.spec.models.expand(), pack.spec.models_per_server).servers[0]
    dep = server_deployment(pack, server, SETTINGS)
    args = _container(dep)["args"]
    assert "--models" not in args and _arg(_container(dep), "--models-file") == "/etc/modelpack/models/models"
    assert sum(len(a) for a in args) < 4096
    volume = next(v for v in _pod(dep)["volumes"] if v["name"] == "models")
    mount = next(m for m in _container(dep)["volumeMounts"] if m["name"] == "models")
    assert volume["configMap"]["name"] == "bert-s0000-models" and mount["mountPath"] == "/etc/modelpack/models"
    cm = models_config_map(pack, server)
    assert cm is not None and cm["metadata"]["name"] == "bert-s0000-models"
    assert cm["data"]["models"].split() == list(server.models)
    assert cm["metadata"]["labels"][L.COMPONENT] == L.MODELS_COMPONENT
    assert cm["metadata"]["ownerReferences"][0]["kind"] == "ModelPack"
    assert models_config_map(make_pack(), place(make_pack().spec.models.expand(), 2).servers[0]) is None


def test_each_server_serves_its_share_of_the_placement() -> None:
    first, last = _deployment(0), _deployment(2)
    assert _arg(_container(first), "--models") == "model-00000,model-00001"
    assert _arg(_container(last), "--models") == "model-00004"
    assert first["metadata"]["name"] == "bert-s0000"
    assert last["spec"]["selector"]["matchLabels"] == {L.PACK: "bert", L.SERVER: "2"}


def test_owned_by_the_pack_so_deletion_garbage_collects() -> None:
    owner = _deployment()["metadata"]["ownerReferences"][0]
    assert owner == {
        "apiVersion": "modelpack.dev/v1alpha1",
        "kind": "ModelPack",
        "name": "bert",
        "uid": "uid-1",
        "controller": True,
        "blockOwnerDeletion": True,
    }


@pytest.mark.parametrize(
    ("compute", "arch", "accelerator", "image"),
    [
        ("graviton", "arm64", None, "ghcr.io/modelpack/model-server:0.1.0"),
        ("x86", "amd64", None, "ghcr.io/modelpack/model-server:0.1.0"),
        ("inferentia", "amd64", "aws.amazon.com/neuron", "ghcr.io/modelpack/model-server:0.1.0-neuron"),
        ("gpu", "amd64", "nvidia.com/gpu", "ghcr.io/modelpack/model-server:0.1.0-cuda"),
    ],
)
def test_compute_type_decides_arch_accelerator_taint_and_image(
    compute: str, arch: str, accelerator: str | None, image: str
) -> None:
    dep = _deployment(compute={"type": compute, "acceleratorsPerServer": 2})
    pod, container = _pod(dep), _container(dep)
    assert pod["nodeSelector"]["kubernetes.io/arch"] == arch
    assert container["image"] == image
    if accelerator is None:
        assert "tolerations" not in pod
        assert not [r for r in container["resources"]["requests"] if "/" in r]
    else:
        assert container["resources"]["requests"][accelerator] == "2"
        assert container["resources"]["limits"][accelerator] == "2"
        assert pod["tolerations"] == [{"key": accelerator, "operator": "Exists", "effect": "NoSchedule"}]


def test_instance_types_become_required_node_affinity() -> None:
    pod = _pod(_deployment(compute={"type": "graviton", "instanceTypes": ["c7g.4xlarge", "c7g.8xlarge"]}))
    terms = pod["affinity"]["nodeAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"]["nodeSelectorTerms"]
    assert terms == [
        {
            "matchExpressions": [
                {"key": "node.kubernetes.io/instance-type", "operator": "In", "values": ["c7g.4xlarge", "c7g.8xlarge"]}
            ]
        }
    ]


def test_requests_sized_from_threads_and_memory_budget_plus_overhead() -> None:
    container = _container(_deployment(server={"workerThreads": 4, "memoryBudget": "3Gi"}))
    assert container["resources"]["requests"] == {"cpu": "4", "memory": f"{3 * 1024 + OVERHEAD_MI}Mi"}
    assert container["resources"]["limits"] == {"memory": f"{3 * 1024 + OVERHEAD_MI}Mi"}
    assert _arg(container, "--threads") == "4"
    assert _arg(container, "--memory-budget") == "3Gi"


def test_user_overrides_are_applied_last() -> None:
    dep = _deployment(
        compute={
            "type": "inferentia",
            "nodeSelector": {"kubernetes.io/arch": "arm64", "team": "ml"},
            "tolerations": [{"key": "dedicated", "operator": "Equal", "value": "ml", "effect": "NoSchedule"}],
            "resources": {"requests": {"cpu": "3"}, "limits": {"memory": "8Gi"}},
            "podTemplate": {"metadata": {"labels": {"extra": "yes"}}, "spec": {"priorityClassName": "high"}},
        }
    )
    pod, container = _pod(dep), _container(dep)
    assert pod["nodeSelector"] == {"kubernetes.io/arch": "arm64", "team": "ml"}
    assert pod["tolerations"][-1] == {"key": "dedicated", "operator": "Equal", "value": "ml", "effect": "NoSchedule"}
    assert container["resources"]["requests"]["cpu"] == "3"
    assert container["resources"]["limits"]["memory"] == "8Gi"
    assert container["resources"]["requests"]["aws.amazon.com/neuron"] == "1"
    assert pod["priorityClassName"] == "high"
    assert dep["spec"]["template"]["metadata"]["labels"]["extra"] == "yes"
    assert dep["spec"]["template"]["metadata"]["labels"][L.PACK] == "bert"


def test_pods_are_locked_down_and_probed() -> None:
    dep = _deployment()
    pod, container = _pod(dep), _container(dep)
    assert container["command"] == ["modelpack", "serve"]  # the server image's entrypoint, stated explicitly
    assert pod["automountServiceAccountToken"] is False
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert container["securityContext"]["readOnlyRootFilesystem"] is True
    assert container["securityContext"]["allowPrivilegeEscalation"] is False
    assert container["readinessProbe"]["httpGet"]["path"] == "/v2/health/ready"
    assert container["livenessProbe"]["httpGet"]["path"] == "/v2/health/live"
    assert container["startupProbe"]["httpGet"]["path"] == "/v2/health/live"
    mounts = {m["mountPath"] for m in container["volumeMounts"]}
    assert {"/tmp", "/var/cache/modelpack"} <= mounts
    annotations = dep["spec"]["template"]["metadata"]["annotations"]
    assert annotations["prometheus.io/scrape"] == "true"
    assert annotations["prometheus.io/port"] == "8080"


def test_s3_store_passes_uri_and_region() -> None:
    container = _container(_deployment())
    assert _arg(container, "--store") == "s3://models-bucket/fleet"
    assert {"name": "AWS_REGION", "value": "us-west-2"} in container["env"]


def test_pvc_store_mounts_the_claim_read_only() -> None:
    dep = _deployment(store={"uri": "pvc://shared-models/bert"})
    pod, container = _pod(dep), _container(dep)
    assert _arg(container, "--store") == "file:///models/bert"
    assert {"name": "model-store", "persistentVolumeClaim": {"claimName": "shared-models", "readOnly": True}} in pod[
        "volumes"
    ]
    assert {"name": "model-store", "mountPath": "/models", "readOnly": True} in container["volumeMounts"]


def test_file_store_is_used_as_is() -> None:
    container = _container(_deployment(store={"uri": "file:///opt/models"}))
    assert _arg(container, "--store") == "file:///opt/models"


def test_batching_and_preload_reach_the_server() -> None:
    batching = {"maxBatchSize": 4, "maxQueueDelayMs": 2.5, "maxQueueSize": 9}
    container = _container(_deployment(server={"preload": True, "batching": batching}))
    assert _arg(container, "--max-batch-size") == "4"
    assert _arg(container, "--max-queue-delay-ms") == "2.5"
    assert _arg(container, "--max-queue-size") == "9"
    assert "--preload" in container["args"]


def test_replicas_follow_the_spec() -> None:
    assert _deployment(replicas=3)["spec"]["replicas"] == 3


def test_a_stopping_server_keeps_serving_while_endpoints_drop_it_then_drains() -> None:
    dep = _deployment()
    assert _container(dep)["lifecycle"] == {"preStop": {"sleep": {"seconds": 5}}}
    assert _pod(dep)["terminationGracePeriodSeconds"] == 35  # the pause, then 30 s for in-flight requests
    assert dep["spec"]["strategy"]["rollingUpdate"] == {"maxUnavailable": 0, "maxSurge": 1}
    none = _deployment(settings=ServerSettings(drain_seconds=0))
    assert "lifecycle" not in _container(none) and _pod(none)["terminationGracePeriodSeconds"] == 30


def test_hash_changes_with_the_spec_and_only_then() -> None:
    a, b = _deployment(), _deployment()
    c = _deployment(server={"image": "example.com/server:2"})
    key = L.DESIRED_HASH
    assert a["metadata"]["annotations"][key] == b["metadata"]["annotations"][key]
    assert a["metadata"]["annotations"][key] != c["metadata"]["annotations"][key]


def test_service_selects_the_server_and_the_route_uses_its_dns_name() -> None:
    pack = make_pack(server={"port": 9000})
    placement = place(pack.spec.models.expand(), 2)
    svc = server_service(pack, placement.servers[1], SETTINGS)
    assert svc["spec"]["selector"] == {L.PACK: "bert", L.SERVER: "1"}
    assert svc["spec"]["ports"][0]["port"] == 9000
    assert service_url(pack, 1, SETTINGS) == "http://bert-s0001.ns.svc.cluster.local:9000"


def test_default_image_setting_replaces_only_the_api_default() -> None:
    mirror = ServerSettings(default_image="registry.local/modelpack/server:0.1.0")
    assert _container(_deployment(settings=mirror))["image"] == "registry.local/modelpack/server:0.1.0"
    inf = _deployment(settings=mirror, compute={"type": "inferentia"})
    assert _container(inf)["image"] == "registry.local/modelpack/server:0.1.0-neuron"
    own = _deployment(settings=mirror, server={"image": "example.com/mine:3"})
    assert _container(own)["image"] == "example.com/mine:3"


def test_pod_template_adds_allow_listed_fields_and_never_drops_the_server_container() -> None:
    dep = _deployment(
        compute={
            "type": "x86",
            "instanceTypes": ["c7i.2xlarge"],
            "podTemplate": {
                "metadata": {"labels": {"team": "ml"}, "annotations": {"example.com/owner": "ml"}},
                "spec": {
                    "affinity": {"podAntiAffinity": {"preferredDuringSchedulingIgnoredDuringExecution": []}},
                    "tolerations": [{"key": "team", "operator": "Equal", "value": "ml", "effect": "NoSchedule"}],
                    "topologySpreadConstraints": [
                        {"maxSkew": 1, "topologyKey": "zone", "whenUnsatisfiable": "DoNotSchedule"}
                    ],
                    "volumes": [{"name": "extra", "configMap": {"name": "tokenizer"}}],
                    "serverContainer": {
                        "env": [{"name": "LOG_LEVEL", "value": "debug"}],
                        "volumeMounts": [{"name": "extra", "mountPath": "/etc/extra", "readOnly": True}],
                    },
                },
            },
        }
    )
    pod, container = _pod(dep), _container(dep)
    assert [c["name"] for c in pod["containers"]] == ["server"]
    assert container["command"] == ["modelpack", "serve"]
    assert container["securityContext"]["allowPrivilegeEscalation"] is False
    assert container["env"][-1] == {"name": "LOG_LEVEL", "value": "debug"}
    assert {"name": "OMP_NUM_THREADS", "value": "2"} in container["env"]
    assert container["volumeMounts"][-1] == {"name": "extra", "mountPath": "/etc/extra", "readOnly": True}
    assert [v["name"] for v in pod["volumes"]] == ["tmp", "model-cache", "extra"]
    assert "nodeAffinity" in pod["affinity"] and "podAntiAffinity" in pod["affinity"]
    assert pod["tolerations"][-1]["key"] == "team"
    assert pod["topologySpreadConstraints"][0]["topologyKey"] == "zone"
    labels = dep["spec"]["template"]["metadata"]["labels"]
    assert labels["team"] == "ml" and labels[L.PACK] == "bert"
    assert dep["spec"]["template"]["metadata"]["annotations"]["example.com/owner"] == "ml"


@pytest.mark.parametrize(
    ("pod_template", "field"),
    [
        ({"spec": {"serviceAccountName": "cluster-admin"}}, "serviceAccountName"),
        ({"spec": {"hostNetwork": True, "hostPID": True}}, "hostNetwork"),
        ({"spec": {"containers": [{"name": "server", "securityContext": {"privileged": True}}]}}, "containers"),
        ({"spec": {"volumes": [{"name": "root", "hostPath": {"path": "/"}}]}}, "hostPath"),
        ({"spec": {"securityContext": {"runAsUser": 0}}}, "securityContext"),
        ({"spec": {"automountServiceAccountToken": True}}, "automountServiceAccountToken"),
        ({"spec": {"volumes": [{"name": "t", "secret": {"secretName": "token"}}]}}, "secret"),
        ({"metadata": {"labels": {L.PACK: "other"}}}, "labels"),
    ],
)
def test_pod_template_cannot_express_an_escalation(pod_template: dict[str, Any], field: str) -> None:
    with pytest.raises(ValidationError) as err:
        make_pack(compute={"type": "x86", "podTemplate": pod_template})
    assert field in str(err.value)


def test_server_pods_run_as_an_account_with_nothing_and_no_token() -> None:
    pod = _pod(_deployment())
    assert pod["serviceAccountName"] == "modelpack-server"
    assert pod["automountServiceAccountToken"] is False
    sa = server_service_account("ns", "modelpack-server")
    assert sa["automountServiceAccountToken"] is False and sa["metadata"]["namespace"] == "ns"
    assert _pod(_deployment(settings=ServerSettings(service_account="s3-reader")))["serviceAccountName"] == "s3-reader"


def test_a_raised_memory_request_takes_its_limit_along() -> None:
    container = _container(_deployment(compute={"type": "x86", "resources": {"requests": {"memory": "16Gi"}}}))
    assert container["resources"]["limits"]["memory"] == "16Gi"
