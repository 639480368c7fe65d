"""Reading users' files: every failure names the file and the problem, in the caller's error type."""

from __future__ import annotations

from pathlib import Path

import pytest

from modelpack import userfiles


class Refused(ValueError):
    pass


def test_a_missing_or_unreadable_file_is_named(tmp_path: Path) -> None:
    with pytest.raises(Refused, match=rf"^{tmp_path / 'nope.yaml'}: no such file$"):
        userfiles.read_text(tmp_path / "nope.yaml", Refused)
    with pytest.raises(Refused, match=rf"^{tmp_path}: cannot read: Is a directory$"):
        userfiles.read_text(tmp_path, Refused)


def test_bad_yaml_is_placed_at_a_one_based_line_and_column() -> None:
    with pytest.raises(Refused, match=r"^f.yaml: not valid YAML or JSON: line 2, column 5: .*mapping values"):
        userfiles.yaml_documents("a: 1\nb: c: d\n", "f.yaml", Refused, "YAML or JSON")


def test_empty_documents_are_dropped() -> None:
    assert userfiles.yaml_documents("---\n---\na: 1\n---\n", "f.yaml", Refused) == [{"a": 1}]
