"""What a finished run's merged results mean, for both runtimes: the LoadTest's phase, the reason and message of
its ``Complete`` condition, the ``SLOMet`` condition and the ``sloVerdict`` printer value.

The operator (after merging its workers' results) and ``modelpack run`` both call :func:`judge`, so a run ends
with the same phase, reasons and messages on a cluster and on a laptop.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from modelpack.api.loadtest import Cost, Results, Slo, SloVerdict, SweepResult
from modelpack.conditions import Cond
from modelpack.loadgen.slo import evaluate_slo, failed_run, run_summary


@dataclass(frozen=True)
class Judgement:
    phase: Literal["Succeeded", "Failed"]
    complete: Cond
    slo_condition: Cond
    slo: SloVerdict | None
    slo_word: Literal["Met", "Missed", "None"]

    def status_fields(self, results: Results, sweep: SweepResult | None, cost: Cost | None) -> dict[str, Any]:
        """The status fields of the judged run (camelCase, unset ones left out): what both runtimes write."""
        fields: dict[str, Any] = {"phase": self.phase, "results": results.to_dict(), "sloVerdict": self.slo_word}
        for key, value in (("sweep", sweep), ("cost", cost), ("slo", self.slo)):
            if value is not None:
                fields[key] = value.to_dict()
        return fields


def judge(results: Results, slo: Slo | None) -> Judgement:
    """``Failed`` when most requests failed (``RequestsFailed``, SLO or not) or an SLO bound broke
    (``SLOMissed``); otherwise ``Succeeded``. The message leads with the run's one-line summary."""
    verdict = evaluate_slo(slo, results)
    summary = run_summary(results)
    if verdict is None:
        word: Literal["Met", "Missed", "None"] = "None"
        slo_condition = Cond("SLOMet", None, "NoSLO", "spec.slo is not set")
    elif verdict.met:
        word = "Met"
        slo_condition = Cond("SLOMet", True, "SLOMet", "every bound of spec.slo held")
    else:
        word = "Missed"
        slo_condition = Cond("SLOMet", False, "SLOMissed", "; ".join(verdict.violations))
    failed = failed_run(results)
    if failed is not None:
        phase: Literal["Succeeded", "Failed"] = "Failed"
        complete = Cond("Complete", True, "RequestsFailed", f"{summary}; {failed[1]}")
    elif verdict is not None and not verdict.met:
        phase = "Failed"
        complete = Cond("Complete", True, "SLOMissed", f"{summary}; SLO missed: {slo_condition.message}")
    else:
        phase = "Succeeded"
        complete = Cond("Complete", True, "Succeeded", summary)
    return Judgement(phase, complete, slo_condition, verdict, word)
