"""Exact merging: two workers' tallies merged equal one tally over the union of their requests."""

from __future__ import annotations

import json
import random

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from modelpack.api.loadtest import Slo
from modelpack.loadgen import LoadOutcome, StepTally, merge_outcomes
from modelpack.loadgen import histograms as h
from modelpack.loadgen.summary import results_from, timeline_from
from modelpack.loadgen.tally import Tally

Event = tuple[str, float, float, float, float, str | None, int | None]

events = st.lists(
    st.tuples(
        st.sampled_from(["a", "b", "c"]),
        st.floats(0, 9.99),  # scheduled time in the window
        st.floats(1e-6, 30.0),  # latency
        st.floats(1e-6, 1.0),  # service part
        st.floats(0, 0.01),  # schedule delay
        st.sampled_from([None, None, None, "timeout", "http5xx", "connect"]),
        st.sampled_from([None, 503]),
    ),
    max_size=30,
)


def _fill(tally: Tally, items: list[Event]) -> Tally:
    for model, t, latency, service, delay, error, status in items:
        if error is None:
            tally.record_success(model, t, latency, min(service, latency), delay)
        else:
            tally.record_failure(model, t, delay, error, status if error == "http5xx" else None)
    tally.duration_seconds = 10.0
    tally.planned_requests = float(len(items))
    return tally


@settings(max_examples=8, deadline=None)
@given(events, events)
def test_merged_workers_equal_one_tally_over_the_union(left: list[Event], right: list[Event]) -> None:
    a, b = _fill(Tally(), left), _fill(Tally(), right)
    union = _fill(Tally(), left + right)
    union.planned_requests = float(len(left) + len(right))
    # Through JSON, as the operator does with workers' ConfigMaps.
    a = Tally.from_json(json.loads(json.dumps(a.to_json())))
    merged = Tally(planned_requests=0.0)
    merged.merge(a)
    merged.merge(b)
    for hist_name in ("latency", "service", "delay"):
        assert h.same_counts(getattr(merged, hist_name), getattr(union, hist_name)), hist_name
    assert results_from(merged, 5).model_dump(exclude={"histogram", "service_histogram"}) == results_from(
        union, 5
    ).model_dump(exclude={"histogram", "service_histogram"})
    assert timeline_from(merged) == timeline_from(union)
    assert set(merged.per_model) == set(union.per_model)
    for model, entry in union.per_model.items():
        assert h.same_counts(merged.per_model[model].hist, entry.hist)
        assert (merged.per_model[model].requests, merged.per_model[model].errors) == (entry.requests, entry.errors)


def test_percentiles_come_from_the_merged_histogram_not_an_average() -> None:
    fast, slow = Tally(), Tally()
    for i in range(990):
        fast.record_success("m", i / 100, 0.001, 0.001, 0.0)
    for i in range(10):
        slow.record_success("m", i / 100, 1.0, 1.0, 0.0)
    p99_avg = (results_from(fast).latency_ms.p99 + results_from(slow).latency_ms.p99) / 2  # type: ignore[union-attr]
    merged = merge_outcomes([LoadOutcome("constant-rate", fast), LoadOutcome("constant-rate", slow)])
    latency = merged.results.latency_ms
    assert latency is not None
    # 1 % of the union is at 1 s: the exact p99 sits at the fast values' edge, the p99.9 at 1 s.
    assert latency.p99 < 2.0
    assert latency.p999 > 990
    assert abs(p99_avg - 500) < 10  # what averaging would have claimed


def test_outcome_json_round_trip_keeps_every_view() -> None:
    rng = random.Random(3)
    tally = Tally()
    for i in range(500):
        tally.record_success(f"m{i % 7}", rng.uniform(0, 5), rng.uniform(0.001, 0.2), 0.001, rng.uniform(0, 0.002))
    tally.record_failure("m1", 1.0, 0.0, "http4xx", 404)
    tally.record_dropped(3)
    tally.duration_seconds = 5.0
    tally.planned_requests = 504.0
    step = StepTally(100.0, tally)
    outcome = LoadOutcome("sweep", tally, steps=[step], slo=Slo(p99_latency_ms=1000), per_model_limit=3)
    again = LoadOutcome.from_json(json.loads(json.dumps(outcome.to_json())))
    assert again.results == outcome.results
    assert again.sweep == outcome.sweep
    assert again.timeline == outcome.timeline
    assert again.per_model == outcome.per_model
    assert len(again.per_model) == 3
    assert again.results.errors_by_status == {"404": 1}
    assert again.results.errors_by_class.dropped == 3 and again.results.errors_by_class.other == 0
    assert again.results.achieved_rate == 501 / 5  # dropped sends never left


