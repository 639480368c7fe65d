"""The dashboard and the SLO rules against a real Prometheus (built from Go modules) scraping a real model server and
the operator's metrics endpoint on loopback: every expression parses, names only exported or recorded metrics, and
evaluates; every recording rule evaluates without error; promtool accepts the rules file and the rendered rule."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from model_server.fleet import build_fleet
from tests.cluster.binaries import PrometheusBinaries, ensure_prometheus
from tests.cluster.process import free_port
from tests.cluster.wait import wait_for
from tests.helm.helmcli import of_kind, render
from tests.helm.monitoring import (
    RULES,
    dashboard_expressions,
    exported_metrics,
    recorded_metrics,
    rule_expressions,
    rule_groups,
    selector_names,
)
from tests.model_server.conftest import TINY, ServerProcess
from tests.model_server.helpers import tensor_body
from tests.processes import die_with_parent

# What the chart's PodMonitor relabelling puts on a server pod's series (test_chart_monitoring checks the relabelling).
POD_LABELS = {"namespace": "team-a", "pack": "bert", "server": "0", "pod": "bert-0-abc12"}
OPERATOR_SCRIPT = """
import sys, time
from modelpack_operator import metrics
for kind in ("ModelPack", "LoadTest"):
    with metrics.timed(kind):
        pass
