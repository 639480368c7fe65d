"""Fleet sizing for `modelpack plan`: measured per-server throughput in, instance family, nodes and cost out."""

from modelpack.plan.measurement import Measurement, MeasurementError, SloBounds, read_measurement
from modelpack.plan.sizing import PlanError, PlanOption, PlanRequest, ServerShape, plan

__all__ = [
    "Measurement",
    "MeasurementError",
    "PlanError",
    "PlanOption",
    "PlanRequest",
    "ServerShape",
    "SloBounds",
    "plan",
    "read_measurement",
]
