"""The scheduler's arithmetic: ramps hold exactly their area's sends, workers interleave, spreads behave."""

from __future__ import annotations

import itertools
from collections import Counter

import pytest
from pydantic import ValidationError

from modelpack.loadgen.errors import LoadgenError
from modelpack.loadgen.schedule import ConcurrencyProfile, RateProfile, Segment, arrivals
from modelpack.loadgen.spread import make_chooser, zipf_order
from modelpack.loadgen.worker_plan import make_plan

from .conftest import make_spec


def test_linear_ramp_sends_its_area() -> None:
    profile = RateProfile([Segment(2.0, 10.0, 10.0), Segment(4.0, 10.0, 110.0)])
    times = list(arrivals(profile, "uniform", 0.0, 0))
    assert len(times) == 20 + 240
    assert times == sorted(times)
    assert sum(1 for t in times if t < 2.0) == 20
    # Within the ramp, second s holds the sends numbered ceil(N(s)) .. ceil(N(s+1)) - 1, N(t) = 20 + 10t' + 12.5t'^2.
    per_second = Counter(int(t) for t in times if t >= 2.0)
    assert [per_second[s] for s in range(2, 6)] == [23, 47, 73, 97]  # N = 20, 42.5, 90, 162.5, 260


def test_time_of_inverts_cumulative() -> None:
    profile = RateProfile([Segment(1.0, 5.0, 5.0), Segment(3.0, 5.0, 50.0), Segment(2.0, 50.0, 1.0)])
    for n in [0.0, 1.5, 4.99, 5.0, 30.0, 80.0, profile.total_sends - 0.5]:
        t = profile.time_of(n)
        assert t is not None
        assert profile.cumulative(t) == pytest.approx(n, abs=1e-6)
    assert profile.time_of(profile.total_sends) is None


def test_workers_interleave_into_one_even_stream() -> None:
    workers = 4
    times = sorted(
        t
        for i in range(workers)
        for t in arrivals(RateProfile([Segment(1.0, 100.0 / workers, 100.0 / workers)]), "uniform", i / workers, 0)
    )
    assert len(times) == 100
    gaps = [b - a for a, b in itertools.pairwise(times)]
    assert max(gaps) == pytest.approx(0.01) and min(gaps) == pytest.approx(0.01)


def test_poisson_is_seeded_and_near_the_rate() -> None:
    profile = RateProfile([Segment(10.0, 200.0, 200.0)])
    a = list(arrivals(profile, "poisson", 0.0, 7))
    assert a == list(arrivals(profile, "poisson", 0.0, 7))
    assert a != list(arrivals(profile, "poisson", 0.0, 8))
    assert 2000 * 0.9 < len(a) < 2000 * 1.1
    gaps = [b - a_ for a_, b in itertools.pairwise(a)]
    assert min(gaps) < 0.0005 < 0.02 < max(gaps)  # bursty, unlike the uniform 5 ms spacing


def test_concurrency_slots_split_across_workers() -> None:
    segments = [Segment(10.0, 7.0, 7.0)]
    owned = [ConcurrencyProfile(segments, i, 3).active_slots(1.0) for i in range(3)]
    assert owned == [3, 2, 2]
    ramp = ConcurrencyProfile([Segment(10.0, 1.0, 11.0)], 0, 1)
    assert [ramp.active_slots(t) for t in (0.0, 5.0, 9.99)] == [1, 6, 10]
    assert ramp.slots == 11


def test_round_robin_is_exact_across_workers() -> None:
    workers, models = 3, 5
    choosers = [make_chooser("round-robin", models, seed=0, worker_index=i, workers=workers) for i in range(workers)]
    picks = Counter(choosers[i](n) for n in range(100) for i in range(workers))
    assert picks == dict.fromkeys(range(models), 60)


def test_zipf_is_skewed_towards_a_seeded_few_models() -> None:
    choose = make_chooser("zipf", 10, seed=1, zipf_exponent=1.1)
    picks = Counter(choose(n) for n in range(20_000))
    order = zipf_order(10, seed=1)
    assert sorted(order) == list(range(10))
    assert order != list(range(10)), "hot models must not simply be the first ones (placed on one server)"
    assert zipf_order(10, seed=1) == order
    shares = [picks[k] / 20_000 for k in order]
    assert shares[0] > 3 * 0.1  # the hottest model gets over 3x its uniform share
    assert shares[0] > shares[1] > shares[4] > shares[9]
    pick_uniform = make_chooser("uniform", 10, seed=1)
    uniform = Counter(pick_uniform(n) for n in range(20_000))
    assert max(uniform.values()) < 1.15 * 2000


def test_spread_is_reproducible_by_seed() -> None:
    a = make_chooser("zipf", 10, seed=5)
    b = make_chooser("zipf", 10, seed=5)
    assert [a(n) for n in range(100)] == [b(n) for n in range(100)]


def test_plan_refuses_a_warmup_longer_than_the_window() -> None:
    with pytest.raises(LoadgenError, match=r"load.duration \(2s\) is shorter than load.warmup \(5s\)"):
        make_plan(make_spec(mode="constant-rate", rate=10, duration="2s", warmup="5s"))
    with pytest.raises(ValidationError, match=r"load.duration\n.*must be a duration from 1s to 24h"):
        make_spec(mode="constant-rate", rate=10, duration="500ms", warmup="0s")  # refused at admission
    with pytest.raises(ValidationError, match=r"in constant-rate mode every stage sets rate"):
        make_spec(mode="constant-rate", stages=[{"duration": "1s", "rate": 5}, {"duration": "1s"}])


def test_plan_splits_rate_and_warms_up_at_the_first_stage() -> None:
    spec = make_spec(
        mode="constant-rate", warmup="1s", stages=[{"duration": "2s", "rate": 40}, {"duration": "2s", "rate": 80}]
    )
    plan = make_plan(spec, 1, 2)
    assert plan.measured == 4.0 and plan.warmup == 1.0
    profile = plan.rate_profile
    assert profile is not None
    assert profile.rate_at(0.5) == 20.0  # warm-up at the first stage's rate, half of it for 2 workers
    assert profile.cumulative(5.0) - profile.cumulative(1.0) == pytest.approx((40 * 2 + 60 * 2) / 2)


def test_sweep_plan_steps() -> None:
    spec = make_spec(
        mode="sweep",
        warmup="1s",
        sweep={"startRate": 10, "stepRate": 15, "maxRate": 60, "stepDuration": "2s"},
        slo={"p99LatencyMs": 10},
    )
    plan = make_plan(spec)
    assert [(s.rate, s.start, s.end) for s in plan.steps] == [(10, 1, 3), (25, 3, 5), (40, 5, 7), (55, 7, 9)]
    with pytest.raises(ValidationError, match=r"load.sweep.startRate cannot exceed load.sweep.maxRate"):
        make_spec(mode="sweep", sweep={"startRate": 100, "maxRate": 50}, slo={"p99LatencyMs": 10})
