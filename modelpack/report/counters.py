"""Per-server figures a person reads, derived from the counters `modelpack serve` exports on /metrics.

Counters are differences over the run (end minus start scrape); gauges are read at the end. Means
come from Prometheus histogram ``_sum``/``_count`` pairs. A metric a server does not export shows
as "-" rather than a misleading zero.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from modelpack.report.data import ServerInfo

P = "modelpack_"


def _sum(metrics: Mapping[str, float], prefix: str) -> float | None:
    """A counter summed over its labels (``name{...}`` keys), None when absent."""
    values = [v for k, v in metrics.items() if k == prefix or k.startswith(prefix + "{")]
    return sum(values) if values else None


def _one(metrics: Mapping[str, float], key: str) -> float | None:
    return metrics.get(key)


def _mean_ms(delta: Mapping[str, float], base: str) -> str:
    total, count = delta.get(f"{base}_sum"), delta.get(f"{base}_count")
    if total is None or not count:
        return "-"
    return f"{1000.0 * total / count:.1f} ms"


def _int(value: float | None) -> str:
    return "-" if value is None else f"{value:.0f}"


def server_rows(server: ServerInfo) -> list[tuple[str, str]]:
    delta = server.metrics_delta()
    end = server.metrics_end
    hits = _one(delta, f'{P}model_cache_total{{result="hit"}}')
    misses = _one(delta, f'{P}model_cache_total{{result="miss"}}')
    batches = delta.get(f"{P}batch_size_count")
    batched = delta.get(f"{P}batch_size_sum")
    return [
        ("requests answered", _int(_sum(delta, f"{P}requests_total"))),
        ("cache hits", _int(hits)),
        ("cache misses", _int(misses)),
        ("model loads", _int(_sum(delta, f"{P}model_loads_total"))),
        ("mean load time", _mean_ms(delta, f"{P}model_load_seconds")),
        ("evictions", _int(_sum(delta, f"{P}model_evictions_total"))),
        ("queue rejections (503)", _int(_sum(delta, f"{P}queue_rejections_total"))),
        ("mean batch size", f"{batched / batches:.2f}" if batches and batched is not None else "-"),
        ("mean queue wait", _mean_ms(delta, f"{P}queue_seconds")),
        ("models in memory at end", _int(_one(end, f"{P}models_loaded"))),
        ("model memory at end", _mib(_one(end, f"{P}model_memory_bytes"))),
    ]


def _mib(value: float | None) -> str:
    return "-" if value is None else f"{value / 2**20:.1f} MiB"


def table(servers: Sequence[ServerInfo]) -> tuple[list[str], list[tuple[str, list[str]]]]:
    """Header (server names) and rows (label, one value per server); rows no server exports are dropped."""
    per_server = [dict(server_rows(s)) for s in servers]
    labels = [label for label, _ in server_rows(servers[0])] if servers else []
    rows = [(label, [p[label] for p in per_server]) for label in labels]
    return [s.name for s in servers], [(label, values) for label, values in rows if any(v != "-" for v in values)]
