"""Route table: model -> URL for the pack, the placement it remembers, and its split over ConfigMaps."""

from __future__ import annotations

import json

import pytest

from modelpack.api.modelpack import ModelPack
from modelpack.placement import Placement, place
from modelpack_operator.builders import routes as R
from modelpack_operator.settings import OperatorSettings
from tests.operator.factories import make_pack

SETTINGS = OperatorSettings().server


def test_routes_map_every_model_to_its_server_service() -> None:
    pack = make_pack()
    placement = place(pack.spec.models.expand(), 2)
    [cm] = R.route_tables(pack, placement, SETTINGS)
    table = R.read_routes([cm])
    assert len(table) == 5
    assert table["model-00000"] == "http://bert-s0000.ns.svc.cluster.local:8080"
    assert table["model-00004"] == "http://bert-s0002.ns.svc.cluster.local:8080"
    assert cm["metadata"]["name"] == "bert-routes"
    assert cm["metadata"]["ownerReferences"][0]["name"] == "bert"


def test_remembered_placement_round_trips_and_keeps_models_in_place() -> None:
    pack = make_pack()
    first = place(pack.spec.models.expand(), 2)
    remembered = R.remembered_placement(R.route_tables(pack, first, SETTINGS))
    assert remembered.assignment == first.assignment()
    assert remembered.models_per_server == 2
    # model-00001 removed: the others keep their servers when the memory is passed back.
    names = [m for m in pack.spec.models.expand() if m != "model-00001"]
    again = place(names, 2, previous=remembered.assignment, previous_models_per_server=remembered.models_per_server)
    assert all(again.server_of[m] == first.server_of[m] for m in names)


@pytest.mark.parametrize("data", [None, {}, {"placement.json": "not json"}, {"placement.json": json.dumps([1])}])
def test_missing_or_mangled_memory_means_place_from_scratch(data: dict[str, str] | None) -> None:
    cm = None if data is None else {"data": data}
    assert R.remembered_placement([cm]) == R.Remembered({}, None)


def _big_pack(count: int) -> tuple[ModelPack, Placement]:
    pack = make_pack(
        models={"count": count, "namePattern": "a-very-long-model-name-to-fill-the-table-{index:06d}"},
        modelsPerServer=16,
    )
    return pack, place(pack.spec.models.expand(), 16)


def test_a_large_pack_is_split_into_shards_that_each_fit_a_configmap() -> None:
    pack, placement = _big_pack(30000)
    shards = R.route_tables(pack, placement, SETTINGS)
    names = [cm["metadata"]["name"] for cm in shards]
    assert len(shards) >= 3
    assert (
        names
        == R.route_table_names("bert", len(shards))
        == ["bert-routes"] + [f"bert-routes-{k}" for k in range(1, len(shards))]
    )
    for cm in shards:
        assert sum(len(v) for v in cm["data"].values()) <= R.CONFIGMAP_LIMIT
        # whole servers per shard: every server's models are in exactly one shard
        servers = {url for url in json.loads(cm["data"][R.ROUTES_KEY]).values()}
        assert all(cm2 is cm or not servers & set(json.loads(cm2["data"][R.ROUTES_KEY]).values()) for cm2 in shards)
    assert R.read_routes(shards) == R.routes(pack, placement, SETTINGS)
    remembered = R.remembered_placement(shards)
    assert remembered.assignment == placement.assignment()
    assert remembered.models_per_server == 16


def test_a_lost_shard_forgets_only_its_own_models() -> None:
    pack, placement = _big_pack(30000)
    shards = R.route_tables(pack, placement, SETTINGS)
    lost = set(json.loads(shards[1]["data"][R.ROUTES_KEY]))
    remembered = R.remembered_placement([shards[0], {"data": {R.PLACEMENT_KEY: "mangled"}}, *shards[2:]])
    assert lost and not lost & set(remembered.assignment)
    assert len(remembered.assignment) == 30000 - len(lost)


def test_one_server_too_large_for_a_configmap_is_refused_with_the_size() -> None:
    pack, placement = _big_pack(200)
    with pytest.raises(R.RouteTableTooLarge, match=r"server 0 alone routes 16 models in \d+ bytes, over the 500"):
        R.route_tables(pack, placement, SETTINGS, limit=500)
