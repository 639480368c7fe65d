"""Loading models of one architecture from a template: the same outputs as torch.jit.load, no weights kept in
the template, other architectures and unreadable archives on their own path, and data.pkl never runs code."""

from __future__ import annotations

import dataclasses
import os
import pickle
import zipfile
from pathlib import Path

import pytest
import torch

from model_server.fleet import build_fleet
from model_server.loaded import load_model
from model_server.templates import Templates, jit_load
from model_server.weights import Archive, NotReadable
from tests.model_server.conftest import TINY


def outputs(module: torch.jit.ScriptModule) -> list[torch.Tensor]:
    ids = torch.arange(32).remainder(500).reshape(2, 16)
    with torch.jit.optimized_execution(False), torch.inference_mode():
        out = module(ids, torch.ones_like(ids))
    return list(out) if isinstance(out, (tuple, list)) else [out]


def same(module: torch.jit.ScriptModule, model_dir: Path) -> bool:
    """Bit for bit the outputs torch.jit.load's module of the same archive gives."""
    return all(torch.equal(x, y) for x, y in zip(outputs(module), jit_outputs(model_dir), strict=True))


def jit_outputs(model_dir: Path) -> list[torch.Tensor]:
    return outputs(jit_load(model_dir / "model.pt"))


def test_models_of_one_architecture_are_copies_of_a_template_with_their_own_weights(tmp_path: Path) -> None:
    build_fleet(tmp_path, ["a", "b", "c"], TINY)
    templates = Templates()
    loaded = {name: load_model(name, tmp_path / name, templates=templates) for name in ("a", "b", "c")}
    assert templates.copies == 2  # "a" was loaded with torch.jit.load and became the template
    assert [m.planned for m in loaded.values()] == [False, True, True]  # copies share the plan a's warm-up builds
    assert loaded["b"].tokenizer is loaded["c"].tokenizer  # one tokenizer.json, parsed once
    for name, model in loaded.items():
        assert same(model.module, tmp_path / name)
    assert not torch.equal(outputs(loaded["b"].module)[0], outputs(loaded["c"].module)[0])
    assert loaded["b"].size_bytes == loaded["a"].size_bytes  # the budget counts a copy like any model
    ((template, _),) = templates._templates.values()
    assert sum(t.numel() for t in template.state_dict().values()) == 0  # a template costs graphs, not weights


def test_another_architecture_gets_its_own_template(tmp_path: Path) -> None:
    wider = dataclasses.replace(TINY, hidden=64)
    build_fleet(tmp_path / "tiny", ["a"], TINY)
    build_fleet(tmp_path / "wide", ["a", "b"], wider)
    assert Archive(tmp_path / "tiny" / "a" / "model.pt").key != Archive(tmp_path / "wide" / "a" / "model.pt").key
    templates = Templates()
    load_model("a", tmp_path / "tiny" / "a", templates=templates)
    wide = load_model("b", tmp_path / "wide" / "b", templates=templates)
    assert templates.copies == 0 and len(templates._templates) == 2
    assert same(wide.module, tmp_path / "wide" / "b")


def test_a_corrupt_archive_still_fails_naming_the_file(tmp_path: Path) -> None:
    build_fleet(tmp_path, ["a", "bad"], TINY)
    (tmp_path / "bad" / "model.pt").write_bytes(b"this is not a torchscript archive")
    templates = Templates()
    load_model("a", tmp_path / "a", templates=templates)
    with pytest.raises(ValueError, match=r"bad/model\.pt: not a loadable TorchScript archive"):
        load_model("bad", tmp_path / "bad", templates=templates)


class _Shell:
    def __reduce__(self) -> tuple[object, tuple[str]]:
        return os.system, (f"touch {self.marker}",)

    marker = ""


def test_data_pkl_is_never_allowed_to_run_code(tmp_path: Path) -> None:
    build_fleet(tmp_path, ["a"], TINY)
    path = tmp_path / "a" / "model.pt"
    marker = tmp_path / "ran"
    _Shell.marker = str(marker)
    evil = tmp_path / "evil.pt"
    with zipfile.ZipFile(path) as src, zipfile.ZipFile(evil, "w", zipfile.ZIP_STORED) as dst:
        for info in src.infolist():
            data = src.read(info)
            if info.filename.endswith("/data.pkl"):
                data = pickle.dumps({"weight": _Shell()}, protocol=2)
            dst.writestr(info, data)
    with Archive(evil) as archive, pytest.raises(NotReadable, match=r"data\.pkl refers to (posix|os)\.system"):
        archive.tensors()
    assert not marker.exists()


def test_no_templates_when_the_limit_is_zero(tmp_path: Path) -> None:
    """What ``--jit-load-every-model`` gives the server: every model through torch.jit.load."""
    build_fleet(tmp_path, ["a", "b"], TINY)
    templates = Templates(limit=0)
    for name in ("a", "b"):
        assert same(load_model(name, tmp_path / name, templates=templates).module, tmp_path / name)
    assert templates.copies == 0 and not templates._templates


def test_a_broken_tokenizer_is_refused_naming_the_file(tmp_path: Path) -> None:
    build_fleet(tmp_path, ["a"], TINY)
    (tmp_path / "a" / "tokenizer.json").write_text('{"version": "1.0", "model": 17}')
    with pytest.raises(ValueError, match=r"a/tokenizer\.json: not a loadable tokenizer"):
        load_model("a", tmp_path / "a", templates=Templates())
