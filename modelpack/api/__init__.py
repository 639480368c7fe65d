"""The modelpack API: ModelPack and LoadTest, defined once as pydantic models.

CRDs (``modelpack.api.crd``), docs (``modelpack.api.docs``) and the local runtime's YAML validation
(``modelpack.api.loading``) are all derived from these types.
"""

from modelpack.api.common import API_VERSION, GROUP, VERSION, Condition, LatencySummary, ObjectMeta
from modelpack.api.loadtest import LoadTest, LoadTestSpec, LoadTestStatus, Results, SloVerdict
from modelpack.api.modelpack import ModelPack, ModelPackSpec, ModelPackStatus

__all__ = [
    "API_VERSION",
    "GROUP",
    "VERSION",
    "Condition",
    "LatencySummary",
    "LoadTest",
    "LoadTestSpec",
    "LoadTestStatus",
    "ModelPack",
    "ModelPackSpec",
    "ModelPackStatus",
    "ObjectMeta",
    "Results",
    "SloVerdict",
]
