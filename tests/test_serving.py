"""Both runtimes tune `modelpack serve` from the same flags, and the server accepts every one of them."""

from __future__ import annotations

from typing import Any

import pytest

from modelpack.api.common import API_VERSION
from modelpack.api.modelpack import Batching, ModelPack, ModelPackSpec, ServerSpec
from modelpack.plan.measurement import server_shape_of
from modelpack.serving import MODELS_ARG_LIMIT, models_file_text, serve_args, server_resources, tuning_flags


def test_flags_follow_the_spec() -> None:
    spec = ServerSpec(memory_budget="3Gi", batching=Batching(max_batch_size=4, max_queue_delay_ms=2.5), preload=True)
    flags = tuning_flags(spec)
    assert flags[flags.index("--memory-budget") + 1] == "3Gi"
    assert flags[flags.index("--max-batch-size") + 1] == "4"
    assert flags[flags.index("--max-queue-delay-ms") + 1] == "2.5"
    assert "--preload" in flags
    assert "--preload" not in tuning_flags(ServerSpec())
    assert tuning_flags(ServerSpec(precision="int8-dynamic"))[-2:] == ["--precision", "int8-dynamic"]
    assert "--precision" not in tuning_flags(ServerSpec())  # unset: the compute default is a build choice only


def test_server_cli_accepts_the_flags() -> None:
    import argparse

    from model_server import command as serve

    parser = argparse.ArgumentParser()
    serve.register(parser)
    args = parser.parse_args(["--store", "/tmp/store", *tuning_flags(ServerSpec(preload=True, precision="fp32"))])
    assert args.preload is True and args.precision == "fp32"


def _spec(compute: dict[str, Any], server: dict[str, Any] | None = None) -> ModelPackSpec:
    return ModelPackSpec.model_validate(
        {"store": {"uri": "s3://bucket/x"}, "models": {"count": 10}, "compute": compute, "server": server or {}}
    )


@pytest.mark.parametrize(
    ("compute", "server", "requests", "limits"),
    [
        ({"type": "graviton"}, None, {"cpu": "2", "memory": "3456Mi"}, {"memory": "3456Mi"}),
        (
            {"type": "inferentia", "acceleratorsPerServer": 2},
            {"workerThreads": 4, "memoryBudget": "1Gi"},
            {"cpu": "4", "memory": "2432Mi", "aws.amazon.com/neuron": "2"},
            {"memory": "2432Mi", "aws.amazon.com/neuron": "2"},
        ),
        (
            {"type": "gpu", "resources": {"requests": {"memory": "8Gi", "cpu": "3500m"}}},
            {"memoryBudget": "1500Mi"},
            {"cpu": "3500m", "memory": "8Gi", "nvidia.com/gpu": "1"},
            {"memory": "8Gi", "nvidia.com/gpu": "1"},  # a raised request takes its limit along
        ),
    ],
)
def test_server_resources(
    compute: dict[str, Any], server: dict[str, Any] | None, requests: dict[str, str], limits: dict[str, str]
) -> None:
    assert server_resources(_spec(compute, server)) == {"requests": requests, "limits": limits}


def test_plan_sizes_a_server_from_the_same_resources() -> None:
    pack = ModelPack.model_validate(
        {
            "apiVersion": API_VERSION,
            "kind": "ModelPack",
            "metadata": {"name": "p"},
            "spec": _spec({"type": "gpu"}).to_dict(),
        }
    )
    shape = server_shape_of(pack)
    assert (shape.cpu_millicores, shape.memory_bytes, shape.accelerators) == (2000, (2048 + 1408) * 2**20, 1)


def test_a_long_model_list_goes_in_a_file_with_one_name_per_line() -> None:
    short, long = ["a", "b"], [f"model-{i:06d}" for i in range(MODELS_ARG_LIMIT // 10)]
    spec = ServerSpec()
    common = {"store_uri": "s3://b/x", "host": "0.0.0.0", "port": 8080, "threads": 2, "models_file": "/m/models"}
    assert serve_args(spec, short, **common)[2:4] == ["--models", "a,b"]  # type: ignore[arg-type]
    args = serve_args(spec, long, **common)  # type: ignore[arg-type]
    assert args[2:4] == ["--models-file", "/m/models"] and not any("model-000001" in a for a in args)
    assert models_file_text(long).splitlines() == long
