"""Hostile and careless objects, each with the verdict admission must give and the field its message must name.

One corpus for two judges: the API server (CRDs + the chart's ValidatingAdmissionPolicy) and
``modelpack validate``; both must agree on every case (tests/api/test_corpus.py, test_corpus_cluster.py).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from tests.api.test_types import PACK, TEST, with_spec


@dataclass(frozen=True)
class Case:
    id: str
    doc: dict[str, Any]
    field: str | None
    """What the refusal names; None: the object is accepted."""


def _named(doc: dict[str, Any], name: str) -> dict[str, Any]:
    return {**doc, "metadata": {"name": name}}


def _pod(spec: dict[str, Any] | None = None, metadata: dict[str, Any] | None = None) -> dict[str, Any]:
    template: dict[str, Any] = {}
    if spec is not None:
        template["spec"] = spec
    if metadata is not None:
        template["metadata"] = metadata
    return with_spec(PACK, "compute.podTemplate", template)


def refused(id_: str, doc: dict[str, Any], field: str) -> Case:
    return Case(id_, doc, field)


def accepted(id_: str, doc: dict[str, Any]) -> Case:
    return Case(id_, doc, None)


CASES: list[Case] = [
    # Model names: folders in the store, URL path parts, items of a comma-separated flag.
    refused("name-dotdot", with_spec(PACK, "models", {"names": ["ok", "../../etc"]}), "spec.models.names"),
    refused("name-slash", with_spec(PACK, "models", {"names": ["team/bert"]}), "spec.models.names"),
    refused("name-empty", with_spec(PACK, "models", {"names": [""]}), "spec.models.names"),
    refused("name-too-long", with_spec(PACK, "models", {"names": ["m" * 129]}), "spec.models.names"),
    refused("name-comma", with_spec(PACK, "models", {"names": ["a,b"]}), "spec.models.names"),
    refused("name-leading-dot", with_spec(PACK, "models", {"names": [".hidden"]}), "spec.models.names"),
    refused("name-duplicate", with_spec(PACK, "models", {"names": ["a", "b", "a"]}), "spec.models.names"),
    refused("pattern-dotdot", with_spec(PACK, "models", {"count": 3, "namePattern": "../{index}"}), "namePattern"),
    refused("pattern-slash", with_spec(PACK, "models", {"count": 3, "namePattern": "m/{index}"}), "namePattern"),
    refused("pattern-width", with_spec(PACK, "models", {"count": 3, "namePattern": "m{index:0999d}"}), "namePattern"),
    refused(
        "pattern-with-names", with_spec(PACK, "models", {"names": ["a"], "namePattern": "x{index}"}), "namePattern"
    ),
    # Size: bounded by the types, then by the cluster's limits (chart admission policy / validate defaults).
    refused("million-models", with_spec(PACK, "models", {"count": 1_000_000}), "spec.models.count"),
    refused(
        "ten-thousand-plus-servers",
        with_spec(with_spec(PACK, "models", {"count": 100_000}), "modelsPerServer", 1),
        "modelsPerServer",
    ),
    refused("over-model-limit", with_spec(PACK, "models", {"count": 60_000}), "spec.models"),
    refused(
        "over-server-limit",
        with_spec(with_spec(PACK, "models", {"count": 5000}), "modelsPerServer", 1),
        "spec.modelsPerServer",
    ),
    refused("replicas-1001", with_spec(PACK, "replicas", 1001), "spec.replicas"),
    refused("precision-unknown", with_spec(PACK, "server.precision", "fp16"), "spec.server.precision"),
    accepted("precision-int8", with_spec(PACK, "server.precision", "int8-dynamic")),
    # Object names every derived name must fit (Services are DNS-1035 labels: a letter first, 63 at most).
    refused("pack-name-digit-first", _named(PACK, "1fleet"), "metadata.name"),
    refused("pack-name-51-chars", _named(PACK, "p" * 51), "metadata.name"),
    # Store, image, budgets.
    refused("pvc-dotdot", with_spec(PACK, "store.uri", "pvc://models/../../etc"), "spec.store.uri"),
    refused("file-dotdot", with_spec(PACK, "store.uri", "file:///models/../etc"), "spec.store.uri"),
    refused("region-bogus", with_spec(PACK, "store.region", "mars"), "spec.store.region"),
    refused("budget-1Mi", with_spec(PACK, "server.memoryBudget", "1Mi"), "spec.server.memoryBudget"),
    refused("budget-10Ti", with_spec(PACK, "server.memoryBudget", "10Ti"), "spec.server.memoryBudget"),
    refused("image-spaces", with_spec(PACK, "server.image", "my server image"), "spec.server.image"),
    # Scheduling fields the API server would refuse on the Deployment.
    refused("selector-key", with_spec(PACK, "compute.nodeSelector", {"bad key": "x"}), "spec.compute.nodeSelector"),
    refused("selector-value", with_spec(PACK, "compute.nodeSelector", {"pool": "v" * 64}), "compute.nodeSelector"),
    refused(
        "toleration-exists-value",
        with_spec(PACK, "compute.tolerations", [{"key": "k", "operator": "Exists", "value": "v"}]),
        "spec.compute.tolerations",
    ),
    refused(
        "toleration-seconds-noschedule",
        with_spec(PACK, "compute.tolerations", [{"key": "k", "effect": "NoSchedule", "tolerationSeconds": 5}]),
        "spec.compute.tolerations",
    ),
    refused(
        "resources-not-quantity",
        with_spec(PACK, "compute.resources", {"requests": {"cpu": "lots"}}),
        "spec.compute.resources.requests",
    ),
    refused(
        "request-above-limit",
        with_spec(PACK, "compute.resources", {"requests": {"memory": "8Gi"}, "limits": {"memory": "4Gi"}}),
        "compute.resources",
    ),
    refused("instance-types-duplicate", with_spec(PACK, "compute.instanceTypes", ["a", "a"]), "compute.instanceTypes"),
    # podTemplate: only the allow-list exists.
    refused("pt-service-account", _pod({"serviceAccountName": "admin"}), "podTemplate.spec.serviceAccountName"),
    refused("pt-host-network", _pod({"hostNetwork": True}), "podTemplate.spec.hostNetwork"),
    refused("pt-host-pid", _pod({"hostPID": True}), "podTemplate.spec.hostPID"),
    refused(
        "pt-privileged-container",
        _pod({"containers": [{"name": "server", "securityContext": {"privileged": True}}]}),
        "podTemplate.spec.containers",
    ),
    refused("pt-host-path", _pod({"volumes": [{"name": "root", "hostPath": {"path": "/"}}]}), "hostPath"),
    refused("pt-security-context", _pod({"securityContext": {"runAsUser": 0}}), "podTemplate.spec.securityContext"),
    refused(
        "pt-secret-env",
        _pod({"serverContainer": {"env": [{"name": "T", "valueFrom": {"secretKeyRef": {"name": "s", "key": "k"}}}]}}),
        "secretKeyRef",
    ),
    refused("pt-secret-volume", _pod({"volumes": [{"name": "s", "secret": {"secretName": "s"}}]}), "secret"),
    refused("pt-reserved-label", _pod(metadata={"labels": {"modelpack.dev/pack": "other"}}), "labels"),
    refused("pt-reserved-env", _pod({"serverContainer": {"env": [{"name": "MODELPACK_X", "value": "1"}]}}), "env"),
    refused(
        "pt-mount-undeclared",
        _pod({"serverContainer": {"volumeMounts": [{"name": "nope", "mountPath": "/data"}]}}),
        "volumeMounts",
    ),
    refused(
        "pt-mount-over-tmp",
        _pod(
            {
                "volumes": [{"name": "scratch", "emptyDir": {}}],
                "serverContainer": {"volumeMounts": [{"name": "scratch", "mountPath": "/tmp"}]},
            }
        ),
        "volumeMounts",
    ),
    accepted(
        "pt-allow-listed",
        _pod(
            {
                "affinity": {"podAntiAffinity": {"preferredDuringSchedulingIgnoredDuringExecution": []}},
                "tolerations": [{"key": "team", "operator": "Equal", "value": "ml", "effect": "NoSchedule"}],
                "priorityClassName": "batch-low",
                "volumes": [{"name": "extra", "configMap": {"name": "tokenizer"}}, {"name": "s", "emptyDir": {}}],
                "serverContainer": {
                    "env": [
                        {"name": "LOG_LEVEL", "value": "debug"},
                        {"name": "POD", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
                    ],
                    "volumeMounts": [{"name": "extra", "mountPath": "/etc/extra", "readOnly": True}],
                },
            },
            metadata={"labels": {"team": "ml"}, "annotations": {"example.com/owner": "ml"}},
        ),
    ),
    accepted("names-with-dots", with_spec(PACK, "models", {"names": ["bert.v2_large-1", "gpt2"]})),
    accepted("budget-64Mi", with_spec(PACK, "server.memoryBudget", "64Mi")),
    accepted("at-model-limit", with_spec(PACK, "models", {"count": 50_000})),
    # LoadTest: durations, timeouts, rates, sets, modes.
    refused("timeout-0s", with_spec(TEST, "load.timeout", "0s"), "spec.load.timeout"),
    refused("duration-0s", with_spec(TEST, "load.duration", "0s"), "spec.load.duration"),
    refused("duration-48h", with_spec(TEST, "load.duration", "48h"), "spec.load.duration"),
    refused("warmup-2h", with_spec(TEST, "load.warmup", "2h"), "spec.load.warmup"),
    refused(
        "sweep-start-above-max",
        with_spec(with_spec(TEST, "load", {"mode": "sweep", "sweep": {"startRate": 50, "maxRate": 10}}), "slo", {}),
        "load.sweep",
    ),
    refused(
        "sweep-ten-million-steps",
        with_spec(with_spec(TEST, "load", {"mode": "sweep", "sweep": {"stepRate": 0.001}}), "slo", {}),
        "load.sweep",
    ),
    refused("sweep-in-constant-rate", with_spec(TEST, "load.sweep", {"startRate": 5}), "load.sweep"),
    refused(
        "stage-rate-in-concurrency",
        with_spec(TEST, "load", {"mode": "concurrency", "stages": [{"duration": "5s", "rate": 10}]}),
        "load.stages",
    ),
    refused(
        "target-name-dotdot",
        with_spec(TEST, "target.models", {"selection": "list", "names": ["../x"]}),
        "spec.target.models.names",
    ),
    refused(
        "target-names-duplicate",
        with_spec(TEST, "target.models", {"selection": "list", "names": ["a", "a"]}),
        "spec.target.models.names",
    ),
    refused("target-names-with-all", with_spec(TEST, "target.models", {"names": ["a"]}), "target.models.names"),
    refused("target-pack-digit-first", with_spec(TEST, "target.modelPack", "1fleet"), "spec.target.modelPack"),
    refused("ttl-ten-years", with_spec(TEST, "ttlSecondsAfterFinished", 315_360_000), "ttlSecondsAfterFinished"),
    refused("seed-negative", with_spec(TEST, "target.models.seed", -1), "spec.target.models.seed"),
    refused("rate-two-million", with_spec(TEST, "load.rate", 2_000_000), "spec.load.rate"),
    refused("p99-a-year", with_spec(TEST, "slo", {"p99LatencyMs": 31_536_000_000}), "spec.slo.p99LatencyMs"),
    refused(
        "autoscaling-min-over-max",
        with_spec(PACK, "autoscaling", {"minReplicas": 5, "maxReplicas": 2, "targetCpuUtilization": 70}),
        "autoscaling.minReplicas cannot exceed autoscaling.maxReplicas",
    ),
    refused(
        "autoscaling-no-target",
        with_spec(PACK, "autoscaling", {"maxReplicas": 3}),
        "exactly one of targetCpuUtilization or targetInFlight",
    ),
    refused(
        "autoscaling-two-targets",
        with_spec(PACK, "autoscaling", {"maxReplicas": 3, "targetCpuUtilization": 70, "targetInFlight": 4}),
        "exactly one of targetCpuUtilization or targetInFlight",
    ),
    refused(
        "autoscaling-zero-in-flight",
        with_spec(PACK, "autoscaling", {"maxReplicas": 3, "targetInFlight": 0}),
        "spec.autoscaling.targetInFlight",
    ),
    accepted("autoscaling-in-flight", with_spec(PACK, "autoscaling", {"maxReplicas": 4, "targetInFlight": 8})),
    accepted("timeout-10ms", with_spec(TEST, "load.timeout", "10ms")),
    accepted(
        "stages-ramp",
        with_spec(TEST, "load", {"stages": [{"duration": "5s", "rate": 10}, {"duration": "1m30s", "rate": 100}]}),
    ),
]
