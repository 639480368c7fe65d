"""How large one ModelPack may be in a cluster: one definition for the operator, the chart's admission policy
and ``modelpack validate``.

The types cap a pack at what the product can run at all (``MAX_MODELS``, ``MAX_SERVERS``); these defaults
are lower, what one operator takes on by default without its memory or API calls growing past a bound
(measured: docs/perf/fleet.md). A cluster can change them (chart values ``limits.*``, which set the
operator's ``MODELPACK_LIMITS_*`` and the ValidatingAdmissionPolicy alike).
"""

from __future__ import annotations

from modelpack.api.modelpack import ModelPackSpec

DEFAULT_MAX_MODELS_PER_PACK = 50_000
DEFAULT_MAX_SERVERS_PER_PACK = 4_000


def pack_limit_problem(
    spec: ModelPackSpec,
    max_models: int = DEFAULT_MAX_MODELS_PER_PACK,
    max_servers: int = DEFAULT_MAX_SERVERS_PER_PACK,
    source: str = "",
) -> str | None:
    """Why ``spec`` is over the limits, naming the field, from its size alone (no model name is expanded)."""
    models, servers = spec.models.size(), spec.servers()
    where = f" ({source})" if source else ""
    if models > max_models:
        return f"spec.models: {models} models, over the limit of {max_models} per pack{where}: split the pack"
    if servers > max_servers:
        return (
            f"spec.modelsPerServer: {models} models at {spec.models_per_server} per server make {servers} servers, "
            f"over the limit of {max_servers} per pack{where}: raise spec.modelsPerServer or split the pack"
        )
    return None
