"""Prometheus metrics of one server. No per-model labels: a pod may hold thousands of models, and
per-model series would multiply Prometheus's load by that; per-model detail is in the repository index."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

_LATENCY_BUCKETS = (0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0, 2.0, 5.0, 10.0)
_BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256)


class ServerMetrics:
    """Each app owns a registry, so several apps in one process (tests) never collide."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.requests = Counter("modelpack_requests", "Inference requests by HTTP status code.", ["code"], registry=r)
        self.in_flight = Gauge(
            "modelpack_requests_in_flight",
            "Inference requests being answered now, queued or running (spec.autoscaling.targetInFlight scales on it).",
            registry=r,
        )
        self.request_seconds = Histogram(
            "modelpack_request_seconds",
            "Inference request latency, end to end in the server.",
            buckets=_LATENCY_BUCKETS,
            registry=r,
        )
        self.queue_seconds = Histogram(
            "modelpack_queue_seconds",
            "Time a request waited in its model's batch queue.",
            buckets=_LATENCY_BUCKETS,
            registry=r,
        )
        self.compute_seconds = Histogram(
            "modelpack_compute_seconds", "Forward-pass time of one batch.", buckets=_LATENCY_BUCKETS, registry=r
        )
        self.batch_size = Histogram(
            "modelpack_batch_size", "Rows per executed batch.", buckets=_BATCH_BUCKETS, registry=r
        )
        self.loads = Counter("modelpack_model_loads", "Model loads by result.", ["result"], registry=r)
        self.load_seconds = Histogram(
            "modelpack_model_load_seconds",
            "Time to load a model from the store, once started (waiting is modelpack_model_load_wait_seconds).",
            buckets=_LATENCY_BUCKETS,
            registry=r,
        )
        self.load_wait_seconds = Histogram(
            "modelpack_model_load_wait_seconds",
            "Time a model load waited for a load thread or for memory before it started.",
            buckets=_LATENCY_BUCKETS,
            registry=r,
        )
        self.evictions = Counter("modelpack_model_evictions", "Models evicted to stay within the budget.", registry=r)
        self.cache = Counter(
            "modelpack_model_cache",
            "Requests finding their model loaded (hit) or not (miss).",
            ["result"],
            registry=r,
        )
        self.bytes_loaded = Counter(
            "modelpack_model_loaded_bytes", "Parameter and buffer bytes loaded, cumulative.", registry=r
        )
        self.models_loaded = Gauge("modelpack_models_loaded", "Models in memory now.", registry=r)
        self.models_loaded_by_precision = Gauge(
            "modelpack_models_loaded_by_precision",
            "Models in memory now by artifact precision (fp32, int8-dynamic, bf16; plain: not optimized).",
            ["precision"],
            registry=r,
        )
        self.models_registered = Gauge("modelpack_models_registered", "Models registered.", registry=r)
        self.memory_used = Gauge(
            "modelpack_model_memory_bytes", "Parameter and buffer bytes of loaded models.", registry=r
        )
        self.memory_budget = Gauge("modelpack_model_memory_budget_bytes", "The memory budget.", registry=r)
        self.load_rejections = Counter(
            "modelpack_load_rejections",
            "Requests refused because too many models were already waiting to load.",
            registry=r,
        )
        self.queue_full = Counter(
            "modelpack_queue_rejections", "Requests refused because their model's queue was full.", registry=r
        )
