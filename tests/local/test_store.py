"""Store URIs as `modelpack run` reads them."""

from __future__ import annotations

from pathlib import Path

import pytest

from modelpack.api.modelpack import ModelStore
from modelpack.local.store import StoreError, missing_models, resolve_store


def test_dot_slash_path_is_relative_to_the_current_directory(tmp_path: Path) -> None:
    store = resolve_store(ModelStore(uri="file:///./.modelpack/store/demo"), tmp_path)
    assert store.directory == tmp_path / ".modelpack" / "store" / "demo"
    assert store.uri == (tmp_path / ".modelpack" / "store" / "demo").as_uri()


def test_absolute_file_uri_is_used_as_is(tmp_path: Path) -> None:
    store = resolve_store(ModelStore(uri=f"file://{tmp_path}/models"), Path("/somewhere/else"))
    assert store.directory == tmp_path / "models"


def test_s3_is_passed_to_the_servers_without_a_local_directory() -> None:
    store = resolve_store(ModelStore(uri="s3://my-models/bert"), Path("/"))
    assert store.uri == "s3://my-models/bert"
    assert store.directory is None


def test_pvc_store_is_refused_with_the_field_and_an_alternative() -> None:
    with pytest.raises(
        StoreError, match=r"spec\.store\.uri: 'pvc://models/fleet' is a PersistentVolumeClaim.*file:///"
    ):
        resolve_store(ModelStore(uri="pvc://models/fleet"), Path("/"))


def test_missing_models_are_the_ones_without_weights_and_config(tmp_path: Path) -> None:
    (tmp_path / "complete").mkdir()
    (tmp_path / "complete" / "config.json").write_text("{}")
    (tmp_path / "complete" / "model.pt").write_bytes(b"x")
    (tmp_path / "half").mkdir()
    (tmp_path / "half" / "config.json").write_text("{}")
    assert missing_models(tmp_path, ["complete", "half", "absent"]) == ["half", "absent"]
