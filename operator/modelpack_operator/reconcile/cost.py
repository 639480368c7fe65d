"""``status.cost`` of a finished LoadTest: the node-price share its pack's server pods occupy.

Prices come from the ConfigMap the Helm chart installs (``pricing:`` value) when the operator is told
its name, else from the table shipped with modelpack. Pricing needs to read Nodes, which a
namespace-scoped install may not: then cost is left out and the reason logged, never failing the test.
"""

from __future__ import annotations

import logging

from modelpack.api.loadtest import Cost, LoadTest
from modelpack.cost import pack_cost
from modelpack.pricing import PriceError, PriceTable, default_price_table, from_configmap
from modelpack_operator import labels as L
from modelpack_operator.kube import Kube, KubeError
from modelpack_operator.settings import OperatorSettings

log = logging.getLogger(__name__)


def price_table(kube: Kube, settings: OperatorSettings) -> PriceTable:
    ref = settings.reconcile.pricing_configmap
    if not ref:
        return default_price_table()
    namespace, _, name = ref.rpartition("/")
    configmap = kube.get("v1", "ConfigMap", namespace or None, name)
    if configmap is None:
        raise PriceError(f"pricing ConfigMap {ref} (MODELPACK_RECONCILE_PRICING_CONFIGMAP) not found")
    return from_configmap(configmap)


def loadtest_cost(kube: Kube, lt: LoadTest, throughput: float, settings: OperatorSettings) -> Cost | None:
    namespace = lt.metadata.namespace or "default"
    # Pod labels come from the Deployment's template (no managed-by label there), so select on pack + component.
    selector = f"{L.PACK}={lt.spec.target.model_pack},{L.COMPONENT}={L.SERVER_COMPONENT}"
    try:
        pods = kube.list("v1", "Pod", namespace, selector)
        node_names = {(p.get("spec") or {}).get("nodeName") for p in pods} - {None, ""}
        nodes = {}
        for node_name in node_names:
            node = kube.get("v1", "Node", None, str(node_name))
            if node is not None:
                nodes[str(node_name)] = node
        return pack_cost(pods, nodes, price_table(kube, settings), throughput)
    except (KubeError, PriceError, ValueError) as err:
        log.warning("loadtest %s/%s: no cost: %s", namespace, lt.metadata.name, err)
        return None
