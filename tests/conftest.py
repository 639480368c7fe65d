"""Shared pytest configuration: the real control-plane fixtures (``control_plane``, ``namespace``)."""

pytest_plugins = ["tests.cluster.fixtures"]
