"""What the chart's dashboard and rules may name, and every PromQL expression in them.

The names come from the real registries (the model server's ``ServerMetrics`` and the operator's metrics module),
expanded the way the Prometheus text format exposes them, plus the series the recording rules write.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import yaml
from prometheus_client.registry import Collector

from model_server.metrics import ServerMetrics
from modelpack_operator import metrics as operator_metrics
from tests.helm.helmcli import CHART

DASHBOARD = CHART / "files" / "monitoring" / "dashboard.json"
RULES = CHART / "files" / "monitoring" / "rules.yaml"

_SUFFIXES = {"counter": ("_total", "_created"), "histogram": ("_bucket", "_count", "_sum", "_created"), "gauge": ("",)}
# What the dashboard's Grafana variables stand for when an expression is evaluated outside Grafana.
GRAFANA_VARIABLES = {"$__rate_interval": "1m", "$namespace": ".*", "$pack": ".*"}
_LABEL_VALUES = re.compile(r"^label_values\((?P<expr>.*),\s*\w+\)$")


def _names(collectors: Iterator[Collector]) -> set[str]:
    out = set()
    for collector in collectors:
        for family in collector.collect():
            out |= {family.name + suffix for suffix in _SUFFIXES[family.type]}
    return out


def exported_metrics() -> set[str]:
    """Every series name a model server or the operator exposes on /metrics."""
    server = ServerMetrics()
    ops = (operator_metrics.RECONCILES, operator_metrics.RECONCILE_SECONDS)
    return _names(iter([server.registry])) | _names(iter(ops))


def rule_groups(path: Path = RULES) -> list[dict[str, Any]]:
    return list(yaml.safe_load(path.read_text())["groups"])


def recorded_metrics() -> set[str]:
    return {rule["record"] for group in rule_groups() for rule in group["rules"]}


def _substitute(expr: str) -> str:
    for var, value in GRAFANA_VARIABLES.items():
        expr = expr.replace(var, value)
    return expr


def dashboard_expressions(path: Path = DASHBOARD) -> dict[str, str]:
    """``where -> PromQL``: every panel target and every query variable (``label_values(<expr>, label)``)."""
    dash = json.loads(path.read_text())
    out = {}
    for panel in dash["panels"]:
        for target in panel.get("targets", []):
            out[f"panel {panel['title']!r} {target['refId']}"] = _substitute(target["expr"])
    for var in dash["templating"]["list"]:
        if var["type"] == "query":
            match = _LABEL_VALUES.match(var["query"]["query"])
            assert match, f"variable {var['name']}: expected label_values(<expr>, <label>), got {var['query']}"
            out[f"variable {var['name']}"] = _substitute(match["expr"])
    return out


def rule_expressions() -> dict[str, str]:
    return {f"rule {rule['record']}": rule["expr"] for group in rule_groups() for rule in group["rules"]}


def selector_names(ast: Any) -> set[str]:
    """Metric names of every vector and matrix selector in a parsed expression (Prometheus' parse_query JSON)."""
    if isinstance(ast, list):
        return set().union(*(selector_names(a) for a in ast)) if ast else set()
    if not isinstance(ast, dict):
        return set()
    own = {ast["name"]} if ast.get("type") in ("vectorSelector", "matrixSelector") else set()
    return own.union(*(selector_names(v) for k, v in ast.items() if k != "matchers"))
