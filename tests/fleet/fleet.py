"""Drive the real operator against a big ModelPack on the kwok control plane and measure each step.

Shared by ``benchmarks/fleet_scale.py`` (thousands of models) and ``tests/fleet`` (a few hundred).

How readiness works in the simulation: kwok plays kubelet, so a server pod is marked Running and Ready as
soon as the scheduler binds it to a fake node (nothing runs in it; no model is loaded). The Deployment
controller then reports the replica available, and the operator derives model readiness from
Deployment availability (a model is ready when the Deployment of the server it is placed on has the current
spec rolled out and every replica available). A pack is Ready when every server is. The figures therefore
measure the control loop (operator + API server + controller-manager + scheduler + kwok), not model loading.
"""

from __future__ import annotations

import math
import subprocess
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from modelpack.api.modelpack import ServerSpec
from modelpack.pools import POOLS
from modelpack.serving import memory_request
from tests.cluster.binaries import ensure_binaries
from tests.cluster.controlplane import ControlPlane
from tests.cluster.nodes import register_pools
from tests.fleet.observe import ProcSample, by_resource, by_verb, flow_schemas, proc_sample, request_counts, user_rbac
from tests.operator.harness import OperatorProcess

REPO = Path(__file__).resolve().parents[2]
OPERATOR_USER = "modelpack-operator"
API = "modelpack.dev/v1alpha1"
PACK_LABEL = "modelpack.dev/pack"
SERVER_CPU = 2  # the operator's default server: workerThreads 2
SERVER_MEMORY_MI = int(memory_request(ServerSpec().memory_budget).removesuffix("Mi"))  # the default server


