"""Operator settings, grouped by what they tune, read from ``MODELPACK_<GROUP>_<FIELD>`` environment variables.

The Helm chart sets these as env on the operator Deployment; every field has a default that works on
EKS, so an empty environment is a valid configuration. A malformed value is refused at start with the
variable's name, never half-applied.
"""

from __future__ import annotations

import dataclasses
import json
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, TypeVar, get_type_hints

from modelpack.api.base import parse_quantity
from modelpack.api.limits import DEFAULT_MAX_MODELS_PER_PACK, DEFAULT_MAX_SERVERS_PER_PACK
from modelpack.serving import DEFAULT_MEMORY_OVERHEAD

MIN_SHARD_BYTES = 256
"""Smallest route-table shard setting accepted: below it no shard could hold even a small server's routes."""


class SettingsError(ValueError):
    """An environment variable holds a value the operator cannot use; the message names the variable."""


MAX_DRAIN_SECONDS = 300
"""Longest preStop pause accepted: beyond it a rolling update of a large pack would take hours."""


@dataclass(frozen=True)
class ServerSettings:
    """How model server pods are shaped beyond what the ModelPack spec says."""

    memory_overhead: str = DEFAULT_MEMORY_OVERHEAD
    """Added to ``server.memoryBudget`` for the memory request: Python, torch and request buffers (measured)."""
    cache_size: str = "8Gi"
    """sizeLimit of the emptyDir that caches model artifacts read from s3:// stores."""
    tmp_size: str = "1Gi"
    """sizeLimit of the writable /tmp emptyDir (the root filesystem is read-only)."""
    neuron_image_suffix: str = "-neuron"
    """Appended to the server image tag for compute type inferentia (the Neuron SDK build)."""
    gpu_image_suffix: str = "-cuda"
    """Appended to the server image tag for compute type gpu (the CUDA torch build)."""
    run_as_user: int = 10001
    """UID the server runs as (non-root; matches Dockerfile.server)."""
    cluster_domain: str = "cluster.local"
    """Cluster DNS domain used in route-table URLs."""
    startup_seconds: int = 900
    """How long a server may take to become live (preloading many models) before Kubernetes restarts it."""
    drain_seconds: int = 5
    """A stopping server pod keeps serving this long before its SIGTERM (a preStop sleep), while Services and
    kube-proxy drop it from their endpoints; the server then finishes in-flight requests. Rolling updates and
    scale-ins lose no request. 0: no pause (SIGTERM at once)."""

    def __post_init__(self) -> None:
        if not 0 <= self.drain_seconds <= MAX_DRAIN_SECONDS:
            name = env_name("SERVER", "drain_seconds")
            raise SettingsError(f"{name}={self.drain_seconds}: must be from 0 to {MAX_DRAIN_SECONDS}")

    default_image: str = ""
    """Replaces the API's default server image (e.g. a private mirror); images set in a ModelPack are kept."""
    service_account: str = "modelpack-server"
    """ServiceAccount of server pods. The default is one the operator makes in each pack's namespace with no
    rights and no token mounted; set one with IRSA or EKS Pod Identity to read s3:// stores (their webhooks
    project their own token, so the API token stays unmounted either way)."""
    manage_service_account: bool = True
    """Create ``service_account`` (no RBAC, automountServiceAccountToken false) in a pack's namespace when
    missing; the chart turns this off when it creates the accounts itself or names an existing one."""


@dataclass(frozen=True)
class WorkerSettings:
    """How LoadTest worker Jobs are shaped."""

    image: str = "ghcr.io/modelpack/operator:0.1.0"
    """Image of the workers: the operator image (it carries `modelpack worker`)."""
    service_account: str = "modelpack-loadtest-worker"
    """ServiceAccount of worker pods; its Role allows only writing result ConfigMaps."""
    start_delay_seconds: float = 20.0
    """Workers start sending at Job creation + this delay, so pods scheduled at different times start together."""
    backoff_limit: int = 1
    """Retries per worker index before the Job (and so the LoadTest) fails."""
    cpu: str = "1"
    """CPU request of each worker pod."""
    memory: str = "512Mi"
    """Memory request and limit of each worker pod."""
    node_selector: dict[str, str] = field(default_factory=dict)
    """Where workers run, e.g. a dedicated load-generator node group, so they do not steal CPU from servers."""
    manage_rbac: bool = True
    """Create the worker ServiceAccount, Role and RoleBinding in each LoadTest's namespace when missing."""


