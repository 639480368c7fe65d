"""The fleet builder: distinct, reproducible, reusable models; a tokenizer that covers any text."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest
import torch

from model_server.fleet import build_fleet, shape_for
from model_server.loaded import load_model
from model_server.tokenizer import build_tokenizer
from tests.model_server.conftest import TINY


def forward(store: Path, name: str) -> torch.Tensor:
    model = load_model(name, store / name)
    ids = torch.arange(16).remainder(500).unsqueeze(0).repeat(2, 1)
    return model.module(ids, torch.ones_like(ids))


def test_models_are_distinct_and_reproducible(tmp_path: Path) -> None:
    build_fleet(tmp_path / "one", ["x", "y"], TINY)
    build_fleet(tmp_path / "two", ["x"], TINY)
    x1, y1, x2 = forward(tmp_path / "one", "x"), forward(tmp_path / "one", "y"), forward(tmp_path / "two", "x")
    assert not torch.allclose(x1, y1)
    assert torch.equal(x1, x2)


def test_rerun_reuses_valid_models_and_rebuilds_broken_ones(tmp_path: Path) -> None:
    first = build_fleet(tmp_path, ["a", "b", "c"], TINY)
    assert first.built == ["a", "b", "c"]
    (tmp_path / "b" / "model.pt").unlink()
    (tmp_path / "c" / "config.json").write_text("{")
    again = build_fleet(tmp_path, ["a", "b", "c"], TINY)
    assert again.reused == ["a"] and again.built == ["b", "c"]
    bigger = build_fleet(tmp_path, ["a"], shape_for(layers=1, hidden=64, heads=2, seq_len=16, vocab_size=600))
    assert bigger.built == ["a"]  # a different architecture is not "already present"


def test_config_describes_the_model(tmp_path: Path) -> None:
    build_fleet(tmp_path, ["q"], dataclasses.replace(TINY, task="qa"))
    config = json.loads((tmp_path / "q" / "config.json").read_text())
    assert [i["name"] for i in config["inputs"]] == ["input_ids", "attention_mask"]
    assert [o["name"] for o in config["outputs"]] == ["start_logits", "end_logits"]
    assert config["tokenizer"] == "tokenizer.json" and config["seq_len"] == 16
    start, end = load_model("q", tmp_path / "q").module(
        torch.zeros(3, 16, dtype=torch.long), torch.ones(3, 16, dtype=torch.long)
    )
    assert start.shape == end.shape == (3, 16)


def test_progress_is_reported(tmp_path: Path) -> None:
    seen: list[tuple[int, int]] = []
    build_fleet(tmp_path, ["a", "b"], TINY, progress=lambda done, total: seen.append((done, total)))
    assert seen == [(1, 2), (2, 2)]


@pytest.mark.parametrize("name", ["", "a/b", ".."])
def test_bad_names_are_refused(tmp_path: Path, name: str) -> None:
    with pytest.raises(ValueError, match="folder names"):
        build_fleet(tmp_path, [name], TINY)


def test_tokenizer_pads_truncates_and_knows_common_words() -> None:
    tokenizer = build_tokenizer(vocab_size=1000, seq_len=12)
    short = tokenizer.encode("the movie was great")
    assert short.tokens[:6] == ["[CLS]", "the", "movie", "was", "great", "[SEP]"]
    assert len(short.ids) == 12 and short.attention_mask == [1] * 6 + [0] * 6
    long = tokenizer.encode("word " * 100 + "qzxv Ünïcode")
    assert len(long.ids) == 12 and "[UNK]" not in tokenizer.encode("qzxv").tokens
    assert tokenizer.get_vocab_size() == 1000
