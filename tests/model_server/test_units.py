"""Small units: the Neuron seam without the SDK, CPU sizing from cgroup files, the malloc trimmer."""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

import pytest

from model_server.cpus import cgroup_cpu_limit
from model_server.loaded import load_model
from model_server.memory import Trimmer
from model_server.neuron import NeuronUnavailableError
from model_server.templates import Templates


def test_neuron_model_without_sdk_fails_naming_the_package(fleet: Path, tmp_path: Path) -> None:
    model_dir = tmp_path / "neuron-model"
    shutil.copytree(fleet / "m-a", model_dir)
    config = json.loads((model_dir / "config.json").read_text())
    (model_dir / "config.json").write_text(json.dumps({**config, "platform": "neuron"}))
    with pytest.raises(NeuronUnavailableError, match="torch-neuronx"):
        load_model("neuron-model", model_dir)
    assert "torch_neuronx" not in sys.modules


@pytest.mark.parametrize(
    ("files", "expected"),
    [
        ({"cpu.max": "200000 100000\n"}, 2.0),
        ({"cpu.max": "150000 100000\n"}, 1.5),
        ({"cpu.max": "max 100000\n"}, None),
        ({"cpu/cpu.cfs_quota_us": "300000\n", "cpu/cpu.cfs_period_us": "100000\n"}, 3.0),
        ({"cpu/cpu.cfs_quota_us": "-1\n", "cpu/cpu.cfs_period_us": "100000\n"}, None),
        ({}, None),
    ],
)
def test_cgroup_cpu_limit(tmp_path: Path, files: dict[str, str], expected: float | None) -> None:
    for name, text in files.items():
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text(text)
    assert cgroup_cpu_limit(tmp_path) == expected


def test_trimmer_runs_only_after_frees_and_at_most_once_per_interval() -> None:
    trimmer = Trimmer(min_interval_s=3600)
    assert trimmer.maybe_trim() is False  # nothing freed yet
    trimmer.note_free()
    assert trimmer.maybe_trim() is True
    trimmer.note_free()
    assert trimmer.maybe_trim() is False  # within the interval


def test_warm_up_runs_declared_shapes_and_never_raises(fleet: Path) -> None:
    model = load_model("m-a", fleet / "m-a", templates=Templates(limit=0))  # not a template copy: it warms up
    assert model.warm_up() is True
    too_long = [s.model_copy(update={"shape": [1000]}) for s in model.config.inputs]  # beyond the position table
    model.config = model.config.model_copy(update={"inputs": too_long})
    assert model.warm_up() is False
    variable = [s.model_copy(update={"shape": [-1]}) for s in model.config.inputs]
    model.config = model.config.model_copy(update={"inputs": variable})
    assert model.warm_up() is False