@dataclass(frozen=True)
class ReconcileSettings:
    """How often and how far the operator reconciles."""

    resync_seconds: float = 60.0
    """Every object is reconciled at least this often even without events (drift, retries)."""
    routes_in_status_max: int = 64
    """Packs with at most this many models also list their routes in status."""
    workers: int = 8
    """Threads running reconciles; API calls are blocking, so this bounds concurrent API calls."""
    apply_concurrency: int = 8
    """Writes in flight at once while reconciling one object (a new 200-server pack is 400 writes)."""
    pricing_configmap: str = ""
    """``namespace/name`` of the ConfigMap holding the price table (key prices.yaml); empty: the built-in table."""
    pod_check_after_seconds: float = 60.0
    """A server unavailable this long has its pods read, so the pack says why (crash, image pull, store)."""
    route_table_shard_bytes: int = 1_000_000
    """Bytes of data (routes + placement) per route-table ConfigMap before the table is split (lower it where
    etcd's request limit is lower)."""

    def __post_init__(self) -> None:
        if self.route_table_shard_bytes < MIN_SHARD_BYTES:
            name = env_name("RECONCILE", "route_table_shard_bytes")
            raise SettingsError(f"{name}={self.route_table_shard_bytes}: must be at least {MIN_SHARD_BYTES}")


@dataclass(frozen=True)
class LimitSettings:
    """What one object may cost the operator, checked before any work (the chart's ValidatingAdmissionPolicy
    refuses the same objects at admission; these catch packs admitted without it)."""

    max_models_per_pack: int = DEFAULT_MAX_MODELS_PER_PACK
    """Most models one ModelPack may hold (the API's own ceiling is 100,000)."""
    max_servers_per_pack: int = DEFAULT_MAX_SERVERS_PER_PACK
    """Most servers (Deployments) one ModelPack may have (the API's own ceiling is 10,000)."""

    def __post_init__(self) -> None:
        for name, value, ceiling in (
            ("max_models_per_pack", self.max_models_per_pack, 100_000),
            ("max_servers_per_pack", self.max_servers_per_pack, 10_000),
        ):
            if not 1 <= value <= ceiling:
                raise SettingsError(f"{env_name('LIMITS', name)}={value}: must be from 1 to {ceiling}")


@dataclass(frozen=True)
class OperatorSettings:
    """Everything the operator reads from its environment."""

    server: ServerSettings = field(default_factory=ServerSettings)
    worker: WorkerSettings = field(default_factory=WorkerSettings)
    reconcile: ReconcileSettings = field(default_factory=ReconcileSettings)
    limits: LimitSettings = field(default_factory=LimitSettings)

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> OperatorSettings:
        source = os.environ if env is None else env
        return cls(
            server=_group(ServerSettings, "SERVER", source),
            worker=_group(WorkerSettings, "WORKER", source),
            reconcile=_group(ReconcileSettings, "RECONCILE", source),
            limits=_group(LimitSettings, "LIMITS", source),
        )


def env_name(group: str, field_name: str) -> str:
    """The variable that sets one field, e.g. ``MODELPACK_WORKER_START_DELAY_SECONDS``."""
    return f"MODELPACK_{group}_{field_name.upper()}"


T = TypeVar("T")


def _group(cls: type[T], group: str, env: Mapping[str, str]) -> T:
    hints = get_type_hints(cls)
    values: dict[str, Any] = {}
    for f in dataclasses.fields(cls):  # type: ignore[arg-type]
        name = env_name(group, f.name)
        if name in env:
            values[f.name] = _parse(name, env[name], hints[f.name])
    return cls(**values)


def _parse(name: str, raw: str, hint: Any) -> Any:
    text = raw.strip()
    try:
        if hint is bool:
            if text.lower() in ("1", "true", "yes", "on"):
                return True
            if text.lower() in ("0", "false", "no", "off", ""):
                return False
            raise ValueError("expected true or false")
        if hint is int:
            return int(text)
        if hint is float:
            return float(text)
        if hint == dict[str, str]:
            value = json.loads(text) if text else {}
            if not isinstance(value, dict) or not all(isinstance(v, str) for v in value.values()):
                raise ValueError('expected a JSON object of strings, e.g. {"pool": "loadgen"}')
            return value
        if name.endswith(("_SIZE", "_OVERHEAD", "_MEMORY")):
            parse_quantity(text)
        return text
    except (ValueError, json.JSONDecodeError) as err:
        raise SettingsError(f"{name}={raw!r}: {err}") from None
