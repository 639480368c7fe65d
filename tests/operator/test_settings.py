"""Operator settings from the environment: defaults, parsing, and errors that name the variable."""

from __future__ import annotations

import pytest

from modelpack_operator.settings import OperatorSettings, SettingsError, env_name


def test_empty_environment_gives_the_documented_defaults() -> None:
    settings = OperatorSettings.from_env({})
    assert settings.worker.service_account == "modelpack-loadtest-worker"
    assert settings.server.neuron_image_suffix == "-neuron"
    assert settings.reconcile.routes_in_status_max == 64
    assert settings.reconcile.route_table_shard_bytes == 1_000_000


def test_each_group_reads_its_own_variables() -> None:
    settings = OperatorSettings.from_env(
        {
            "MODELPACK_WORKER_START_DELAY_SECONDS": "2.5",
            "MODELPACK_WORKER_NODE_SELECTOR": '{"pool": "loadgen"}',
            "MODELPACK_WORKER_MANAGE_RBAC": "false",
            "MODELPACK_SERVER_MEMORY_OVERHEAD": "1Gi",
            "MODELPACK_RECONCILE_RESYNC_SECONDS": "5",
        }
    )
    assert settings.worker.start_delay_seconds == 2.5
    assert settings.worker.node_selector == {"pool": "loadgen"}
    assert settings.worker.manage_rbac is False
    assert settings.server.memory_overhead == "1Gi"
    assert settings.reconcile.resync_seconds == 5.0


@pytest.mark.parametrize(
    ("name", "value", "message"),
    [
        ("MODELPACK_WORKER_BACKOFF_LIMIT", "two", "MODELPACK_WORKER_BACKOFF_LIMIT='two'"),
        ("MODELPACK_WORKER_MANAGE_RBAC", "maybe", "expected true or false"),
        ("MODELPACK_WORKER_NODE_SELECTOR", '["a"]', "expected a JSON object of strings"),
        ("MODELPACK_WORKER_NODE_SELECTOR", "{not json", "MODELPACK_WORKER_NODE_SELECTOR"),
        ("MODELPACK_SERVER_CACHE_SIZE", "lots", "invalid quantity 'lots'"),
        ("MODELPACK_RECONCILE_RESYNC_SECONDS", "soon", "MODELPACK_RECONCILE_RESYNC_SECONDS='soon'"),
        ("MODELPACK_RECONCILE_ROUTE_TABLE_SHARD_BYTES", "100", "SHARD_BYTES=100: must be at least 256"),
        ("MODELPACK_SERVER_DRAIN_SECONDS", "-1", "MODELPACK_SERVER_DRAIN_SECONDS=-1: must be from 0 to 300"),
        ("MODELPACK_SERVER_DRAIN_SECONDS", "3600", "MODELPACK_SERVER_DRAIN_SECONDS=3600: must be from 0 to 300"),
    ],
)
def test_bad_values_are_refused_naming_the_variable(name: str, value: str, message: str) -> None:
    with pytest.raises(SettingsError, match=message.replace("[", r"\[").replace("{", r"\{")):
        OperatorSettings.from_env({name: value})


def test_variable_names_follow_group_and_field() -> None:
    assert env_name("WORKER", "start_delay_seconds") == "MODELPACK_WORKER_START_DELAY_SECONDS"
