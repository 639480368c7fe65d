"""Open-loop (constant-rate) and closed-loop load generation against V2 model servers, with exact merging.

The operator's workers and the local runtime call :func:`run_load`; results from many workers combine with
:func:`merge_outcomes` (HdrHistograms merged, never percentiles averaged) and are judged by :func:`evaluate_slo`.
"""

from modelpack.loadgen.endpoints import Endpoint, normalize_url, select_models
from modelpack.loadgen.errors import LoadgenError, TargetError
from modelpack.loadgen.outcome import LoadOutcome, StepTally, merge_outcomes
from modelpack.loadgen.runner import LoadRun, run_load
from modelpack.loadgen.slo import evaluate_slo
from modelpack.loadgen.summary import TimelineBucket

__all__ = [
    "Endpoint",
    "LoadOutcome",
    "LoadRun",
    "LoadgenError",
    "StepTally",
    "TargetError",
    "TimelineBucket",
    "evaluate_slo",
    "merge_outcomes",
    "normalize_url",
    "run_load",
    "select_models",
]
