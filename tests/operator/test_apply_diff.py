"""When the operator writes: missing, changed desired state, or a hand edit of a field it owns."""

from __future__ import annotations

import copy

from kubernetes.utils.quantity import parse_quantity

from modelpack.placement import place
from modelpack_operator.builders.server import server_deployment
from modelpack_operator.reconcile.apply import is_subset, needs_apply
from modelpack_operator.settings import OperatorSettings
from tests.operator.factories import make_pack


def _desired(**spec: object) -> dict:
    pack = make_pack(**spec)
    return server_deployment(pack, place(pack.spec.models.expand(), 2).servers[0], OperatorSettings().server)


def _as_stored(obj: dict) -> dict:
    """What the API server hands back: defaults added, quantities canonicalised."""
    live = copy.deepcopy(obj)
    live["metadata"]["resourceVersion"] = "42"
    live["spec"]["revisionHistoryLimit"] = 10
    container = live["spec"]["template"]["spec"]["containers"][0]
    container["terminationMessagePath"] = "/dev/termination-log"
    requested = parse_quantity(container["resources"]["requests"]["memory"])
    container["resources"]["requests"]["memory"] = f"{requested // 1024}Ki"  # the same quantity, spelled otherwise
    live["status"] = {"replicas": 1}
    return live


def test_an_unchanged_object_as_stored_needs_no_write() -> None:
    desired = _desired()
    assert not needs_apply(desired, _as_stored(desired))


def test_missing_changed_or_hand_edited_objects_are_written() -> None:
    desired = _desired()
    assert needs_apply(desired, None)
    assert needs_apply(_desired(replicas=2), _as_stored(desired))
    edited = _as_stored(desired)
    edited["spec"]["replicas"] = 5
    assert needs_apply(desired, edited)
    relabelled = _as_stored(desired)
    relabelled["metadata"]["labels"].pop("modelpack.dev/pack")
    assert needs_apply(desired, relabelled)


def test_removing_a_field_changes_the_hash_so_it_is_applied() -> None:
    with_toleration = _desired(compute={"type": "graviton", "tolerations": [{"key": "k", "operator": "Exists"}]})
    without = _desired()
    # Without the hash, the smaller desired object would look like a subset of the live one and never apply.
    assert needs_apply(without, _as_stored(with_toleration))


def test_subset_compares_lists_by_position_and_quantities_by_value() -> None:
    assert is_subset({"a": [1, {"b": "1Gi"}]}, {"a": [1, {"b": "1024Mi", "c": 3}], "d": 4})
    assert not is_subset({"a": [1, 2]}, {"a": [1, 2, 3]})
    assert not is_subset({"a": "x"}, {"a": "y"})
