"""Route table: model -> URL for the pack, and the placement it remembers for the next reconcile."""

from __future__ import annotations

import json

import pytest

from modelpack.placement import place
from modelpack_operator.builders import routes as R
from modelpack_operator.settings import OperatorSettings
from tests.operator.factories import make_pack

SETTINGS = OperatorSettings().server


def test_routes_map_every_model_to_its_server_service() -> None:
    pack = make_pack()
    placement = place(pack.spec.models.expand(), 2)
    cm = R.route_table(pack, placement, SETTINGS)
    table = R.read_routes(cm)
    assert len(table) == 5
    assert table["model-00000"] == "http://bert-s0000.ns.svc.cluster.local:8080"
    assert table["model-00004"] == "http://bert-s0002.ns.svc.cluster.local:8080"
    assert cm["metadata"]["name"] == "bert-routes"
    assert cm["metadata"]["ownerReferences"][0]["name"] == "bert"


def test_remembered_placement_round_trips_and_keeps_models_in_place() -> None:
    pack = make_pack()
    first = place(pack.spec.models.expand(), 2)
    remembered = R.remembered_placement(R.route_table(pack, first, SETTINGS))
    assert remembered.assignment == first.assignment()
    assert remembered.models_per_server == 2
    # model-00001 removed: the others keep their servers when the memory is passed back.
    names = [m for m in pack.spec.models.expand() if m != "model-00001"]
    again = place(names, 2, previous=remembered.assignment, previous_models_per_server=remembered.models_per_server)
    assert all(again.server_of[m] == first.server_of[m] for m in names)


@pytest.mark.parametrize("data", [None, {}, {"placement.json": "not json"}, {"placement.json": json.dumps([1])}])
def test_missing_or_mangled_memory_means_place_from_scratch(data: dict[str, str] | None) -> None:
    cm = None if data is None else {"data": data}
    assert R.remembered_placement(cm) == R.Remembered({}, None)


def test_a_pack_too_large_for_one_configmap_is_refused_with_the_size() -> None:
    pack = make_pack(models={"count": 20000, "namePattern": "a-very-long-model-name-to-fill-the-table-{index:06d}"})
    placement = place(pack.spec.models.expand(), 16)
    with pytest.raises(R.RouteTableTooLarge, match=r"route table of 20000 models needs .* bytes"):
        R.route_table(pack, placement, SETTINGS)
