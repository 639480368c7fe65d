"""The LoadTest's load under `modelpack run`: its workers here (one in this process, or one process each);
Ctrl-C keeps what was measured."""

from __future__ import annotations

import asyncio
import signal
from collections.abc import Sequence
from typing import TYPE_CHECKING

from rich.console import Console

from modelpack.api.loadtest import LoadTest

if TYPE_CHECKING:
    from modelpack.loadgen.endpoints import Endpoint
    from modelpack.loadgen.outcome import LoadOutcome


def run_loadtest(loadtest: LoadTest, routes: dict[str, str], console: Console) -> LoadOutcome | None:
    """The LoadTest's ``spec.workers`` workers: one in this process, or one process each (:func:`_run_workers`).

    A first Ctrl-C (or SIGTERM) stops sending and keeps what was measured (the load generator's
    ``stop_event``; the outcome says ``interrupted``); a second one abandons the results (None).
    """
    from modelpack.loadgen import Endpoint, run_load, select_models

    names = select_models(loadtest.spec.target.models, list(routes))
    endpoints = [Endpoint(model=n, url=routes[n]) for n in names]
    if loadtest.spec.workers > 1:
        return _run_workers(loadtest, endpoints, console)

    async def main() -> LoadOutcome | None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        task = asyncio.ensure_future(run_load(loadtest.spec, endpoints, progress=True, stop_event=stop))

        def on_signal() -> None:
            # First Ctrl-C: stop sending and keep what was measured. Second: give up on the results.
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
        return asyncio.run(main())
    finally:
        # asyncio resets the handlers it removes to the defaults; put back the runner's SIGTERM clean-up.
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def _run_workers(loadtest: LoadTest, endpoints: Sequence[Endpoint], console: Console) -> LoadOutcome:
    """One process per worker of ``spec.workers``: worker i of N sends the share a cluster's Job pod with
    completion index i sends, and their tallies merge exactly as the operator merges its workers' results
    (:func:`modelpack.loadgen.merge_outcomes`). Ctrl-C reaches every worker, each keeps what it measured."""
    from modelpack.loadgen.processes import run_load_processes
    from modelpack.loadgen.progress import LiveProgress

    console.print(f"{loadtest.spec.workers} load-generating worker processes share the rate")
    with LiveProgress(console) as live:
        return run_load_processes(loadtest.spec, endpoints, loadtest.spec.workers, on_progress=live.update)
