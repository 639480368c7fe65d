"""plan sizes servers the way the operator does: checked against the operator's own builder."""

from __future__ import annotations

from typing import Any

import pytest

from modelpack.api.modelpack import ModelPack
from modelpack.cost import pod_requests
from modelpack.plan.measurement import server_shape_of
from modelpack_operator.builders.server import server_resources
from modelpack_operator.settings import ServerSettings


def pack(compute: dict[str, Any], server: dict[str, Any] | None = None) -> ModelPack:
    return ModelPack.model_validate(
        {
            "apiVersion": "modelpack.dev/v1alpha1",
            "kind": "ModelPack",
            "metadata": {"name": "p"},
            "spec": {
                "store": {"uri": "s3://bucket/x"},
                "models": {"count": 10},
                "compute": compute,
                "server": server or {},
            },
        }
    )


@pytest.mark.parametrize(
    ("compute", "server"),
    [
        ({"type": "graviton"}, None),
        ({"type": "x86"}, {"workerThreads": 4, "memoryBudget": "6Gi"}),
        ({"type": "inferentia", "acceleratorsPerServer": 2}, None),
        ({"type": "gpu"}, {"memoryBudget": "1500Mi"}),
        ({"type": "graviton", "resources": {"requests": {"cpu": "3500m"}}}, {"memoryBudget": "3Gi"}),
    ],
)
def test_server_shape_matches_operator(compute: dict[str, Any], server: dict[str, Any] | None) -> None:
    p = pack(compute, server)
    operator_requests = server_resources(p, ServerSettings())
    expected = pod_requests({"spec": {"containers": [{"name": "s", "resources": operator_requests}]}})
    shape = server_shape_of(p)
    assert shape.cpu_millicores == int(expected["cpu"] * 1000)
    assert shape.memory_bytes == int(expected["memory"])
    assert shape.accelerators == sum(int(v) for k, v in expected.items() if "/" in k)