metrics.serve(int(sys.argv[1]))
print("serving", flush=True)
time.sleep(3600)
"""


@pytest.fixture(scope="module")
def prom_bins() -> PrometheusBinaries:
    return ensure_prometheus()


@pytest.fixture(scope="module")
def model_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    """Three models and room for two, so the scrape sees loads, evictions, cache hits and misses."""
    store = tmp_path_factory.mktemp("prom-store")
    build_fleet(store, ["m-a", "m-b", "m-c"], TINY)
    server = ServerProcess(["--store", str(store), "--models", "m-a,m-b,m-c", "--memory-budget", "7Mi"])
    try:
        yield server
    finally:
        server.stop()


def _traffic(server: ServerProcess, rounds: int) -> bool:
    """Requests between scrapes, so rates over them are not zero: m-a stays hot, m-b and m-c evict each other."""
    for _ in range(rounds):
        for name in ("m-a", "m-b", "m-a", "m-c", "m-a"):
            assert server.client.post(f"/v2/models/{name}/infer", json=tensor_body()).status_code == 200
    return True


@pytest.fixture(scope="module")
def operator_metrics_port() -> Iterator[int]:
    port = free_port()
    proc = subprocess.Popen(
        die_with_parent([sys.executable, "-c", OPERATOR_SCRIPT, str(port)]),
        stdout=subprocess.PIPE,
        text=True,
        env={**os.environ},
    )
    try:
        assert proc.stdout is not None and proc.stdout.readline().strip() == "serving"
        yield port
    finally:
        proc.kill()
        proc.wait()


@pytest.fixture(scope="module")
def prometheus(
    prom_bins: PrometheusBinaries,
    model_server: ServerProcess,
    operator_metrics_port: int,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[httpx.Client]:
    work = tmp_path_factory.mktemp("prometheus")
    # The chart's groups evaluate every 30 s; here every second, so the test does not wait for a first evaluation.
    fast = [{**group, "interval": "1s"} for group in rule_groups()]
    (work / "rules.yaml").write_text(yaml.safe_dump({"groups": fast}))
    config = {
        "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
        "rule_files": [str(work / "rules.yaml")],
        "scrape_configs": [
            {
                "job_name": "model-servers",
                "static_configs": [{"targets": [f"127.0.0.1:{model_server.port}"], "labels": POD_LABELS}],
            },
            {"job_name": "operator", "static_configs": [{"targets": [f"127.0.0.1:{operator_metrics_port}"]}]},
        ],
    }
    (work / "prometheus.yml").write_text(yaml.safe_dump(config))
    port = free_port()
    log = (work / "prometheus.log").open("w")
    cmd = [
        str(prom_bins.prometheus),
        f"--config.file={work / 'prometheus.yml'}",
        f"--storage.tsdb.path={work / 'data'}",
        f"--web.listen-address=127.0.0.1:{port}",
    ]
    proc = subprocess.Popen(die_with_parent(cmd), stdout=log, stderr=subprocess.STDOUT)
    client = httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=10)

    def ready() -> bool:
        if proc.poll() is not None:
            raise AssertionError(f"prometheus exited {proc.returncode}:\n{(work / 'prometheus.log').read_text()}")
        try:
            return client.get("/-/ready").status_code == 200
        except httpx.TransportError:
            return False

    try:
        wait_for(ready, "Prometheus ready", timeout=60)
        # Both targets up, and enough samples for rate() over them (two scrapes at least) and for rules to run.
        wait_for(lambda: _vector(client, "count(up == 1)") == [2.0], "both scrape targets up", timeout=60)
        # Traffic spread over several 1 s scrapes, then the p99 rule must have seen it.
        wait_for(
            lambda: _traffic(model_server, 2) and _finite(client, 'modelpack:request_seconds:p99_5m{pack="bert"}'),
            "the p99 rule to see requests",
            timeout=60,
        )
        try:
            wait_for(lambda: not _unrecorded(client), "every recording rule wrote a series", timeout=60)
        except TimeoutError as err:
            raise AssertionError(f"{err}; no series for {_unrecorded(client)}") from None
        yield client
    finally:
        client.close()
        proc.terminate()
        proc.wait(30)
        log.close()


def _api(client: httpx.Client, path: str, **params: str) -> Any:
    body = client.get(f"/api/v1/{path}", params=params).json()
    assert body["status"] == "success", body
    return body["data"]


def _vector(client: httpx.Client, query: str) -> list[float]:
    return [float(s["value"][1]) for s in _api(client, "query", query=query)["result"]]


def _finite(client: httpx.Client, query: str) -> bool:
    values = _vector(client, query)
    return bool(values) and all(v == v for v in values)  # NaN != NaN


def _unrecorded(client: httpx.Client) -> list[str]:
    return sorted(name for name in recorded_metrics() if not _vector(client, f"count({{__name__={name!r}}})"))


def test_every_dashboard_and_rule_expression_parses_and_names_only_exported_metrics(
    prometheus: httpx.Client,
) -> None:
    allowed = exported_metrics() | recorded_metrics()
    expressions = {**dashboard_expressions(), **rule_expressions()}
    assert len(expressions) > 20
    unknown = {}
    for where, expr in expressions.items():
        names = selector_names(_api(prometheus, "parse_query", query=expr))
        assert names, f"{where}: no metric selector in {expr!r}"
        if names - allowed:
            unknown[where] = sorted(names - allowed)
    assert unknown == {}


def test_every_named_metric_is_really_scraped(prometheus: httpx.Client) -> None:
    """The names are not just in the registry: the running server and operator expose them (with the pod's labels)."""
    expressions = {**dashboard_expressions(), **rule_expressions()}
    named = set().union(*(selector_names(_api(prometheus, "parse_query", query=e)) for e in expressions.values()))
    missing = [n for n in sorted(named) if not _vector(prometheus, f"count({{__name__={n!r}}})")]
    assert missing == []
    (series,) = _api(prometheus, "series", **{"match[]": "modelpack_models_registered"})
    assert POD_LABELS.items() <= series.items()


def test_every_expression_evaluates_with_data(prometheus: httpx.Client) -> None:
    empty = []
    for where, expr in {**dashboard_expressions(), **rule_expressions()}.items():
        if not _api(prometheus, "query", query=expr)["result"]:
            empty.append(where)
    # Only the refusals have nothing to rate: this server never refused a request.
    assert all("Refused" in where for where in empty), empty


def test_every_recording_rule_is_healthy(prometheus: httpx.Client) -> None:
    groups = _api(prometheus, "rules", type="record")["groups"]
    rules = [rule for group in groups for rule in group["rules"]]
    assert {r["name"] for r in rules} == recorded_metrics()
    assert [(r["name"], r.get("lastError")) for r in rules if r["health"] != "ok"] == []
    (p99,) = _vector(prometheus, 'modelpack:request_seconds:p99_5m{pack="bert"}')
    assert 0 < p99 <= 10


def test_an_unknown_metric_or_bad_syntax_is_caught(prometheus: httpx.Client) -> None:
    names = selector_names(_api(prometheus, "parse_query", query="rate(modelpack_no_such_total[1m]) / on() up"))
    assert names - exported_metrics() == {"modelpack_no_such_total", "up"}
    body = prometheus.get("/api/v1/parse_query", params={"query": "sum by (pack (modelpack_requests_total)"}).json()
    assert body["status"] == "error" and "parse error" in body["error"]


def test_promtool_accepts_the_rules_file_and_the_rendered_prometheus_rule(
    prom_bins: PrometheusBinaries, tmp_path: Path
) -> None:
    (rule,) = of_kind(render("monitoring.rules.enabled=true"), "PrometheusRule")
    rendered = tmp_path / "rendered.yaml"
    rendered.write_text(yaml.safe_dump(rule["spec"]))
    for path in (RULES, rendered):
        proc = subprocess.run(
            [str(prom_bins.promtool), "check", "rules", str(path)], capture_output=True, text=True, check=False
        )
        assert proc.returncode == 0, proc.stdout + proc.stderr
        assert f"SUCCESS: {len(recorded_metrics())} rules found" in proc.stdout
    broken = tmp_path / "broken.yaml"
    broken.write_text(yaml.safe_dump({"groups": [{"name": "x", "rules": [{"record": "a:b", "expr": "sum(("}]}]}))
    proc = subprocess.run([str(prom_bins.promtool), "check", "rules", str(broken)], capture_output=True, text=True)
    assert proc.returncode != 0 and "parse error" in proc.stdout + proc.stderr


def test_promtool_unit_tests_of_the_slo_rules_pass(prom_bins: PrometheusBinaries) -> None:
    """Synthetic series with known answers (fixtures/rules_test.yaml), a pack without 5xx records 0, not nothing."""
    suite = Path(__file__).with_name("fixtures") / "rules_test.yaml"
    proc = subprocess.run([str(prom_bins.promtool), "test", "rules", str(suite)], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "SUCCESS" in proc.stdout
