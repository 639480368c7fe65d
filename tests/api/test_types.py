"""The pydantic types: defaults, cross-field rules and error messages that name the field."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from modelpack.api.base import parse_duration, parse_quantity
from modelpack.api.loading import InvalidObjectError, parse_object
from modelpack.api.loadtest import LoadTest
from modelpack.api.modelpack import ModelPack

PACK: dict[str, Any] = {
    "apiVersion": "modelpack.dev/v1alpha1",
    "kind": "ModelPack",
    "metadata": {"name": "fleet"},
    "spec": {"store": {"uri": "s3://models-bucket/bert"}, "models": {"count": 40}, "compute": {"type": "graviton"}},
}
TEST: dict[str, Any] = {
    "apiVersion": "modelpack.dev/v1alpha1",
    "kind": "LoadTest",
    "metadata": {"name": "smoke"},
    "spec": {"target": {"modelPack": "fleet"}, "load": {"rate": 50}},
}


def with_spec(base: dict[str, Any], path: str, value: Any) -> dict[str, Any]:
    doc = copy.deepcopy(base)
    node = doc["spec"]
    *parents, leaf = path.split(".")
    for key in parents:
        node = node.setdefault(key, {})
    node[leaf] = value
    return doc


def test_modelpack_defaults_are_filled() -> None:
    pack = parse_object(PACK)
    assert isinstance(pack, ModelPack)
    assert pack.spec.models_per_server == 16
    assert pack.spec.replicas == 1
    assert pack.spec.server.batching.max_batch_size == 8
    assert pack.spec.models.expand()[:2] == ["model-00000", "model-00001"]
    assert len(pack.spec.models.expand()) == 40


def test_loadtest_defaults_are_filled() -> None:
    test = parse_object(TEST)
    assert isinstance(test, LoadTest)
    assert test.spec.load.mode == "constant-rate"
    assert test.spec.load.duration_seconds() == 30
    assert test.spec.workers == 1
    assert test.spec.target.spread == "uniform"


def test_to_dict_round_trips_camel_case() -> None:
    pack = parse_object(PACK)
    dumped = pack.to_dict()
    assert dumped["spec"]["modelsPerServer"] == 16
    assert parse_object(dumped) == pack


@pytest.mark.parametrize(
    ("doc", "field", "words"),
    [
        (with_spec(PACK, "modelsPerServer", 0), "spec.modelsPerServer", "greater than or equal to 1"),
        (with_spec(PACK, "compute.type", "tpu"), "spec.compute.type", "graviton"),
        (with_spec(PACK, "store.uri", "http://example/models"), "spec.store.uri", "should match pattern"),
        (with_spec(PACK, "models", {"count": 3, "names": ["a"]}), "spec.models", "exactly one of"),
        (with_spec(PACK, "replicas", "two"), "spec.replicas", "valid integer"),
        (with_spec(PACK, "server.memoryBudget", "lots"), "spec.server.memoryBudget", "should match pattern"),
        (with_spec(PACK, "unknownField", 1), "spec.unknownField", "Extra inputs"),
        (with_spec(PACK, "server.precision", "fp16"), "spec.server.precision", "'fp32', 'int8-dynamic' or 'bf16'"),
        (
            with_spec(TEST, "load", {"mode": "concurrency", "rate": 5, "concurrency": 2}),
            "spec.load",
            "concurrency mode",
        ),
        (with_spec(TEST, "load", {"mode": "constant-rate"}), "spec.load", "load.rate"),
        (with_spec(TEST, "load.rate", -1), "spec.load.rate", "greater than 0"),
        (with_spec(TEST, "slo", {"p99LatencyMs": -5}), "spec.slo.p99LatencyMs", "greater than 0"),
        (with_spec(TEST, "slo", {"maxErrorRate": 2}), "spec.slo.maxErrorRate", "less than or equal to 1"),
        (with_spec(TEST, "load.duration", "30 seconds"), "spec.load.duration", "should match pattern"),
        (with_spec(TEST, "target", {}), "spec.target.modelPack", "Field required"),
        (with_spec(TEST, "load", {"mode": "sweep", "sweep": {}}), "spec", "slo is required in sweep mode"),
        (with_spec(TEST, "target.models", {"selection": "list"}), "spec.target.models", "names is required"),
        (with_spec(TEST, "payload", {"mode": "given"}), "spec.payload", "payload.request is required"),
    ],
)
def test_bad_objects_are_refused_naming_the_field(doc: dict[str, Any], field: str, words: str) -> None:
    with pytest.raises(InvalidObjectError) as err:
        parse_object(doc, "bad.yaml")
    message = str(err.value)
    assert f"{field}: " in message
    assert words in message


def test_wrong_kind_and_version_are_named() -> None:
    with pytest.raises(InvalidObjectError, match="kind: expected one of"):
        parse_object({**PACK, "kind": "Pod"})
    with pytest.raises(InvalidObjectError, match=r"apiVersion: expected 'modelpack\.dev/v1alpha1'"):
        parse_object({**PACK, "apiVersion": "v1"})
    with pytest.raises(InvalidObjectError, match="expected a mapping"):
        parse_object(["not", "a", "mapping"])


def test_durations_and_quantities() -> None:
    assert parse_duration("1m30s") == 90
    assert parse_duration("250ms") == 0.25
    assert parse_quantity("512Mi") == 512 * 2**20
    assert parse_quantity("2G") == 2 * 10**9
    with pytest.raises(ValueError, match="invalid duration '5 min'"):
        parse_duration("5 min")
    with pytest.raises(ValueError, match="invalid quantity 'big'"):
        parse_quantity("big")


def test_precision_defaults_per_compute_type_and_an_explicit_one_wins() -> None:
    pack = parse_object(PACK)
    assert isinstance(pack, ModelPack) and pack.spec.server.precision is None
    assert [pack.spec.server.resolved_precision(c) for c in ("x86", "graviton", "inferentia", "gpu")] == [
        "int8-dynamic",
        "int8-dynamic",
        "fp32",
        "fp32",
    ]
    chosen = parse_object(with_spec(PACK, "server.precision", "bf16"))
    assert isinstance(chosen, ModelPack) and chosen.spec.server.resolved_precision("x86") == "bf16"
