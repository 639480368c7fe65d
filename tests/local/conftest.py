"""A small real fleet (4 distinct 1-layer BERTs, hidden 32) built once for the end-to-end runs."""

from __future__ import annotations

from pathlib import Path

import pytest

FLEET = ["m-00", "m-01", "m-02", "m-03"]


@pytest.fixture(scope="session")
def tiny_store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from model_server.fleet import build_fleet, shape_for

    store = tmp_path_factory.mktemp("mp-store")
    build_fleet(store, FLEET, shape_for(layers=1, hidden=32))
    return store
