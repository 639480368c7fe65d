"""Turn a LoadTestSpec into one worker's concrete plan: phases, its share of the rate, and the checks that refuse
specs which cannot give a meaningful measurement.

Rules (documented in docs/load-generator.md):
- the measured window (``load.duration``, or the sum of ``load.stages`` durations) must be at least 1 s;
- the warm-up must not be longer than the measured window: otherwise most of the load is thrown away and the
  run mostly measures the warm-up's side effects;
- sweep steps (``load.sweep.stepDuration``) must be at least 1 s and ``startRate`` must not exceed ``maxRate``.
With stages, the warm-up runs at the first stage's rate and each stage ramps linearly from the previous one,
so the first stage holds its rate.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from modelpack.api.base import parse_duration
from modelpack.api.loadtest import Load, LoadTestSpec, Slo
from modelpack.loadgen.errors import LoadgenError
from modelpack.loadgen.schedule import ConcurrencyProfile, RateProfile, Segment

MIN_WINDOW_S = 1.0
MAX_SWEEP_STEPS = 1000


@dataclass(frozen=True)
class SweepStepPlan:
    rate: float  # all workers together
    start: float  # seconds from t = 0
    end: float


@dataclass(frozen=True)
class Plan:
    """What one worker does; times are seconds from t = 0 (the common start), warm-up first."""

    mode: str
    open_loop: bool
    warmup: float
    measured: float
    timeout: float
    max_in_flight: int
    arrival: str
    phase: float
    seed: int
    worker_index: int
    workers: int
    rate_profile: RateProfile | None
    concurrency_profile: ConcurrencyProfile | None
    steps: tuple[SweepStepPlan, ...]
    slo: Slo | None

    @property
    def end(self) -> float:
        return self.warmup + self.measured


def _seconds(text: str, field: str) -> float:
    try:
        return parse_duration(text)
    except ValueError as err:
        raise LoadgenError(f"{field}: {err}") from None


def _measured_segments(load: Load, field: str, warmup: float) -> tuple[list[Segment], float]:
    """The measured window of a rate or concurrency run (``field`` names which): its stages, or one segment."""
    if not load.stages:
        value = getattr(load, field)
        assert value is not None
        measured = _seconds(load.duration, "load.duration")
        _check_window(measured, warmup, "load.duration")
        return [Segment(measured, value, value)], measured
    values: list[float] = []
    for i, stage in enumerate(load.stages):
        value = getattr(stage, field)
        if value is None:
            raise LoadgenError(f"load.stages[{i}].{field} is required in {load.mode} mode")
        values.append(float(value))
    segments = []
    previous = values[0]
    total = 0.0
    for i, (stage, value) in enumerate(zip(load.stages, values, strict=True)):
        seconds = _seconds(stage.duration, f"load.stages[{i}].duration")
        segments.append(Segment(seconds, previous, value))
        previous = value
        total += seconds
    _check_window(total, warmup, "the stages' total duration")
    return segments, total


def _check_window(measured: float, warmup: float, what: str) -> None:
    if measured < MIN_WINDOW_S:
        raise LoadgenError(f"{what} must be at least {MIN_WINDOW_S:g}s, got {measured:g}s")
    if warmup > measured:
        raise LoadgenError(
            f"{what} ({measured:g}s) is shorter than load.warmup ({warmup:g}s): "
            "the measured window must be at least as long as the warm-up"
        )


def sweep_rates(spec: LoadTestSpec) -> list[float]:
    sweep = spec.load.sweep
    assert sweep is not None
    count = min(MAX_SWEEP_STEPS, math.floor((sweep.max_rate - sweep.start_rate) / sweep.step_rate + 1e-9) + 1)
    return [round(sweep.start_rate + k * sweep.step_rate, 6) for k in range(count)]


def make_plan(spec: LoadTestSpec, worker_index: int = 0, workers: int = 1) -> Plan:
    if workers < 1 or not 0 <= worker_index < workers:
        raise LoadgenError(f"worker_index must be in [0, {workers}) and workers >= 1, got {worker_index}/{workers}")
    load = spec.load
    warmup = _seconds(load.warmup, "load.warmup")
    timeout = _seconds(load.timeout, "load.timeout")
    if timeout <= 0:
        raise LoadgenError("load.timeout must be greater than 0")
    share = 1.0 / workers
    rate_profile: RateProfile | None = None
    conc_profile: ConcurrencyProfile | None = None
    steps: list[SweepStepPlan] = []
    if load.mode == "sweep":
        if load.sweep is None:
            raise LoadgenError("load.sweep is required in sweep mode")
        step_s = _seconds(load.sweep.step_duration, "load.sweep.stepDuration")
        if step_s < MIN_WINDOW_S:
            raise LoadgenError(f"load.sweep.stepDuration must be at least {MIN_WINDOW_S:g}s, got {step_s:g}s")
        rates = sweep_rates(spec)
        segments = [Segment(warmup, rates[0] * share, rates[0] * share)]
        for k, rate in enumerate(rates):
            segments.append(Segment(step_s, rate * share, rate * share))
            steps.append(SweepStepPlan(rate, warmup + k * step_s, warmup + (k + 1) * step_s))
        measured = step_s * len(rates)
        rate_profile = RateProfile(segments)
    elif load.mode == "constant-rate":
        segments, measured = _measured_segments(load, "rate", warmup)
        first = segments[0].start
        scaled = [Segment(warmup, first * share, first * share)]
        scaled += [Segment(s.duration, s.start * share, s.end * share) for s in segments]
        rate_profile = RateProfile(scaled)
    else:
        segments, measured = _measured_segments(load, "concurrency", warmup)
        first = segments[0].start
        conc_profile = ConcurrencyProfile([Segment(warmup, first, first), *segments], worker_index, workers)
    return Plan(
        mode=load.mode,
        open_loop=rate_profile is not None,
        warmup=warmup,
        measured=measured,
        timeout=timeout,
        max_in_flight=load.max_in_flight,
        arrival=load.arrival,
        phase=worker_index / workers,
        seed=spec.target.models.seed * 1_000_003 + worker_index,
        worker_index=worker_index,
        workers=workers,
        rate_profile=rate_profile,
        concurrency_profile=conc_profile,
        steps=tuple(steps),
        slo=spec.slo,
    )
