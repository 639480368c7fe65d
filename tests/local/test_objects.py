"""Choosing the LoadTest and its ModelPack out of the files given."""

from __future__ import annotations

from pathlib import Path

import pytest

from modelpack.local.objects import ObjectsError, load_objects, select
from tests.local.yamls import loadtest_doc, pack_doc, write


def test_pack_and_loadtest_from_one_multi_document_file(tmp_path: Path) -> None:
    f = write(tmp_path / "all.yaml", pack_doc("p", "file:///tmp/x", ["a"]), loadtest_doc("t", "p"))
    objs = select(*load_objects([str(f)]), need_pack=True)
    assert objs.loadtest.metadata.name == "t"
    assert objs.pack is not None and objs.pack.metadata.name == "p"


def test_loadtest_whose_pack_is_missing_names_both(tmp_path: Path) -> None:
    f = write(tmp_path / "all.yaml", pack_doc("other", "file:///tmp/x", ["a"]), loadtest_doc("t", "wanted"))
    with pytest.raises(
        ObjectsError,
        match=r"LoadTest 't': spec.target.modelPack 'wanted' is not in the files given "
        r"\(ModelPacks found: 'other'\)",
    ):
        select(*load_objects([str(f)]), need_pack=True)


def test_no_loadtest(tmp_path: Path) -> None:
    f = write(tmp_path / "pack.yaml", pack_doc("p", "file:///tmp/x", ["a"]))
    with pytest.raises(ObjectsError, match=r"no LoadTest in the files given \(found ModelPack 'p'\)"):
        select(*load_objects([str(f)]), need_pack=True)


def test_two_loadtests_are_refused(tmp_path: Path) -> None:
    f = write(tmp_path / "t.yaml", loadtest_doc("a", "p"), loadtest_doc("b", "p"))
    with pytest.raises(ObjectsError, match=r"2 LoadTests in the files given \('a', 'b'\)"):
        select(*load_objects([str(f)]), need_pack=False)


def test_same_pack_twice_is_refused(tmp_path: Path) -> None:
    f = write(
        tmp_path / "t.yaml",
        pack_doc("p", "file:///x", ["a"]),
        pack_doc("p", "file:///y", ["b"]),
        loadtest_doc("t", "p"),
    )
    with pytest.raises(ObjectsError, match="ModelPack 'p' is defined 2 times"):
        select(*load_objects([str(f)]), need_pack=True)


def test_endpoint_mode_needs_no_pack(tmp_path: Path) -> None:
    f = write(tmp_path / "t.yaml", loadtest_doc("t", "elsewhere"))
    assert select(*load_objects([str(f)]), need_pack=False).pack is None
