"""Watch an operator process from the outside: its API requests as the API server counts them, its RSS and CPU.

The API server's ``apiserver_request_total`` has no client label, so requests are attributed through API
Priority and Fairness instead: the operator runs as its own client-certificate user, and FlowSchemas
matching only that user (one per verb and resource, on the ``exempt`` priority level so nothing is queued
or throttled) make ``apiserver_flowcontrol_dispatched_requests_total{flow_schema=...}`` count exactly the
operator's requests, by verb and resource. Memory and CPU come from ``/proc/<pid>``.
"""

from __future__ import annotations

import os
import re
from collections import Counter
from dataclasses import dataclass
from typing import Any

PREFIX = "mpbench"
VERBS = ("get", "list", "watch", "create", "update", "patch", "delete", "deletecollection")
RESOURCE_BUCKETS: dict[str, tuple[list[str], list[str]]] = {
    # bucket -> (apiGroups, resources incl. subresources)
    "modelpacks": (["modelpack.dev"], ["modelpacks", "modelpacks/status"]),
    "loadtests": (["modelpack.dev"], ["loadtests", "loadtests/status"]),
    "deployments": (["apps"], ["deployments", "deployments/status", "deployments/scale"]),
    "services": ([""], ["services"]),
    "configmaps": ([""], ["configmaps"]),
    "pods": ([""], ["pods", "pods/status"]),
    "events": (["", "events.k8s.io"], ["events"]),
    "other": (["*"], ["*"]),
}
_METRIC = re.compile(r"^apiserver_flowcontrol_dispatched_requests_total\{([^}]*)\}\s+([0-9.e+]+)$", re.M)


def flow_schemas(user: str) -> list[dict[str, Any]]:
    """FlowSchemas that each catch one (verb, resource bucket) of ``user``'s requests."""
    subjects = [{"kind": "User", "user": {"name": user}}]
    out: list[dict[str, Any]] = []
    for bucket, (groups, resources) in RESOURCE_BUCKETS.items():
        precedence = 301 if bucket == "other" else 300
        for verb in VERBS:
            rule = {
                "verbs": [verb],
                "apiGroups": groups,
                "resources": resources,
                "namespaces": ["*"],
                "clusterScope": True,
            }
            out.append(
                _flow_schema(f"{PREFIX}-{verb}-{bucket}", precedence, [{"subjects": subjects, "resourceRules": [rule]}])
            )
    non_resource = {"subjects": subjects, "nonResourceRules": [{"verbs": ["*"], "nonResourceURLs": ["*"]}]}
    out.append(_flow_schema(f"{PREFIX}-nonresource-other", 302, [non_resource]))
    return out


def _flow_schema(name: str, precedence: int, rules: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "apiVersion": "flowcontrol.apiserver.k8s.io/v1",
        "kind": "FlowSchema",
        "metadata": {"name": name, "labels": {"app.kubernetes.io/part-of": "modelpack-benchmark"}},
        "spec": {
            "matchingPrecedence": precedence,
            "priorityLevelConfiguration": {"name": "exempt"},
            "rules": rules,
        },
    }


def user_rbac(user: str) -> dict[str, Any]:
    """cluster-admin for the operator's user, bound directly (system:masters would bypass the FlowSchemas)."""
    return {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "ClusterRoleBinding",
        "metadata": {"name": f"{PREFIX}-{user}"},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "cluster-admin"},
        "subjects": [{"apiGroup": "rbac.authorization.k8s.io", "kind": "User", "name": user}],
    }


def request_counts(metrics_text: str) -> Counter[tuple[str, str]]:
    """(verb, resource bucket) -> requests dispatched so far, from the API server's /metrics text."""
    counts: Counter[tuple[str, str]] = Counter()
    for labels, value in _METRIC.findall(metrics_text):
        match = re.search(rf'flow_schema="{PREFIX}-([a-z]+)-([a-z]+)"', labels)
        if match:
            counts[(match.group(1), match.group(2))] += int(float(value))
    return counts


def by_verb(counts: Counter[tuple[str, str]]) -> dict[str, int]:
    out: Counter[str] = Counter()
    for (verb, _), n in counts.items():
        out[verb] += n
    return dict(sorted(out.items()))


def by_resource(counts: Counter[tuple[str, str]]) -> dict[str, int]:
    out: Counter[str] = Counter()
    for (_, resource), n in counts.items():
        out[resource] += n
    return dict(sorted(out.items()))


@dataclass(frozen=True)
class ProcSample:
    rss_bytes: int
    peak_rss_bytes: int
    cpu_seconds: float


def proc_sample(pid: int) -> ProcSample:
    """Current and peak resident memory (VmRSS, VmHWM) and user+system CPU seconds of one process."""
    fields: dict[str, int] = {}
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            key, _, rest = line.partition(":")
            if key in ("VmRSS", "VmHWM"):
                fields[key] = int(rest.split()[0]) * 1024
    with open(f"/proc/{pid}/stat") as f:
        stat = f.read()
    # Fields after the parenthesised command name; utime and stime are the 14th and 15th overall.
    after = stat.rsplit(")", 1)[1].split()
    ticks = int(after[11]) + int(after[12])
    return ProcSample(fields.get("VmRSS", 0), fields.get("VmHWM", 0), ticks / os.sysconf("SC_CLK_TCK"))
