"""``compute.podTemplate`` laid over a generated server pod template.

The type (``modelpack.api.podtemplate``) is an allow-list, so nothing here has to filter: every field it can
hold grants nothing. Maps merge (the operator's keys cannot be named: admission refuses them), lists are
appended to the generated ones, the server container gets extra env and mounts; nothing is replaced, so a
partial podTemplate can never drop the server container or its security context.
"""

from __future__ import annotations

import copy
from typing import Any

from modelpack.api.podtemplate import PodTemplate
from modelpack_operator.builders.merge import deep_merge

SERVER_CONTAINER = "server"


def apply_pod_template(template: dict[str, Any], extra: PodTemplate) -> dict[str, Any]:
    """``template`` with ``extra`` added; neither argument is modified."""
    out = copy.deepcopy(template)
    if extra.metadata is not None:
        meta = out.setdefault("metadata", {})
        for key in ("labels", "annotations"):
            values = getattr(extra.metadata, key)
            if values:
                meta[key] = {**values, **meta.get(key, {})}
    spec = extra.spec
    if spec is None:
        return out
    pod = out["spec"]
    if spec.affinity:
        pod["affinity"] = deep_merge(pod.get("affinity") or {}, spec.affinity)
    if spec.tolerations:
        pod["tolerations"] = [*pod.get("tolerations", []), *(t.to_dict() for t in spec.tolerations)]
    if spec.topology_spread_constraints:
        pod["topologySpreadConstraints"] = copy.deepcopy(spec.topology_spread_constraints)
    if spec.priority_class_name:
        pod["priorityClassName"] = spec.priority_class_name
    if spec.volumes:
        pod["volumes"] = [*pod.get("volumes", []), *(v.to_dict() for v in spec.volumes)]
    if spec.server_container is not None:
        container = next(c for c in pod["containers"] if c["name"] == SERVER_CONTAINER)
        if spec.server_container.env:
            container["env"] = [*container.get("env", []), *(e.to_dict() for e in spec.server_container.env)]
        if spec.server_container.volume_mounts:
            mounts = (m.to_dict() for m in spec.server_container.volume_mounts)
            container["volumeMounts"] = [*container.get("volumeMounts", []), *mounts]
    return out
