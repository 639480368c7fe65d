"""Every example in examples/ becomes objects the real API server accepts (server-side dry run)."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
import yaml

from modelpack.api.loading import load_file
from modelpack.api.loadtest import LoadTest
from modelpack.api.modelpack import ModelPack
from modelpack.placement import place
from modelpack_operator.builders.loadtest_job import loadtest_job
from modelpack_operator.builders.routes import route_table_names, route_tables
from modelpack_operator.builders.server import server_deployment, server_service
from modelpack_operator.settings import OperatorSettings
from tests.cluster.controlplane import ControlPlane
from tests.operator.harness import ROOT

pytestmark = pytest.mark.cluster
EXAMPLES = sorted((ROOT / "examples").glob("*.yaml"))
SETTINGS = OperatorSettings()


def _objects(path: Path, namespace: str) -> list[dict]:
    out: list[dict] = []
    for obj in load_file(path):
        obj.metadata.namespace = namespace
        obj.metadata.uid = "00000000-0000-0000-0000-000000000001"
        if isinstance(obj, ModelPack):
            placement = place(obj.spec.models.expand(), obj.spec.models_per_server)
            first, last = placement.servers[0], placement.servers[-1]
            out += [server_deployment(obj, s, SETTINGS.server) for s in (first, last)]
            out += [server_service(obj, first, SETTINGS.server), *route_tables(obj, placement, SETTINGS.server)]
        elif isinstance(obj, LoadTest):
            tables = route_table_names(obj.spec.target.model_pack, 1)
            out.append(loadtest_job(obj, tables, time.time(), SETTINGS.worker))
    return out


def test_there_is_an_example_per_compute_type_and_load_mode() -> None:
    objs = [o for p in EXAMPLES for o in load_file(p)]
    assert {o.spec.compute.type for o in objs if isinstance(o, ModelPack)} == {"graviton", "x86", "inferentia", "gpu"}
    assert {o.spec.load.mode for o in objs if isinstance(o, LoadTest)} >= {"constant-rate", "sweep"}


def test_example_objects_pass_api_server_validation(crds: ControlPlane, namespace: str) -> None:
    failures = {}
    for path in EXAMPLES:
        docs = _objects(path, namespace)
        assert docs, path
        text = yaml.safe_dump_all(docs)
        args = ("apply", "--dry-run=server", "--server-side", "-n", namespace, "-f", "-")
        result = crds.kubectl(*args, input=text, check=False)
        if result.returncode != 0:
            failures[path.name] = result.stderr
    assert not failures