def servers_per_node(pool: str) -> int:
    caps = POOLS[pool].capacity
    cpu = int(caps["cpu"])
    memory_mi = int(caps["memory"].removesuffix("Gi")) * 1024
    return min(cpu // SERVER_CPU, memory_mi // SERVER_MEMORY_MI)


def nodes_for(servers: int, pool: str = "graviton", headroom: float = 1.25) -> int:
    """Enough nodes for ``servers`` pods with room for a rolling update's surge."""
    return math.ceil(servers * headroom / servers_per_node(pool))


def pack_doc(name: str, namespace: str, models: int, per_server: int, image: str | None = None) -> dict[str, Any]:
    spec: dict[str, Any] = {
        "store": {"uri": "s3://modelpack-bench/fleet", "region": "us-west-2"},
        "models": {"count": models},
        "modelsPerServer": per_server,
        "compute": {"type": "graviton"},
    }
    if image:
        spec["server"] = {"image": image}
    return {"apiVersion": API, "kind": "ModelPack", "metadata": {"name": name, "namespace": namespace}, "spec": spec}


def _v3_bounds(node: Any) -> Any:
    """JSON-Schema-2020 ``exclusiveMinimum: N`` rewritten as OpenAPI v3 (``minimum: N`` + ``exclusiveMinimum: true``).

    TEMPORARY, as in tests/operator/conftest.py: the generated LoadTest CRD carries the 2020 form, which the
    API server refuses. Applied only when the plain CRD is refused, so it stops mattering once the generator
    is fixed.
    """
    if isinstance(node, list):
        return [_v3_bounds(n) for n in node]
    if not isinstance(node, dict):
        return node
    out = {k: _v3_bounds(v) for k, v in node.items()}
    for bound, plain in (("exclusiveMinimum", "minimum"), ("exclusiveMaximum", "maximum")):
        if isinstance(out.get(bound), int | float) and not isinstance(out.get(bound), bool):
            out[plain] = out.pop(bound)
            out[bound] = True
    return out


def install_crds(cp: ControlPlane) -> None:
    for path in sorted((REPO / "crds").glob("*.yaml")):
        if cp.kubectl("apply", "--server-side", "--force-conflicts", "-f", str(path), check=False).returncode != 0:
            doc = _v3_bounds(yaml.safe_load(path.read_text()))
            cp.kubectl("apply", "--server-side", "--force-conflicts", "-f", "-", input=yaml.safe_dump(doc))
    cp.kubectl(
        "wait",
        "--for=condition=Established",
        "--timeout=60s",
        "crd/modelpacks.modelpack.dev",
        "crd/loadtests.modelpack.dev",
    )


@dataclass
class StepResult:
    """One measured step: how long it took and what the operator spent on it."""

    name: str
    seconds: float
    requests: Counter[tuple[str, str]]
    before: ProcSample
    after: ProcSample
    detail: dict[str, Any] = field(default_factory=dict)

    def total_requests(self) -> int:
        return sum(self.requests.values())

    def summary(self) -> dict[str, Any]:
        return {
            "step": self.name,
            "seconds": round(self.seconds, 2),
            "operator_requests": self.total_requests(),
            "by_verb": by_verb(self.requests),
            "by_resource": by_resource(self.requests),
            "operator_cpu_seconds": round(self.after.cpu_seconds - self.before.cpu_seconds, 2),
            "operator_rss_mib": round(self.after.rss_bytes / 2**20, 1),
            "operator_peak_rss_mib": round(self.after.peak_rss_bytes / 2**20, 1),
            **self.detail,
        }


class Fleet:
    """A control plane prepared for fleet runs: CRDs, an operator user counted by FlowSchemas, kwok nodes."""

    def __init__(self, cp: ControlPlane, namespace: str, log_dir: Path, env: dict[str, str] | None = None) -> None:
        self.cp = cp
        self.namespace = namespace
        self.log_dir = log_dir
        self.env = env or {}
        self.operator: OperatorProcess | None = None

    def prepare(self, node_counts: dict[str, int]) -> None:
        install_crds(self.cp)
        self.cp.apply([user_rbac(OPERATOR_USER), *flow_schemas(OPERATOR_USER)])
        if self.cp.kubectl("get", "namespace", self.namespace, check=False).returncode != 0:
            self.cp.kubectl("create", "namespace", self.namespace)
        self.add_nodes(node_counts)

    def add_nodes(self, node_counts: dict[str, int], timeout: float = 300.0) -> None:
        register_pools(self.cp, node_counts, timeout=timeout)

    def start_operator(self) -> OperatorProcess:
        kubeconfig = self.cp.kubeconfig_for(OPERATOR_USER)
        env = {"KUBECONFIG": str(kubeconfig), "MODELPACK_RECONCILE_RESYNC_SECONDS": "60", **self.env}
        self.operator = OperatorProcess(self.cp, self.namespace, self.log_dir / "operator.log", env).start()
        # kopf has listed and started watching when its first resync-free reconcile can happen; give it a beat.
        self._wait(lambda: self.requests().get(("watch", "modelpacks"), 0) > 0, "operator watching ModelPacks", 60)
        return self.operator

    def stop_operator(self) -> None:
        if self.operator is not None:
            self.operator.stop()

    # observations ------------------------------------------------------------------------------

    def requests(self) -> Counter[tuple[str, str]]:
        return request_counts(self.cp.kubectl("get", "--raw", "/metrics", timeout=120).stdout)

    def proc(self) -> ProcSample:
        assert self.operator is not None and self.operator.popen is not None
        return proc_sample(self.operator.popen.pid)

    def pack(self, name: str) -> dict[str, Any]:
        return self.cp.kubectl_json("get", "modelpacks.modelpack.dev", name, "-n", self.namespace)

    def pack_ready(self, name: str, models: int, servers: int) -> bool:
        pack = self.pack(name)
        status = pack.get("status") or {}
        return (
            status.get("phase") == "Ready"
            and status.get("observedGeneration") == pack["metadata"]["generation"]
            and status.get("readyModels") == models
            and status.get("readyServers") == servers
            and status.get("servers") == servers
        )

    def count(self, kind: str, selector: str) -> int:
        out = self.cp.kubectl("get", kind, "-n", self.namespace, "-l", selector, "-o", "name", timeout=120).stdout
        return len(out.split())

    def _wait(self, probe: Callable[[], bool], what: str, timeout: float, interval: float = 0.5) -> None:
        deadline = time.monotonic() + timeout
        while not probe():
            if self.operator is not None and not self.operator.alive():
                raise RuntimeError(f"operator exited while waiting for {what}:\n{self.operator.log()[-4000:]}")
            if time.monotonic() > deadline:
                tail = self.operator.log()[-3000:] if self.operator else ""
                raise TimeoutError(f"timed out after {timeout:.0f}s waiting for {what}\n{tail}")
            time.sleep(interval)

    # steps -------------------------------------------------------------------------------------

    def measure(self, name: str, act: Callable[[], None], done: Callable[[], bool], timeout: float) -> StepResult:
        """Run ``act``, then poll ``done``; time and operator requests/CPU between the two."""
        requests_before, proc_before = self.requests(), self.proc()
        began = time.monotonic()
        act()
        self._wait(done, name, timeout)
        seconds = time.monotonic() - began
        requests = self.requests()
        requests.subtract(requests_before)
        return StepResult(name, seconds, +requests, proc_before, self.proc())

    def apply_pack(self, doc: dict[str, Any]) -> None:
        self.cp.kubectl("apply", "--server-side", "-f", "-", input=yaml.safe_dump(doc), timeout=120)

    def create(self, name: str, models: int, per_server: int, timeout: float = 600.0) -> StepResult:
        servers = math.ceil(models / per_server)
        doc = pack_doc(name, self.namespace, models, per_server)
        step = self.measure(
            f"create {models} models at {per_server}/server",
            lambda: self.apply_pack(doc),
            lambda: self.pack_ready(name, models, servers),
            timeout,
        )
        step.detail = {"models": models, "servers": servers}
        return step

    def create_split(self, prefix: str, models: int, packs: int, per_server: int, timeout: float) -> StepResult:
        """``models`` as ``packs`` ModelPacks applied together (one pack or several of the same total size)."""
        each = math.ceil(models / packs)
        servers = math.ceil(each / per_server)
        names = [f"{prefix}-{i}" for i in range(packs)]

        def apply_all() -> None:
            docs = [pack_doc(n, self.namespace, each, per_server) for n in names]
            self.cp.kubectl("apply", "--server-side", "-f", "-", input=yaml.safe_dump_all(docs), timeout=120)

        step = self.measure(
            f"create {packs} packs x {each} models at {per_server}/server",
            apply_all,
            lambda: all(self.pack_ready(n, each, servers) for n in names),
            timeout,
        )
        step.detail = {"models": each * packs, "servers": servers * packs, "packs": packs}
        return step

    def delete_all(self, timeout: float = 900.0) -> StepResult:
        selector = PACK_LABEL

        def gone() -> bool:
            return all(self.count(kind, selector) == 0 for kind in ("deployments", "services", "configmaps", "pods"))

        return self.measure(
            "delete all packs and GC",
            lambda: self.cp.kubectl(
                "delete", "modelpacks.modelpack.dev", "--all", "-n", self.namespace, "--wait=false"
            ),
            gone,
            timeout,
        )

    def change_density(self, name: str, models: int, per_server: int, timeout: float = 600.0) -> StepResult:
        servers = math.ceil(models / per_server)
        doc = pack_doc(name, self.namespace, models, per_server)
        step = self.measure(
            f"density -> {per_server}/server",
            lambda: self.apply_pack(doc),
            lambda: (
                self.pack_ready(name, models, servers) and self.count("deployments", f"{PACK_LABEL}={name}") == servers
            ),
            timeout,
        )
        step.detail = {"models": models, "servers": servers}
        return step

    def change_image(self, name: str, models: int, per_server: int, image: str, timeout: float = 900.0) -> StepResult:
        servers = math.ceil(models / per_server)
        doc = pack_doc(name, self.namespace, models, per_server, image=image)

        def rolled() -> bool:
            if not self.pack_ready(name, models, servers):
                return False
            pods = self.cp.kubectl(
                "get", "pods", "-n", self.namespace, "-l", f"{PACK_LABEL}={name}",
                "-o", "jsonpath={range .items[*]}{.spec.containers[0].image}{\"\\n\"}{end}", timeout=120,
            ).stdout.split()  # fmt: skip
            return len(pods) == servers and all(p == image for p in pods)

        step = self.measure(f"image change rolling {servers} servers", lambda: self.apply_pack(doc), rolled, timeout)
        step.detail = {"models": models, "servers": servers}
        return step

    def settle(self, quiet: float = 5.0, timeout: float = 300.0) -> StepResult:
        """Wait (at most ``timeout``) until the operator makes no request for ``quiet`` seconds.

        After a big change the operator works through the watch events it queued; this measures how long
        that takes. Not settling within ``timeout`` is a result, not an error.
        """
        last, since = self.requests(), time.monotonic()
        settled = False

        def quiet_or_timeout() -> bool:
            nonlocal last, since, settled
            now = self.requests()
            if now != last:
                last, since = now, time.monotonic()
            settled = time.monotonic() - since >= quiet
            return settled or time.monotonic() - began > timeout

        began = time.monotonic()
        step = self.measure(
            f"settle (until {quiet:.0f}s without a request)", lambda: None, quiet_or_timeout, timeout + 60
        )
        step.detail = {"settled": settled, "quiet_window_seconds": quiet, "timeout_seconds": timeout}
        return step

    def steady(self, seconds: float, label: str = "") -> StepResult:
        """Nothing changes for ``seconds``; also counts the Deployment watch events the API server sent meanwhile,
        so operator requests can be told apart from reactions to real changes."""
        watcher = subprocess.Popen(
            [str(ensure_binaries().kubectl), f"--kubeconfig={self.cp.kubeconfig}", "get", "deployments", "-n",
             self.namespace, "--watch-only", "--output-watch-events", "-o", "name"],
            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
        )  # fmt: skip
        try:
            step = self.measure(
                f"steady state {seconds:.0f}s{label}", lambda: time.sleep(seconds), lambda: True, seconds + 10
            )
        finally:
            watcher.terminate()
            events = len(watcher.communicate(timeout=30)[0].split())
        step.detail = {
            "requests_per_minute": round(step.total_requests() / (step.seconds / 60), 1),
            "deployment_watch_events": events,
        }
        return step

    def delete(self, name: str, timeout: float = 600.0) -> StepResult:
        selector = f"{PACK_LABEL}={name}"

        def gone() -> bool:
            return all(self.count(kind, selector) == 0 for kind in ("deployments", "services", "configmaps", "pods"))

        step = self.measure(
            "delete pack and GC",
            lambda: self.cp.kubectl("delete", "modelpacks.modelpack.dev", name, "-n", self.namespace, "--wait=false"),
            gone,
            timeout,
        )
        return step
