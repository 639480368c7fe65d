"""The chart's monitoring objects, rendered by helm: off by default, and with the switches on they select the pods the
operator builds, embed the dashboard and rules files unchanged, and name only metrics that exist."""

from __future__ import annotations

import json

from modelpack.placement import place
from modelpack_operator.builders.server import PORT_NAME, server_deployment
from modelpack_operator.settings import OperatorSettings
from tests.helm.helmcli import CHART, helm, of_kind, render
from tests.helm.monitoring import DASHBOARD, RULES, exported_metrics, recorded_metrics, rule_groups
from tests.operator.factories import make_pack

ON = ("monitoring.podMonitor.enabled=true", "monitoring.rules.enabled=true", "monitoring.dashboard.enabled=true")
MONITORING_KINDS = ("PodMonitor", "PrometheusRule")


def test_monitoring_objects_are_off_by_default() -> None:
    docs = render()
    assert [d for d in docs if d["kind"] in MONITORING_KINDS] == []
    assert [d for d in of_kind(docs, "ConfigMap") if "dashboard" in d["metadata"]["name"]] == []


def test_pod_monitor_selects_the_operators_server_pods_on_their_metrics_port() -> None:
    (monitor,) = of_kind(render(*ON, "monitoring.podMonitor.labels.release=prom"), "PodMonitor")
    pack = make_pack()
    deployment = server_deployment(pack, place(pack.spec.models.expand(), 2).servers[0], OperatorSettings().server)
    template = deployment["spec"]["template"]
    assert monitor["spec"]["selector"]["matchLabels"].items() <= template["metadata"]["labels"].items()
    (endpoint,) = monitor["spec"]["podMetricsEndpoints"]
    (container,) = template["spec"]["containers"]
    assert endpoint["port"] == PORT_NAME == container["ports"][0]["name"]
    assert endpoint["path"] == template["metadata"]["annotations"]["prometheus.io/path"] == "/metrics"
    copied = {r["targetLabel"]: r["sourceLabels"] for r in endpoint["relabelings"]}
    assert copied == {
        "pack": ["__meta_kubernetes_pod_label_modelpack_dev_pack"],
        "server": ["__meta_kubernetes_pod_label_modelpack_dev_server"],
    }
    assert {"modelpack.dev/pack", "modelpack.dev/server"} <= template["metadata"]["labels"].keys()
    assert monitor["spec"]["namespaceSelector"] == {"any": True}
    assert monitor["metadata"]["labels"]["release"] == "prom"


def test_pod_monitor_in_namespace_scope_watches_only_those_namespaces() -> None:
    docs = render(*ON, "rbac.scope=namespace", "watchNamespaces={a,b}")
    (monitor,) = of_kind(docs, "PodMonitor")
    assert monitor["spec"]["namespaceSelector"] == {"matchNames": ["a", "b"]}


def test_rules_and_dashboard_embed_the_files_unchanged() -> None:
    docs = render(*ON, "monitoring.dashboard.annotations.grafana_folder=ml")
    (rule,) = of_kind(docs, "PrometheusRule")
    assert rule["spec"]["groups"] == rule_groups(RULES)
    (dashboard,) = [d for d in of_kind(docs, "ConfigMap") if d["metadata"]["name"].endswith("-dashboard")]
    assert dashboard["metadata"]["labels"]["grafana_dashboard"] == "1"
    assert dashboard["metadata"]["annotations"] == {"grafana_folder": "ml"}
    assert json.loads(dashboard["data"]["modelpack.json"]) == json.loads(DASHBOARD.read_text())


def test_lint_passes_with_monitoring_on() -> None:
    flags = [f"--set={s}" for s in ON]
    assert "0 chart(s) failed" in helm("lint", "--strict", str(CHART), *flags).stdout


def test_recorded_series_do_not_shadow_exported_metrics() -> None:
    assert recorded_metrics().isdisjoint(exported_metrics())
    assert all(name.startswith("modelpack:") for name in recorded_metrics())
