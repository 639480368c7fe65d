"""Thread sizing: servers share the cores instead of each taking the pod's setting."""

from __future__ import annotations

import pytest

from modelpack.local.sizing import plan_threads


def test_two_cores_four_servers_gives_one_thread_each_and_says_why() -> None:
    plan = plan_threads(cores=2, servers=4, spec_threads=2)
    assert plan.threads_per_server == 1
    assert plan.inference_workers == 1
    assert plan.loadgen_cores == 0
    assert "2 cores" in plan.reason and "4 servers" in plan.reason


def test_large_machine_keeps_a_core_for_the_load_generator_and_respects_the_spec_cap() -> None:
    plan = plan_threads(cores=16, servers=2, spec_threads=4)
    assert plan.loadgen_cores == 1
    assert plan.threads_per_server == 4  # (16 - 1) // 2 = 7, capped by workerThreads 4
    assert plan.inference_workers == 1  # 7 // 4
    assert "workerThreads 4" in plan.reason


def test_override_wins() -> None:
    plan = plan_threads(cores=2, servers=4, spec_threads=2, override=3)
    assert plan.threads_per_server == 3
    assert "--threads 3" in plan.reason


def test_zero_servers_is_refused() -> None:
    with pytest.raises(ValueError, match="servers must be at least 1"):
        plan_threads(cores=2, servers=0, spec_threads=2)


def test_server_count_limit_follows_available_memory() -> None:
    from modelpack.local.sizing import SERVER_BASE_BYTES, max_local_servers

    assert max_local_servers(None) is None
    assert max_local_servers(10 * SERVER_BASE_BYTES) == 8  # 80 % of the memory
    assert max_local_servers(SERVER_BASE_BYTES // 2) == 1  # always at least one
