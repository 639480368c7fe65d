"""`modelpack validate`: what the API server would say, offline, naming file and field."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from modelpack.cli.main import main

ROOT = Path(__file__).resolve().parents[2]


def test_examples_are_valid(capsys: Any) -> None:
    files = [str(p) for p in sorted((ROOT / "examples").glob("*.yaml"))]
    assert main(["validate", *files]) == 0
    out = capsys.readouterr().out
    assert out.count(" is valid") >= len(files)


def test_bad_files_are_named_with_their_fields(tmp_path: Path, capsys: Any) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text(
        "apiVersion: modelpack.dev/v1alpha1\nkind: LoadTest\nmetadata: {name: x}\n"
        "spec: {target: {modelPack: p}, load: {mode: concurrency, rate: 5, concurrency: 2}}\n"
    )
    broken = tmp_path / "broken.yaml"
    broken.write_text("kind: [unclosed\n")
    assert main(["validate", str(bad), str(broken), str(tmp_path / "missing.yaml")]) == 2
    err = capsys.readouterr().err
    assert "bad.yaml: LoadTest 'x' is invalid" in err
    assert "spec.load: load.rate cannot be set in concurrency mode" in err
    assert "broken.yaml: not valid YAML" in err
    assert "missing.yaml: no such file" in err
    assert "Traceback" not in err


def test_no_command_prints_help_and_exits_2(capsys: Any) -> None:
    assert main([]) == 2
    assert "COMMAND" in capsys.readouterr().out
