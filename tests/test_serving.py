"""Both runtimes tune `modelpack serve` from the same flags, and the server accepts every one of them."""

from __future__ import annotations

from modelpack.api.modelpack import Batching, ServerSpec
from modelpack.serving import tuning_flags


def test_flags_follow_the_spec() -> None:
    spec = ServerSpec(memory_budget="3Gi", batching=Batching(max_batch_size=4, max_queue_delay_ms=2.5), preload=True)
    flags = tuning_flags(spec)
    assert flags[flags.index("--memory-budget") + 1] == "3Gi"
    assert flags[flags.index("--max-batch-size") + 1] == "4"
    assert flags[flags.index("--max-queue-delay-ms") + 1] == "2.5"
    assert "--preload" in flags
    assert "--preload" not in tuning_flags(ServerSpec())


def test_server_cli_accepts_the_flags() -> None:
    import argparse

    from modelpack.cli import serve

    parser = argparse.ArgumentParser()
    serve.register(parser)
    args = parser.parse_args(["--store", "/tmp/store", *tuning_flags(ServerSpec(preload=True))])
    assert args.preload is True
