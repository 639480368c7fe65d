"""Ports: the pack's own port when free, another one when something holds it."""

from __future__ import annotations

import socket

from modelpack.local.ports import any_free_port, choose_port, port_is_free


def test_a_listening_port_is_not_free_and_another_is_chosen() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        taken = sock.getsockname()[1]
        assert not port_is_free("127.0.0.1", taken)
        chosen = choose_port("127.0.0.1", taken)
        assert chosen != taken
        assert port_is_free("127.0.0.1", chosen)


def test_a_free_preferred_port_is_kept_unless_already_handed_out() -> None:
    free = any_free_port("127.0.0.1")
    assert choose_port("127.0.0.1", free) == free
    assert choose_port("127.0.0.1", free, avoid=[free]) != free
