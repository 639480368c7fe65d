"""Placement is deterministic, respects density, and is stable when models come and go."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from modelpack.placement import place, server_name


def names(n: int, prefix: str = "m") -> list[str]:
    return [f"{prefix}{i}" for i in range(n)]


def test_fills_servers_in_order() -> None:
    p = place(names(10), 4)
    assert [s.models for s in p.servers] == [("m0", "m1", "m2", "m3"), ("m4", "m5", "m6", "m7"), ("m8", "m9")]
    assert p.servers[1].name("fleet") == "fleet-s0001" == server_name("fleet", 1)


def test_adding_models_never_moves_existing_ones() -> None:
    first = place(names(8), 4)
    second = place(names(13), 4, first.assignment(), 4)
    for model, index in first.assignment().items():
        assert second.server_of[model] == index
    assert [len(s.models) for s in second.servers] == [4, 4, 4, 1]


def test_removing_models_does_not_move_the_others_and_gaps_are_refilled() -> None:
    first = place(names(8), 4)
    kept = [m for m in names(8) if m != "m1"]
    second = place(kept, 4, first.assignment(), 4)
    assert all(second.server_of[m] == first.server_of[m] for m in kept)
    third = place([*kept, "new"], 4, second.assignment(), 4)
    assert third.server_of["new"] == first.server_of["m1"]


def test_density_change_repacks() -> None:
    first = place(names(32), 16)
    second = place(names(32), 8, first.assignment(), 16)
    assert [len(s.models) for s in second.servers] == [8, 8, 8, 8]
    assert second.server_of["m8"] == 1


def test_bad_input_is_named() -> None:
    with pytest.raises(ValueError, match="models_per_server must be at least 1"):
        place(names(3), 0)
    with pytest.raises(ValueError, match="duplicate model names: m1"):
        place(["m0", "m1", "m1"], 2)


@settings(max_examples=150, deadline=None)
@given(
    total=st.integers(min_value=0, max_value=80),
    per_server=st.integers(min_value=1, max_value=12),
    removed=st.sets(st.integers(min_value=0, max_value=79), max_size=20),
    added=st.integers(min_value=0, max_value=30),
)
def test_invariants(total: int, per_server: int, removed: set[int], added: int) -> None:
    first = place(names(total), per_server)
    models = [m for i, m in enumerate(names(total)) if i not in removed] + names(added, "new")
    second = place(models, per_server, first.assignment(), per_server)
    placed = [m for s in second.servers for m in s.models]
    assert sorted(placed) == sorted(models)
    assert all(1 <= len(s.models) <= per_server for s in second.servers)
    assert all(second.server_of[m] == first.server_of[m] for m in models if m in first.server_of)
    assert place(models, per_server, first.assignment(), per_server) == second
