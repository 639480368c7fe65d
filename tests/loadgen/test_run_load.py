"""run_load against real V2 test servers (separate processes over HTTP)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

import pytest

from modelpack.loadgen import Endpoint, LoadOutcome, TargetError, merge_outcomes, run_load
from modelpack.loadgen import histograms as h
from modelpack.loadgen.spread import zipf_order

from .conftest import Server, make_spec

StartServer = Callable[..., Server]


async def test_open_loop_sends_the_requested_count(v2_server: StartServer) -> None:
    """Achieved rate: requests sent in the window (seen by the server too) within 1 % of rate x duration."""
    server = v2_server("--models", "m1,m2")
    spec = make_spec(mode="constant-rate", rate=150, duration="2s", warmup="500ms")
    outcome = await run_load(spec, [Endpoint("m1", server.url), Endpoint("m2", server.url)])
    r = outcome.results
    assert abs(r.requests - 150 * 2) <= 0.01 * 150 * 2
    assert r.successes == r.requests and r.errors == 0
    assert r.requested_rate == 150.0
    assert abs(r.achieved_rate - 150) <= 1.5
    # The server received warm-up + window sends: nothing was silently skipped.
    assert abs(server.stats()["infer"] - 150 * 2.5) <= 0.01 * 150 * 2.5
    assert [b.sent for b in outcome.timeline] == [150, 150]
    assert r.latency_ms is not None and r.service_time_ms is not None
    assert r.latency_ms.p50 >= r.service_time_ms.p50  # latency counts from the (earlier) scheduled time
    assert h.decode(r.histogram or "").get_total_count() == r.successes


async def test_poisson_arrivals_are_seeded(v2_server: StartServer) -> None:
    server = v2_server("--models", "m1")
    spec = make_spec(mode="constant-rate", rate=100, arrival="poisson", duration="1s", warmup="0s", seed=4)
    a = await run_load(spec, [Endpoint("m1", server.url)])
    b = await run_load(spec, [Endpoint("m1", server.url)])
    assert a.results.requests == b.results.requests
    assert 100 * 0.7 < a.results.requests < 100 * 1.3


async def test_stall_shows_in_latency_but_not_in_service_time(v2_server: StartServer) -> None:
    """Coordinated omission: the server blocks for 1.5 s once (request 150, about 1 s into the window).

    With only 2 requests allowed in flight (like a 2-connection closed-loop tool), the ~150 sends due during
    the stall leave late, right after it. Asserted: latency p99 (from the scheduled time) >= 750 ms (half the
    stall) and at least 75 late sends, while service-time p99 (what a closed-loop tool reports) stays under a
    quarter of the stall (375 ms): only the 2 requests caught inside the stall (0.5 % of 400) took long to
    serve. Same stall in closed-loop concurrency mode: its p99 stays < 375 ms too (the stall is hidden, which
    is the point).
    """
    server = v2_server("--models", "m1", "--stall-after", "150", "--stall-ms", "1500")
    spec = make_spec(mode="constant-rate", rate=100, duration="4s", warmup="500ms", maxInFlight=2)
    outcome = await run_load(spec, [Endpoint("m1", server.url)])
    r = outcome.results
    assert r.latency_ms is not None and r.service_time_ms is not None
    assert r.latency_ms.p99 >= 750
    assert r.service_time_ms.p99 < 375
    assert r.late_sends >= 75
    assert r.schedule_delay_p99_ms >= 750
    # A CPU-starved generator may still be catching up at the window end and drop a few sends.
    assert r.errors == r.errors_by_class.dropped and r.successes >= 0.95 * r.requests
    worst = max(outcome.timeline, key=lambda b: b.max_ms or 0)
    assert worst.max_ms is not None and worst.max_ms >= 1400

    closed_server = v2_server("--models", "m1", "--stall-after", "150", "--stall-ms", "1500")
    closed = make_spec(mode="concurrency", concurrency=2, duration="3s", warmup="0s")
    c = (await run_load(closed, [Endpoint("m1", closed_server.url)])).results
    assert c.latency_ms is not None and c.latency_ms.max >= 1400  # the stall happened in this run too
    assert c.latency_ms.p99 < 375


async def test_two_workers_merge_exactly(v2_server: StartServer) -> None:
    server = v2_server("--models", "m1,m2,m3")
    endpoints = [Endpoint(m, server.url) for m in ("m1", "m2", "m3")]
    spec = make_spec(mode="constant-rate", rate=120, duration="2s", warmup="0s", spread="round-robin")
    start = time.time() + 0.3
    parts = await asyncio.gather(
        *(run_load(spec, endpoints, worker_index=i, workers=2, start_at=start) for i in range(2))
    )
    assert [p.results.requested_rate for p in parts] == [60.0, 60.0]
    merged = merge_outcomes([LoadOutcome.from_json(p.to_json()) for p in parts])
    r = merged.results
    assert r.requests == parts[0].results.requests + parts[1].results.requests == 240
    assert r.requested_rate == 120.0
    union = h.merged([h.decode(p.results.histogram or "") for p in parts])
    assert h.same_counts(h.decode(r.histogram or ""), union)
    assert r.latency_ms == h.summarize(union)
    # Round-robin is global across workers: each model got exactly a third.
    assert sorted(m.requests for m in merged.per_model) == [80, 80, 80]
    assert server.stats()["per_model"] == {"m1": 80, "m2": 80, "m3": 80}


async def test_per_model_lists_the_slowest_first(v2_server: StartServer) -> None:
    server = v2_server("--models", "a,b,c,d", "--model-delay", "c=30", "--fail-model", "d")
    endpoints = [Endpoint(m, server.url) for m in "abcd"]
    spec = make_spec(mode="constant-rate", rate=80, duration="1s", warmup="0s", spread="round-robin")
    outcome = await run_load(spec, endpoints, per_model=2)
    rows = outcome.results.per_model
    assert rows is not None and [m.model for m in rows] == ["d", "c"]  # only errors first, then the slow one
    assert rows[0].errors == rows[0].requests == 20
    assert rows[1].latency_ms.p50 >= 30
    r = outcome.results
    assert r.errors_by_class.http5xx == 20 and r.errors_by_status == {"500": 20}
    assert r.successes == 60


async def test_zipf_spread_skews_real_traffic(v2_server: StartServer) -> None:
    names = [f"m{i}" for i in range(8)]
    server = v2_server("--models", ",".join(names))
    spec = make_spec(mode="constant-rate", rate=200, duration="2s", warmup="0s", spread="zipf", zipfExponent=1.5)
    await run_load(spec, [Endpoint(n, server.url) for n in names])
    counts = server.stats()["per_model"]
    hot = [names[i] for i in zipf_order(len(names), spec.target.models.seed)]
    assert counts[hot[0]] > 3 * 400 / 8
    assert counts[hot[0]] > counts.get(hot[3], 0) > counts.get(hot[7], 0)


async def test_stages_ramp_up(v2_server: StartServer) -> None:
    server = v2_server("--models", "m1")
    stages = [{"duration": "1s", "rate": 50}, {"duration": "2s", "rate": 150}]
    spec = make_spec(mode="constant-rate", warmup="0s", stages=stages)
    outcome = await run_load(spec, [Endpoint("m1", server.url)])
    # 50 in the first second, then a ramp 50 -> 150 over 2 s: 50 + 200 sends.
    assert abs(outcome.results.requests - 250) <= 3
    sent = [b.sent for b in outcome.timeline]
    assert len(sent) == 3 and sent[0] < sent[1] < sent[2]
    assert abs(sent[1] - 75) <= 2 and abs(sent[2] - 125) <= 2


async def test_concurrency_mode_keeps_n_in_flight(v2_server: StartServer) -> None:
    server = v2_server("--models", "m1", "--delay-ms", "20")
    spec = make_spec(mode="concurrency", concurrency=4, duration="2s", warmup="0s")
    outcome = await run_load(spec, [Endpoint("m1", server.url)])
    r = outcome.results
    assert server.stats()["max_in_flight"] == 4  # the server never saw more (or fewer) than 4 at once
    assert 0 < r.requests <= 4 * 2 / 0.020  # each slot waits for its answer (>= 20 ms) before the next
    assert r.requested_rate is None and r.late_sends == 0


async def test_sweep_stops_where_the_slo_breaks(v2_server: StartServer) -> None:
    """A one-at-a-time server (>= 10 ms each) cannot exceed 100 req/s; past that its queue grows without bound.

    Steps 20, 60, 100, 140, 180 req/s of 1.5 s, SLO p99 <= 400 ms. 20/s is far below capacity (must pass); at
    140/s at least 60 requests queue up by the step's end (>= 600 ms wait), so the sweep must stop by then.
    """
    server = v2_server("--models", "m1", "--serial-ms", "10")
    spec = make_spec(
        mode="sweep",
        warmup="500ms",
        sweep={"startRate": 20, "stepRate": 40, "maxRate": 180, "stepDuration": "1500ms"},
        slo={"p99LatencyMs": 400},
        timeout="3s",
    )
    outcome = await run_load(spec, [Endpoint("m1", server.url)])
    sweep = outcome.sweep
    assert sweep is not None
    met = [s.slo_met for s in sweep.steps]
    assert met[0] is True
    assert met[-1] is False and all(met[:-1])  # stopped at the first step that broke
    assert sweep.steps[-1].rate <= 140  # 180/s was never tried
    assert sweep.max_rate_meeting_slo == sweep.steps[-2].rate
    assert outcome.results.requested_rate == sweep.max_rate_meeting_slo
    assert sweep.steps[-1].p99_ms > 400


async def test_stop_event_returns_partial_results(v2_server: StartServer) -> None:
    server = v2_server("--models", "m1")
    stop = asyncio.Event()
    spec = make_spec(mode="constant-rate", rate=100, duration="30s", warmup="0s")
    asyncio.get_running_loop().call_later(1.0, stop.set)
    outcome = await run_load(spec, [Endpoint("m1", server.url)], stop_event=stop)
    assert outcome.interrupted
    assert 0.8 < outcome.results.duration_seconds < 2.0
    assert abs(outcome.results.requests - 100 * outcome.results.duration_seconds) <= 3


async def test_in_flight_bound_drops_instead_of_queueing(v2_server: StartServer) -> None:
    """A server that never answers in time: at most maxInFlight requests exist; the rest count as dropped."""
    server = v2_server("--models", "m1", "--delay-ms", "5000")
    spec = make_spec(mode="constant-rate", rate=50, duration="1s", warmup="0s", maxInFlight=5, timeout="2s")
    outcome = await run_load(spec, [Endpoint("m1", server.url)])
    r = outcome.results
    assert r.requests == 50
    assert outcome.tally.dropped == 45
    assert r.errors_by_class.timeout == 5 and r.errors_by_class.dropped == 45 and r.errors_by_class.other == 0
    assert r.achieved_rate == 5.0


async def test_unknown_model_and_unreachable_server(v2_server: StartServer) -> None:
    server = v2_server("--models", "m1")
    spec = make_spec(mode="constant-rate", rate=10, duration="1s", warmup="0s")
    with pytest.raises(TargetError, match=r"model 'nope' is not served at http://127.0.0.1:\d+ \(GET /v2/models/nope"):
        await run_load(spec, [Endpoint("nope", server.url)])
    with pytest.raises(TargetError, match=r"cannot reach http://127.0.0.1:9: "):
        await run_load(spec, [Endpoint("m1", "http://127.0.0.1:9")])


async def test_stop_event_ends_a_closed_loop_stuck_on_slow_requests(v2_server: StartServer) -> None:
    """Closed-loop slots waiting on 5 s requests are abandoned after the 1 s drain grace, not the 10 s timeout:
    had they been awaited, their two requests would have completed and been counted."""
    server = v2_server("--models", "m1", "--delay-ms", "5000")
    stop = asyncio.Event()
    spec = make_spec(mode="concurrency", concurrency=2, duration="30s", warmup="0s")
    asyncio.get_running_loop().call_later(0.5, stop.set)
    outcome = await run_load(spec, [Endpoint("m1", server.url)], stop_event=stop)
    assert outcome.interrupted and outcome.results.requests == 0
