"""The LoadTest's load, in the `modelpack run` process: one asyncio worker, Ctrl-C keeps what was measured."""

from __future__ import annotations

import asyncio
import signal
from dataclasses import dataclass, field
from typing import Any

from rich.console import Console

from modelpack.api.loadtest import LoadTest, Results, SweepResult


@dataclass
class LoadRun:
    """What the load left behind: results may be partial (interrupted) or missing (abandoned)."""

    results: Results | None = None
    sweep: SweepResult | None = None
    timeline: list[dict[str, Any]] = field(default_factory=list)
    interrupted: bool = False


def run_loadtest(loadtest: LoadTest, routes: dict[str, str], console: Console) -> LoadRun:
    """The LoadTest in this process (one worker: the machine's cores are better spent on the servers).

    A first Ctrl-C (or SIGTERM) stops sending and keeps what was measured (the load generator's
    ``stop_event``); a second one abandons the results.
    """
    from modelpack.loadgen import Endpoint, run_load, select_models

    names = select_models(loadtest.spec.target.models, list(routes))
    endpoints = [Endpoint(model=n, url=routes[n]) for n in names]
    run = LoadRun()

    async def main() -> Any:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        task = asyncio.ensure_future(run_load(loadtest.spec, endpoints, progress=True, stop_event=stop))

        def on_signal() -> None:
            # First Ctrl-C: stop sending and keep what was measured. Second: give up on the results.
            run.interrupted = True
            if stop.is_set():
                task.cancel()
            else:
                console.print("\nstopping: draining in-flight requests (Ctrl-C again to abandon results)")
                stop.set()

        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, on_signal)
        try:
            return await task
        except asyncio.CancelledError:
            return None
        finally:
            for sig in (signal.SIGINT, signal.SIGTERM):
                loop.remove_signal_handler(sig)

    previous = {sig: signal.getsignal(sig) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        outcome = asyncio.run(main())
    finally:
        # asyncio resets the handlers it removes to the defaults; put back the runner's SIGTERM clean-up.
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    if outcome is not None:
        run.interrupted = run.interrupted or bool(outcome.interrupted)
        run.results = outcome.results
        run.sweep = outcome.sweep
        run.timeline = [bucket.to_dict() for bucket in outcome.timeline]
    return run
