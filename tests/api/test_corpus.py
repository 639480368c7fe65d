"""The hostile corpus through ``modelpack validate``: each verdict as expected, each refusal naming its field."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from modelpack.cli.main import main
from tests.api.corpus import CASES, Case


def validate(case: Case, tmp_path: Path, capsys: Any) -> tuple[int, str]:
    path = tmp_path / f"{case.id}.yaml"
    path.write_text(yaml.safe_dump(case.doc))
    code = main(["validate", str(path)])
    out = capsys.readouterr()
    return code, out.out + out.err


def test_the_corpus_is_large_and_covers_both_kinds() -> None:
    assert len(CASES) >= 40
    assert len({c.id for c in CASES}) == len(CASES)
    kinds = {c.doc["kind"] for c in CASES}
    assert kinds == {"ModelPack", "LoadTest"}


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_validate_gives_the_corpus_verdict(case: Case, tmp_path: Path, capsys: Any) -> None:
    code, out = validate(case, tmp_path, capsys)
    if case.field is None:
        assert code == 0, out
        assert "is valid" in out
    else:
        assert code == 2, f"{case.id}: accepted\n{out}"
        assert case.field in out, out
        assert "Traceback" not in out
