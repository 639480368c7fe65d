"""The Helm chart: lint, render, settings the operator accepts, least-privilege RBAC proven by running with it."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

from modelpack.api.limits import DEFAULT_MAX_MODELS_PER_PACK, DEFAULT_MAX_SERVERS_PER_PACK
from modelpack.pricing import default_price_table, from_configmap
from modelpack_operator.builders.rbac import OPERATOR_RULES, WORKER_RULES
from modelpack_operator.kube import PLURALS, Kube
from modelpack_operator.settings import OperatorSettings
from tests.cluster.controlplane import ControlPlane
from tests.helm.helmcli import CHART, KUBE_VERSION, helm, of_kind, render
from tests.operator.factories import loadtest_doc, pack_doc
from tests.operator.harness import OperatorProcess, condition, get_status, wait_until


def operator_container(docs: list[dict[str, Any]]) -> dict[str, Any]:
    (deployment,) = of_kind(docs, "Deployment")
    return dict(deployment["spec"]["template"]["spec"]["containers"][0])


def chart_env(docs: list[dict[str, Any]]) -> dict[str, str]:
    return {e["name"]: e["value"] for e in operator_container(docs)["env"]}


def test_lint_passes() -> None:
    out = helm("lint", "--strict", str(CHART)).stdout
    assert "0 chart(s) failed" in out


def test_default_render_is_cluster_scoped_with_operator_and_worker_identities() -> None:
    docs = render()
    kinds = sorted(d["kind"] for d in docs)
    expected = ["ClusterRole", "ClusterRoleBinding", "Deployment", "Role", "RoleBinding", "Service"]
    policy = ["ValidatingAdmissionPolicy", "ValidatingAdmissionPolicyBinding"]
    crds = ["CustomResourceDefinition", "CustomResourceDefinition"]
    assert kinds == sorted([*expected, *policy, *crds, "ServiceAccount", "ServiceAccount"])
    container = operator_container(docs)
    assert "--all-namespaces" in container["args"]
    assert container["securityContext"]["readOnlyRootFilesystem"] is True
    (deployment,) = of_kind(docs, "Deployment")
    assert deployment["spec"]["strategy"]["type"] == "Recreate"


def test_the_env_the_chart_sets_is_accepted_by_the_operator() -> None:
    env = chart_env(render("worker.nodeSelector.pool=loadgen", "serverImage.default=registry.local/server:1"))
    settings = OperatorSettings.from_env(env)
    assert settings.worker.node_selector == {"pool": "loadgen"}
    assert settings.worker.image == "ghcr.io/modelpack/operator:0.1.0"
    assert settings.server.default_image == "registry.local/server:1"
    assert settings.worker.manage_rbac is True


def test_the_chart_limits_are_the_apis_defaults_for_operator_and_admission_policy() -> None:
    docs = render()
    limits = OperatorSettings.from_env(chart_env(docs)).limits
    assert (limits.max_models_per_pack, limits.max_servers_per_pack) == (
        DEFAULT_MAX_MODELS_PER_PACK,
        DEFAULT_MAX_SERVERS_PER_PACK,
    )
    (policy,) = of_kind(docs, "ValidatingAdmissionPolicy")
    expressions = [v["expression"] for v in policy["spec"]["validations"]]
    assert expressions == [
        f"variables.models <= {DEFAULT_MAX_MODELS_PER_PACK}",
        f"variables.servers <= {DEFAULT_MAX_SERVERS_PER_PACK}",
    ]
    assert not of_kind(render("limits.admissionPolicy=false"), "ValidatingAdmissionPolicy")


def test_server_pods_get_an_account_with_nothing_by_default_or_the_one_named() -> None:
    env = chart_env(render())
    assert env["MODELPACK_SERVER_SERVICE_ACCOUNT"] == "modelpack-server"
    assert env["MODELPACK_SERVER_MANAGE_SERVICE_ACCOUNT"] == "true"
    named = chart_env(render("serverImage.serviceAccount=s3-reader"))
    assert named["MODELPACK_SERVER_SERVICE_ACCOUNT"] == "s3-reader"
    assert named["MODELPACK_SERVER_MANAGE_SERVICE_ACCOUNT"] == "false"
    docs = render("rbac.scope=namespace", "watchNamespaces={team-a}")
    (sa,) = [d for d in of_kind(docs, "ServiceAccount") if d["metadata"]["name"] == "modelpack-server"]
    assert sa["metadata"]["namespace"] == "team-a" and sa["automountServiceAccountToken"] is False
    assert chart_env(docs)["MODELPACK_SERVER_MANAGE_SERVICE_ACCOUNT"] == "false"


def _rules_cover(rules: list[dict[str, Any]], group: str, resource: str, verbs: set[str]) -> bool:
    granted: set[str] = set()
    for rule in rules:
        if group in rule["apiGroups"] and resource in rule["resources"]:
            granted |= set(rule["verbs"])
    return verbs <= granted


def test_rbac_is_least_privilege_yet_covers_every_kind_the_operator_touches() -> None:
    (role,) = of_kind(render(), "ClusterRole")
    rules = role["rules"]
    assert not any("*" in r["verbs"] or "*" in r["resources"] or "*" in r["apiGroups"] for r in rules)
    assert not any(r for r in rules if "secrets" in r["resources"])
    for (api_version, kind), plural in PLURALS.items():
        group = api_version.rpartition("/")[0]
        needed = {"create"} if kind == "Event" else {"get"}  # events are only ever written
        assert _rules_cover(rules, group, plural, needed), f"{plural} of {api_version!r}: {needed} not granted"
    assert _rules_cover(rules, "modelpack.dev", "modelpacks/status", {"patch"})
    assert _rules_cover(rules, "apps", "deployments", {"patch", "delete", "watch"})
    assert rules[: len(OPERATOR_RULES)] == [rule for _why, rule in OPERATOR_RULES]  # generated from the one list
    (worker_role,) = of_kind(render(), "Role")
    assert worker_role["rules"] == WORKER_RULES


def test_namespace_scope_has_no_cluster_objects_and_watches_only_its_namespaces() -> None:
    docs = render("rbac.scope=namespace", "watchNamespaces={team-a,team-b}")
    assert not of_kind(docs, "ClusterRole") and not of_kind(docs, "ClusterRoleBinding")
    roles = {(r["metadata"]["namespace"], r["metadata"]["name"]) for r in of_kind(docs, "Role")}
    assert roles == {
        ("team-a", "rel-modelpack-operator"),
        ("team-b", "rel-modelpack-operator"),
        ("team-a", "modelpack-loadtest-worker"),
        ("team-b", "modelpack-loadtest-worker"),
    }
    args = operator_container(docs)["args"]
    assert "--namespace=team-a" in args and "--namespace=team-b" in args and "--all-namespaces" not in args
    assert OperatorSettings.from_env(chart_env(docs)).worker.manage_rbac is False


def test_pricing_value_installs_a_table_the_operator_reads(tmp_path: Path) -> None:
    table = default_price_table().to_dict()
    values = tmp_path / "pricing-values.yaml"
    values.write_text(yaml.safe_dump({"pricing": table}))
    out = helm("template", "rel", str(CHART), "-n", "mp", "--kube-version", KUBE_VERSION, "-f", str(values)).stdout
    docs = [d for d in yaml.safe_load_all(out) if d]
    (configmap,) = of_kind(docs, "ConfigMap")
    assert (
        from_configmap(configmap).price_of("c7g.4xlarge").hourly == default_price_table().price_of("c7g.4xlarge").hourly
    )
    assert chart_env(docs)["MODELPACK_RECONCILE_PRICING_CONFIGMAP"] == "mp/rel-modelpack-operator-pricing"


@pytest.mark.parametrize(
    ("sets", "message"),
    [
        (["rbac.scope=everything"], 'rbac.scope must be cluster or namespace, got "everything"'),
        (["watchNamespaces={a}"], "watchNamespaces is only used with rbac.scope=namespace"),
        (["replicas=2"], "replicas must be 1"),
        (["limits.maxModelsPerPack=200000"], "limits.maxModelsPerPack must be from 1 to 100000"),
        (["limits.maxServersPerPack=0"], "limits.maxServersPerPack must be from 1 to 10000"),
    ],
)
def test_bad_values_fail_the_render_with_the_reason(sets: list[str], message: str) -> None:
    flags = [f"--set={s}" for s in sets]
    proc = helm("template", "rel", str(CHART), "--kube-version", KUBE_VERSION, *flags, check=False)
    assert proc.returncode != 0
    assert message in proc.stderr


def test_argocd_values_snippet_carries_the_health_scripts() -> None:
    snippet = yaml.safe_load((CHART / "files" / "argocd-values.yaml").read_text())["configs"]["cm"]
    for kind, name in (("ModelPack", "modelpack"), ("LoadTest", "loadtest")):
        script = (CHART / "files" / f"argocd-health-{name}.lua").read_text()
        assert snippet[f"resource.customizations.health.modelpack.dev_{kind}"] == script


@pytest.mark.cluster
def test_helm_install_runs_and_its_rbac_is_enough_for_the_operator(
    crds: ControlPlane, kube: Kube, namespace: str, start_operator: Callable[..., OperatorProcess]
) -> None:
    release = f"mp{namespace[-6:]}"
    helm(
        "install",
        release,
        str(CHART),
        "--namespace",
        namespace,
        "--set=rbac.scope=namespace",
        "--set=worker.startDelaySeconds=1",
        "--set=crds.install=false",  # the session plane's CRDs, applied by the `crds` fixture
        "--wait",
        "--timeout=90s",
        kubeconfig=crds.kubeconfig,
    )
    deployment = kube.get("apps/v1", "Deployment", namespace, f"{release}-modelpack-operator")
    assert deployment is not None and deployment["status"].get("availableReplicas") == 1
    sa = f"{release}-modelpack-operator"
    can = crds.kubectl(
        "auth",
        "can-i",
        "delete",
        "secrets",
        f"--as=system:serviceaccount:{namespace}:{sa}",
        "-n",
        namespace,
        check=False,
    )
    assert can.stdout.strip() == "no"
    worker_can = crds.kubectl(
        "auth",
        "can-i",
        "delete",
        "configmaps",
        f"--as=system:serviceaccount:{namespace}:modelpack-loadtest-worker",
        "-n",
        namespace,
        check=False,
    )
    assert worker_can.stdout.strip() == "no"

    # The operator, authenticated as the chart's ServiceAccount with the chart's env: a pack gets Ready and a
    # LoadTest starts, so the chart's Role grants everything the operator needs (and it has nothing more).
    env = {e["name"]: e.get("value", "") for e in deployment["spec"]["template"]["spec"]["containers"][0]["env"]}
    env["MODELPACK_RECONCILE_RESYNC_SECONDS"] = "3"
    op = start_operator(env, kubeconfig=crds.service_account_kubeconfig(namespace, sa))
    pack = pack_doc(namespace=namespace, compute={"type": "x86", "resources": {"requests": {"cpu": "100m"}}})
    crds.kubectl("apply", "-n", namespace, "-f", "-", input=yaml.safe_dump(pack))
    crds.kubectl("apply", "-n", namespace, "-f", "-", input=yaml.safe_dump(loadtest_doc(namespace=namespace)))
    wait_until(lambda: get_status(kube, "ModelPack", namespace, "bert").get("phase") == "Ready", "pack Ready", op=op)
    status = wait_until(
        lambda: (s := get_status(kube, "LoadTest", namespace, "lt")).get("phase") not in (None, "Pending") and s,
        "LoadTest started",
        op=op,
    )
    assert condition(status, "Complete")["reason"] in ("Running", "ResultsMissing"), status
    # KubeError says "HTTP 403: ..." and kopf "Forbidden"; a bare "403" also matches log timestamps (",403").
    assert "Forbidden" not in op.log() and "HTTP 403" not in op.log()
    helm("uninstall", release, "--namespace", namespace, "--wait", kubeconfig=crds.kubeconfig)


def test_service_monitor_and_metrics_service_select_the_operator_pod() -> None:
    docs = render("metrics.serviceMonitor.enabled=true", "metrics.serviceMonitor.labels.release=prom")
    (monitor,) = of_kind(docs, "ServiceMonitor")
    (service,) = of_kind(docs, "Service")
    (deployment,) = of_kind(docs, "Deployment")
    pod_labels = deployment["spec"]["template"]["metadata"]["labels"]
    assert service["spec"]["selector"].items() <= pod_labels.items()
    assert monitor["spec"]["selector"]["matchLabels"].items() <= service["metadata"]["labels"].items()
    assert monitor["metadata"]["labels"]["release"] == "prom"
    assert monitor["spec"]["endpoints"] == [{"port": "metrics", "interval": "30s"}]


@pytest.mark.cluster
def test_cluster_scope_install_grants_cluster_reads_but_no_secrets(crds: ControlPlane, namespace: str) -> None:
    release = f"cl{namespace[-6:]}"
    helm(
        "install", release, str(CHART), "--namespace", namespace, "--set=crds.install=false", kubeconfig=crds.kubeconfig
    )
    try:
        who = f"--as=system:serviceaccount:{namespace}:{release}-modelpack-operator"

        def can(*args: str) -> str:
            return crds.kubectl("auth", "can-i", *args, who, check=False).stdout.strip()

        assert can("get", "nodes") == "yes"  # status.cost
        assert can("create", "deployments", "-n", "some-other-namespace") == "yes"
        assert can("patch", "modelpacks.modelpack.dev", "--subresource=status", "-n", "default") == "yes"
        assert can("get", "secrets", "-n", namespace) == "no"
        assert can("delete", "nodes") == "no"
        assert can("create", "clusterroles") == "no"
    finally:
        helm("uninstall", release, "--namespace", namespace, kubeconfig=crds.kubeconfig)
