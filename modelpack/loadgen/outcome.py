"""What a run hands back: mergeable tallies plus the API views (`Results`, `SweepResult`) read from them.

``to_json()`` is JSON-safe (encoded histograms, no floats that JSON cannot hold) so a worker can park it in a
ConfigMap and the operator can ``merge_outcomes`` them: merged figures are exact, never averaged.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property
from typing import Any

from modelpack.api.loadtest import ModelResult, Results, Slo, SloVerdict, SweepResult, SweepStep
from modelpack.loadgen.slo import evaluate_slo
from modelpack.loadgen.summary import TimelineBucket, model_results, results_from, timeline_from
from modelpack.loadgen.tally import Tally

FORMAT_VERSION = 1
DEFAULT_PER_MODEL = 10


@dataclass
class StepTally:
    """One sweep step: the rate all workers together were asked for, and what was measured."""

    rate: float
    tally: Tally


@dataclass
class LoadOutcome:
    mode: str
    tally: Tally
    steps: list[StepTally] | None = None
    slo: Slo | None = None
    per_model_limit: int = DEFAULT_PER_MODEL
    workers: int = 1
    interrupted: bool = False

    # ---- views --------------------------------------------------------------------------------------------
    def _step_verdicts(self) -> list[tuple[StepTally, Results, SloVerdict | None]]:
        verdicts = []
        for step in self.steps or []:
            results = results_from(step.tally)
            verdicts.append((step, results, evaluate_slo(self.slo, results)))
        return verdicts

    # Views are computed once (reading percentiles walks whole histograms); an outcome is not changed after
    # it is built or merged.
    @cached_property
    def sweep(self) -> SweepResult | None:
        """Each step's figures; the answer is the highest rate of the unbroken run of steps meeting the SLO."""
        if self.steps is None:
            return None
        steps = []
        best: float | None = None
        broken = False
        for step, results, verdict in self._step_verdicts():
            met = verdict is None or verdict.met
            latency = results.latency_ms
            steps.append(
                SweepStep(
                    rate=step.rate,
                    slo_met=met,
                    throughput=results.throughput,
                    p50_ms=latency.p50 if latency else 0.0,
                    p99_ms=latency.p99 if latency else 0.0,
                    error_rate=round(results.errors / results.requests, 6) if results.requests else 0.0,
                )
            )
            broken = broken or not met
            if met and not broken:
                best = step.rate
        return SweepResult(max_rate_meeting_slo=best, steps=steps)

    def _results_tally(self) -> Tally:
        """For a sweep, the step at the highest rate meeting the SLO (else the first step)."""
        if not self.steps:
            return self.tally
        sweep = self.sweep
        assert sweep is not None
        best = sweep.max_rate_meeting_slo
        for step in self.steps:
            if best is not None and step.rate == best:
                return step.tally
        return self.steps[0].tally

    @cached_property
    def results(self) -> Results:
        return results_from(self._results_tally(), self.per_model_limit)

    @property
    def slo_verdict(self) -> SloVerdict | None:
        return evaluate_slo(self.slo, self.results)

    @cached_property
    def timeline(self) -> list[TimelineBucket]:
        return timeline_from(self.tally)

    @cached_property
    def per_model(self) -> list[ModelResult]:
        """The slowest models (by p99), at most ``per_model_limit``, over the whole measured run."""
        return model_results(self.tally, self.per_model_limit)

    # ---- serialisation ------------------------------------------------------------------------------------
    def to_json(self) -> dict[str, Any]:
        return {
            "version": FORMAT_VERSION,
            "mode": self.mode,
            "workers": self.workers,
            "interrupted": self.interrupted,
            "perModelLimit": self.per_model_limit,
            "slo": self.slo.to_dict() if self.slo else None,
            "tally": self.tally.to_json(),
            "steps": None if self.steps is None else [{"rate": s.rate, "tally": s.tally.to_json()} for s in self.steps],
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> LoadOutcome:
        if not isinstance(data, dict) or data.get("version") != FORMAT_VERSION:
            raise ValueError(f"not a load outcome of format version {FORMAT_VERSION}")
        steps = data.get("steps")
        return cls(
            mode=str(data["mode"]),
            tally=Tally.from_json(data["tally"]),
            steps=None if steps is None else [StepTally(float(s["rate"]), Tally.from_json(s["tally"])) for s in steps],
            slo=Slo.model_validate(data["slo"]) if data.get("slo") else None,
            per_model_limit=int(data.get("perModelLimit", DEFAULT_PER_MODEL)),
            workers=int(data.get("workers", 1)),
            interrupted=bool(data.get("interrupted", False)),
        )


def merge_outcomes(outcomes: list[LoadOutcome]) -> LoadOutcome:
    """One outcome over all workers: counters and histograms add up exactly; percentiles are read afterwards.

    Sweep steps are merged index by index and only while every worker completed the step (a worker stops after
    the step where its own share broke the SLO; a step not everyone finished is not a fair measurement).
    """
    if not outcomes:
        raise ValueError("nothing to merge: no outcomes")
    modes = {o.mode for o in outcomes}
    if len(modes) > 1:
        raise ValueError(f"cannot merge outcomes of different modes: {sorted(modes)}")
    first = outcomes[0]
    tally = Tally(bucket_seconds=first.tally.bucket_seconds, planned_requests=0.0)
    for o in outcomes:
        tally.merge(o.tally)
    steps: list[StepTally] | None = None
    if any(o.steps is not None for o in outcomes):
        common = min(len(o.steps or []) for o in outcomes)
        steps = []
        for k in range(common):
            rates = {o.steps[k].rate for o in outcomes if o.steps}
            if len(rates) > 1:
                raise ValueError(f"cannot merge sweep step {k + 1}: workers ran different rates {sorted(rates)}")
            merged = Tally(
                bucket_seconds=first.steps[k].tally.bucket_seconds if first.steps else 1, planned_requests=0.0
            )
            for o in outcomes:
                assert o.steps is not None
                merged.merge(o.steps[k].tally)
            steps.append(StepTally(rates.pop(), merged))
    return LoadOutcome(
        mode=first.mode,
        tally=tally,
        steps=steps,
        slo=first.slo,
        per_model_limit=max(o.per_model_limit for o in outcomes),
        workers=sum(o.workers for o in outcomes),
        interrupted=any(o.interrupted for o in outcomes),
    )