def test_sweep_merge_keeps_only_steps_every_worker_finished() -> None:
    def worker(latencies: list[float]) -> LoadOutcome:
        steps = []
        for k, latency in enumerate(latencies):
            t = Tally()
            for i in range(100):
                t.record_success("m", i / 100, latency, latency, 0.0)
            t.duration_seconds = 1.0
            t.planned_requests = 100.0
            steps.append(StepTally(10.0 * (k + 1), t))
        return LoadOutcome("sweep", Tally(), steps=steps, slo=Slo(p99_latency_ms=50))

    merged = merge_outcomes([worker([0.01, 0.02, 0.2]), worker([0.01, 0.2])])
    sweep = merged.sweep
    assert sweep is not None
    assert [s.rate for s in sweep.steps] == [10.0, 20.0]
    assert [s.slo_met for s in sweep.steps] == [True, False]
    assert sweep.max_rate_meeting_slo == 10.0
    assert merged.results.requests == 200  # the best step, both workers
    assert sweep.steps[0].throughput == 200.0


def test_merge_refuses_mixed_modes_and_nothing() -> None:
    import pytest

    with pytest.raises(ValueError, match="different modes"):
        merge_outcomes([LoadOutcome("constant-rate", Tally()), LoadOutcome("concurrency", Tally())])
    with pytest.raises(ValueError, match="no outcomes"):
        merge_outcomes([])
    with pytest.raises(ValueError, match="format version"):
        LoadOutcome.from_json({"version": 99})


def test_a_lagging_generator_reports_a_lower_achieved_rate() -> None:
    """100 sends scheduled in a 1 s window but the last one left at 1.25 s: achieved is 80/s, not 100/s."""
    tally = Tally(duration_seconds=1.0, planned_requests=100.0)
    for i in range(100):
        lag = 0.26 * i / 99  # falling further behind; the last send is due at 0.99 s and leaves at 1.25 s
        tally.note_send(i / 100 + lag)
        tally.record_success("m", i / 100, 0.001 + lag, 0.001, lag)
    r = results_from(tally)
    assert r.requested_rate == 100.0
    assert r.achieved_rate == 80.0


def _same_tally(a: Tally, b: Tally) -> None:
    assert a.to_json() == b.to_json()
    for name in ("latency", "service", "delay"):
        x, y = getattr(a, name), getattr(b, name)
        assert h.same_counts(x, y) and (x.get_min_value(), x.get_max_value()) == (y.get_min_value(), y.get_max_value())


@settings(max_examples=30, deadline=None)
@given(
    st.lists(
        st.one_of(st.floats(-1.0, 100.0), st.floats(0, 0.01), st.integers(0, 2**26).map(lambda us: us / 1e6)),
        max_size=200,
    )
)
def test_batched_recording_equals_one_value_at_a_time(seconds: list[float]) -> None:
    """The hot path adds results in vectorized batches: bucket for bucket, count, min and max as record_us."""
    for digits in (h.DIGITS, h.SMALL_DIGITS):
        one, batch = h.new_histogram(digits), h.new_histogram(digits)
        for s in seconds:
            h.record_us(one, s)
        h.record_many_us(batch, np.array(seconds, dtype=float))
        assert h.same_counts(one, batch)
        assert one.get_total_count() == batch.get_total_count()
        assert (one.get_min_value(), one.get_max_value()) == (batch.get_min_value(), batch.get_max_value())


@settings(max_examples=10, deadline=None)
@given(events)
def test_record_successes_equals_record_success_each(items: list[Event]) -> None:
    ok = [e for e in items if e[5] is None]
    one = Tally(bucket_seconds=2)
    for model, t, latency, service, delay, _, _ in ok:
        one.record_success(model, t, latency, min(service, latency), delay)
    batch = Tally(bucket_seconds=2)
    batch.record_successes(
        [e[0] for e in ok],
        np.array([e[1] for e in ok]),
        np.array([e[2] for e in ok]),
        np.array([min(e[3], e[2]) for e in ok]),
        np.array([e[4] for e in ok]),
    )
    _same_tally(one, batch)
