"""Read a measured throughput out of load-test results, accepting only results that met an SLO.

Accepted inputs (YAML or JSON, one or many documents):

- a LoadTest with its status (``kubectl get loadtest NAME -o yaml``), optionally with its ModelPack in the
  same file (or a ``kind: List`` holding both), which tells how many server pods produced the throughput,
  the compute type and the server's resource requests;
- the local runtime's ``results.json``: a mapping holding a LoadTest status (``results``, ``slo``,
  ``sweep``...) directly or under ``status``, and optionally ``loadTest`` / ``modelPack`` objects and a
  ``servers`` list;
- a bare ``Results`` mapping (``requests``, ``throughput``...).

A sweep contributes the throughput of its highest step that met the SLO. Any other result must carry
an SLO verdict of Met, or meet the bounds given on the command line, or it is refused: a plan sized from
a throughput that broke the SLO would promise latencies the fleet will not deliver.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from modelpack import userfiles
from modelpack.api.loading import format_validation_error
from modelpack.api.loadtest import LoadTestStatus, Results, SweepStep
from modelpack.api.modelpack import ModelPack
from modelpack.cost import pod_requests
from modelpack.plan.sizing import ServerShape
from modelpack.pricing import ComputeType
from modelpack.serving import server_resources

RESULTS_FILE = "results.json"


class MeasurementError(ValueError):
    """Results that cannot be used to size a fleet; the message names the file and the reason."""


@dataclass(frozen=True)
class SloBounds:
    """SLO bounds from the command line, checked against the results on top of any verdict they carry."""

    p50_ms: float | None = None
    p90_ms: float | None = None
    p99_ms: float | None = None
    max_error_rate: float | None = None

    def any(self) -> bool:
        return any(v is not None for v in (self.p50_ms, self.p90_ms, self.p99_ms, self.max_error_rate))

    def describe(self) -> str:
        parts = [
            f"{name} {value:g}"
            for name, value in (
                ("p50 <=", self.p50_ms),
                ("p90 <=", self.p90_ms),
                ("p99 <=", self.p99_ms),
                ("error rate <=", self.max_error_rate),
            )
            if value is not None
        ]
        return ", ".join(p + ("" if p.startswith("error") else " ms") for p in parts)

    def violations(self, results: Results) -> list[str]:
        out: list[str] = []
        lat = results.latency_ms
        for label, bound, value in (
            ("p50", self.p50_ms, lat.p50 if lat else None),
            ("p90", self.p90_ms, lat.p90 if lat else None),
            ("p99", self.p99_ms, lat.p99 if lat else None),
        ):
            if bound is None:
                continue
            if value is None:
                out.append(f"{label} bound {bound:g} ms given but the results record no latency")
            elif value > bound:
                out.append(f"{label} {value:g} ms > {bound:g} ms")
        if self.max_error_rate is not None:
            rate = results.errors / results.requests if results.requests else 0.0
            if rate > self.max_error_rate:
                out.append(f"error rate {rate:.4g} > {self.max_error_rate:g}")
        return out

    def allows_step(self, step: SweepStep) -> bool:
        if self.p90_ms is not None:
            raise MeasurementError("sweep steps record p50 and p99 only: drop --slo-p90-ms for a sweep")
        return (
            (self.p50_ms is None or step.p50_ms <= self.p50_ms)
            and (self.p99_ms is None or step.p99_ms <= self.p99_ms)
            and (self.max_error_rate is None or step.error_rate <= self.max_error_rate)
        )


@dataclass(frozen=True)
class Measurement:
    source: str
    throughput: float
    """Successful requests per second of the whole measured pack, within the SLO."""
    basis: str
    """Why the throughput is trusted: which SLO it met."""
    server_pods: int | None = None
    compute: ComputeType | None = None
    models_per_server: int | None = None
    server: ServerShape | None = None


@dataclass
class _Found:
    loadtests: list[dict[str, Any]] = field(default_factory=list)
    packs: list[dict[str, Any]] = field(default_factory=list)
    statuses: list[dict[str, Any]] = field(default_factory=list)
    servers: int | None = None


def _collect(doc: Any, found: _Found) -> None:
    if not isinstance(doc, dict):
        return
    kind = doc.get("kind")
    if kind == "LoadTest":
        found.loadtests.append(doc)
        return
    if kind == "ModelPack":
        found.packs.append(doc)
        return
    if kind == "List":
        for item in doc.get("items") or []:
            _collect(item, found)
        return
    for key in ("loadTest", "loadtest", "modelPack", "modelpack", "pack"):
        _collect(doc.get(key), found)
    if isinstance(doc.get("results"), dict) or isinstance(doc.get("sweep"), dict):
        found.statuses.append(doc)
    elif isinstance(doc.get("status"), dict):
        found.statuses.append(doc["status"])
    elif "throughput" in doc and "requests" in doc:
        found.statuses.append({"results": doc})
    servers = doc.get("servers")
    if isinstance(servers, list) and servers:
        found.servers = len(servers)
    elif isinstance(servers, int) and not isinstance(servers, bool) and servers > 0:
        found.servers = servers


def _collect_run_dir(results: Path, found: _Found) -> None:
    """Next to a `modelpack run` results.json: objects.yaml (the ModelPack and LoadTest) and servers.json."""
    if results.name != RESULTS_FILE:
        return
    objects = results.with_name("objects.yaml")
    if objects.exists() and not found.packs:
        for doc in _load_docs(objects):
            if isinstance(doc, dict) and doc.get("kind") == "ModelPack":
                found.packs.append(doc)
            elif isinstance(doc, dict) and doc.get("kind") == "LoadTest" and not found.loadtests:
                found.loadtests.append({k: v for k, v in doc.items() if k != "status"})
    servers = results.with_name("servers.json")
    if servers.exists() and found.servers is None:
        docs = _load_docs(servers)
        if docs and isinstance(docs[0], list) and docs[0]:
            found.servers = len(docs[0])


def _load_docs(path: Path) -> list[Any]:
    return userfiles.yaml_documents(
        userfiles.read_text(path, MeasurementError), str(path), MeasurementError, "YAML or JSON"
    )


def _status(found: _Found, source: str) -> LoadTestStatus:
    raw = [lt.get("status") for lt in found.loadtests] + found.statuses
    raw = [r for r in raw if isinstance(r, dict)]
    if not raw:
        if found.loadtests:
            name = (found.loadtests[0].get("metadata") or {}).get("name", "?")
            raise MeasurementError(f"{source}: LoadTest {name!r} has no status yet: it has not run")
        raise MeasurementError(
            f"{source}: no load-test results found (expected a LoadTest with status, results.json from "
            "`modelpack run`, or a Results mapping)"
        )
    if len(raw) > 1:
        raise MeasurementError(f"{source}: holds {len(raw)} load-test results; pass one file per result")
    try:
        return LoadTestStatus.model_validate(raw[0])
    except ValidationError as err:
        raise MeasurementError(f"{source}: results are invalid:\n{format_validation_error(err)}") from None


def _accepted_throughput(status: LoadTestStatus, bounds: SloBounds, source: str) -> tuple[float, str]:
    if status.phase == "Failed":
        raise MeasurementError(f"{source}: the load test failed (phase Failed); its results cannot size a fleet")
    if status.sweep is not None and status.sweep.steps:
        met = [s for s in status.sweep.steps if s.slo_met and bounds.allows_step(s)]
        if not met:
            rates = ", ".join(f"{s.rate:g}" for s in status.sweep.steps)
            raise MeasurementError(f"{source}: no sweep step met the SLO (rates tried: {rates} req/s)")
        best = max(met, key=lambda s: s.rate)
        basis = f"sweep step at {best.rate:g} req/s, the highest that met the SLO"
        return _positive(best.throughput, source), basis + (f" ({bounds.describe()})" if bounds.any() else "")
    results = status.results
    if results is None:
        raise MeasurementError(f"{source}: the status holds no results (phase {status.phase or 'unknown'})")
    verdict_met: bool | None = None
    if status.slo is not None:
        verdict_met = status.slo.met
    elif status.slo_verdict in ("Met", "Missed"):
        verdict_met = status.slo_verdict == "Met"
    if verdict_met is False:
        why = "; ".join(status.slo.violations) if status.slo and status.slo.violations else "verdict Missed"
        raise MeasurementError(f"{source}: the results missed their SLO ({why}); only results that met it are used")
    violations = bounds.violations(results)
    if violations:
        raise MeasurementError(f"{source}: the results miss the SLO given ({'; '.join(violations)})")
    if verdict_met is None and not bounds.any():
        raise MeasurementError(
            f"{source}: the results carry no SLO verdict; give the SLO they must meet "
            "(--slo-p99-ms, --slo-p50-ms, --slo-p90-ms, --slo-max-error-rate)"
        )
    basis = "the LoadTest's SLO (verdict Met)" if verdict_met else ""
    if bounds.any():
        basis = (basis + " and " if basis else "") + bounds.describe()
    return _positive(results.throughput, source), basis


def _positive(throughput: float, source: str) -> float:
    if not throughput > 0:
        raise MeasurementError(f"{source}: measured throughput is {throughput:g} req/s; nothing to size from")
    return throughput


def _pack_facts(doc: dict[str, Any], source: str) -> tuple[int, ComputeType, int, ServerShape]:
    try:
        pack = ModelPack.model_validate(doc)
    except ValidationError as err:
        raise MeasurementError(f"{source}: ModelPack is invalid:\n{format_validation_error(err)}") from None
    spec = pack.spec
    models = spec.models.count if spec.models.count is not None else len(spec.models.names or [])
    groups = (pack.status.servers if pack.status and pack.status.servers else None) or math.ceil(
        models / spec.models_per_server
    )
    return groups * max(spec.replicas, 1), spec.compute.type, spec.models_per_server, server_shape_of(pack)


def server_shape_of(pack: ModelPack) -> ServerShape:
    """What each server pod of ``pack`` requests, sized the way the operator sizes it.

    CPU = ``server.workerThreads``, memory = ``server.memoryBudget`` + the operator's default overhead,
    accelerators = ``compute.acceleratorsPerServer`` on inferentia and gpu; ``compute.resources.requests``
    overrides each: :func:`modelpack.serving.server_resources`, which the operator's pods request too.
    """
    requests = server_resources(pack.spec)["requests"]
    req = pod_requests({"spec": {"containers": [{"name": "server", "resources": {"requests": requests}}]}})
    return ServerShape(
        cpu_millicores=int(req.get("cpu", 0) * 1000),
        memory_bytes=int(req.get("memory", 0)),
        accelerators=sum(int(v) for k, v in req.items() if "/" in k),
    )


def read_measurement(path: str | Path, bounds: SloBounds | None = None) -> Measurement:
    """The SLO-meeting throughput in one results file, with what the file says about the pack behind it."""
    p = Path(path)
    if p.is_dir():
        p = p / RESULTS_FILE
        if not p.exists():
            raise MeasurementError(f"{p.parent}: no {RESULTS_FILE} in this directory (a `modelpack run` results dir?)")
    bounds = bounds or SloBounds()
    found = _Found()
    for doc in _load_docs(p):
        _collect(doc, found)
    _collect_run_dir(p, found)
    if len(found.loadtests) > 1:
        raise MeasurementError(f"{p}: holds {len(found.loadtests)} LoadTests; pass one file per result")
    throughput, basis = _accepted_throughput(_status(found, str(p)), bounds, str(p))
    server_pods, compute, mps, shape = found.servers, None, None, None
    if found.loadtests and found.packs:
        target = ((found.loadtests[0].get("spec") or {}).get("target") or {}).get("modelPack")
        found.packs = [pk for pk in found.packs if (pk.get("metadata") or {}).get("name") == target] or found.packs
    if len(found.packs) > 1:
        raise MeasurementError(f"{p}: holds {len(found.packs)} ModelPacks and no LoadTest says which was measured")
    if found.packs:
        pods, compute, mps, shape = _pack_facts(found.packs[0], str(p))
        server_pods = server_pods or pods
    return Measurement(
        source=str(p),
        throughput=throughput,
        basis=basis,
        server_pods=server_pods,
        compute=compute,
        models_per_server=mps,
        server=shape,
    )
