"""`modelpack plan`: which instance family and how many nodes serve N models at a target rate, at what cost.

Sized from a throughput that met an SLO (a results file, or --rps-per-server stated by the user), never
from one that broke it. Options are ranked by hourly cost; --json prints the same as data.
"""

from __future__ import annotations

import argparse
import json
from dataclasses import asdict
from typing import Any, get_args

from kubernetes.utils.quantity import parse_quantity
from rich.console import Console
from rich.table import Table

from modelpack.api.modelpack import ServerSpec
from modelpack.cli.errors import CliError
from modelpack.plan import (
    MeasurementError,
    PlanError,
    PlanOption,
    PlanRequest,
    ServerShape,
    SloBounds,
    plan,
    read_measurement,
)
from modelpack.plan.measurement import Measurement
from modelpack.pricing import ComputeType, PriceError, PriceTable, default_price_table, load_price_table
from modelpack.serving import memory_request

DEFAULT_SERVER_CPU = "2"
DEFAULT_SERVER_MEMORY = memory_request(ServerSpec().memory_budget)
"""What the operator's default server requests: the default memoryBudget + the default overhead."""


def register(parser: argparse.ArgumentParser) -> None:
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument(
        "--results",
        metavar="FILE",
        help="load-test results: results.json from `modelpack run`, or a LoadTest (with status) as YAML/JSON",
    )
    source.add_argument(
        "--rps-per-server", type=float, metavar="RPS", help="throughput of one server pod within your SLO, req/s"
    )
    parser.add_argument("--models", type=int, required=True, help="how many distinct models the fleet serves")
    parser.add_argument(
        "--target-rps", type=float, required=True, help="requests per second the whole fleet must serve"
    )
    parser.add_argument("--models-per-server", type=int, help="packing density (default: the measured pack's, else 16)")
    parser.add_argument(
        "--measured-servers",
        type=int,
        metavar="N",
        help="server pods that produced the measured throughput (default: from the ModelPack in the results)",
    )
    parser.add_argument(
        "--compute",
        choices=get_args(ComputeType),
        help="compute the throughput was measured on (default: the measured ModelPack's)",
    )
    parser.add_argument("--family", action="append", default=[], help="only this instance family (repeatable)")
    parser.add_argument(
        "--server-cpu", help=f"CPU each server requests (default: measured pack's, else {DEFAULT_SERVER_CPU})"
    )
    parser.add_argument(
        "--server-memory", help=f"memory each server requests (default: measured pack's, else {DEFAULT_SERVER_MEMORY})"
    )
    parser.add_argument(
        "--accelerators-per-server", type=int, help="Neuron devices / GPUs per server (inferentia, gpu; default 1)"
    )
    parser.add_argument("--slo-p50-ms", type=float, help="accept results only if p50 latency is at most this")
    parser.add_argument("--slo-p90-ms", type=float, help="accept results only if p90 latency is at most this")
    parser.add_argument("--slo-p99-ms", type=float, help="accept results only if p99 latency is at most this")
    parser.add_argument("--slo-max-error-rate", type=float, help="accept results only if errors/requests <= this")
    parser.add_argument("--prices", metavar="FILE", help="price table YAML (default: the shipped us-east-1 table)")
    parser.add_argument("--top", type=int, default=10, help="show this many options (default 10)")
    parser.add_argument("--json", action="store_true", help="print the plan as JSON")


def _bounds(args: argparse.Namespace) -> SloBounds:
    for flag in ("slo_p50_ms", "slo_p90_ms", "slo_p99_ms"):
        value = getattr(args, flag)
        if value is not None and not value > 0:
            raise CliError(f"--{flag.replace('_', '-')} must be greater than 0, got {value:g}")
    if args.slo_max_error_rate is not None and not 0 <= args.slo_max_error_rate <= 1:
        raise CliError(f"--slo-max-error-rate must be between 0 and 1, got {args.slo_max_error_rate:g}")
    return SloBounds(args.slo_p50_ms, args.slo_p90_ms, args.slo_p99_ms, args.slo_max_error_rate)


def _quantity(flag: str, text: str, millis: bool) -> int:
    try:
        value = parse_quantity(text)
    except ValueError:
        raise CliError(f"{flag}: {text!r} is not a Kubernetes quantity (e.g. 2, 500m, 4Gi)") from None
    if value <= 0:
        raise CliError(f"{flag} must be greater than 0, got {text!r}")
    return int(value * 1000) if millis else int(value)


def _server_shape(args: argparse.Namespace, measured: Measurement | None, compute: ComputeType) -> ServerShape:
    base = measured.server if measured else None
    cpu = (
        _quantity("--server-cpu", args.server_cpu, millis=True)
        if args.server_cpu
        else (base.cpu_millicores if base and base.cpu_millicores else int(parse_quantity(DEFAULT_SERVER_CPU) * 1000))
    )
    memory = (
        _quantity("--server-memory", args.server_memory, millis=False)
        if args.server_memory
        else (base.memory_bytes if base and base.memory_bytes else int(parse_quantity(DEFAULT_SERVER_MEMORY)))
    )
    if args.accelerators_per_server is not None:
        if compute not in ("inferentia", "gpu"):
            raise CliError(f"--accelerators-per-server applies to inferentia and gpu compute, not {compute}")
        accelerators = args.accelerators_per_server
    elif compute in ("inferentia", "gpu"):
        accelerators = base.accelerators if base and base.accelerators else 1
    else:
        accelerators = 0
    return ServerShape(cpu_millicores=cpu, memory_bytes=memory, accelerators=accelerators)


def _prices(args: argparse.Namespace) -> PriceTable:
    try:
        return load_price_table(args.prices) if args.prices else default_price_table()
    except PriceError as err:
        raise CliError(f"--prices: {err}") from None


def build_request(args: argparse.Namespace) -> tuple[PlanRequest, Measurement | None, float]:
    """The sizing request the flags and results describe, and the per-server throughput it rests on."""
    bounds = _bounds(args)
    measured: Measurement | None = None
    if args.results:
        try:
            measured = read_measurement(args.results, bounds)
        except MeasurementError as err:
            raise CliError(f"--results {err}") from None
        pods = args.measured_servers or measured.server_pods
        if pods is None:
            raise CliError(
                f"--results {measured.source}: cannot tell how many server pods produced the measured throughput; "
                "pass --measured-servers N or put the ModelPack in the results file"
            )
        if pods < 1:
            raise CliError(f"--measured-servers must be at least 1, got {pods}")
        rps_per_server = measured.throughput / pods
    else:
        if bounds.any():
            raise CliError("--slo-* bounds check results: they need --results, not --rps-per-server")
        rps_per_server = args.rps_per_server
        if not rps_per_server > 0:
            raise CliError(f"--rps-per-server must be greater than 0, got {rps_per_server:g}")
    compute = args.compute or (measured.compute if measured else None)
    if compute is None:
        raise CliError(
            "--compute is required: the throughput is only valid on the compute it was measured on "
            "(graviton, x86, inferentia or gpu), and the results do not include the ModelPack"
        )
    if measured and measured.compute and args.compute and args.compute != measured.compute:
        raise CliError(
            f"--compute {args.compute} contradicts the measured ModelPack (compute.type {measured.compute}); "
            "a throughput measured on one compute does not size another"
        )
    mps = args.models_per_server or (measured.models_per_server if measured else None) or 16
    request = PlanRequest(
        models=args.models,
        models_per_server=mps,
        target_rps=args.target_rps,
        rps_per_server=rps_per_server,
        compute=compute,
        server=_server_shape(args, measured, compute),
        families=tuple(args.family),
    )
    return request, measured, rps_per_server


def _as_json(
    request: PlanRequest, measured: Measurement | None, options: list[PlanOption], prices: PriceTable
) -> dict[str, Any]:
    return {
        "inputs": {
            "models": request.models,
            "modelsPerServer": request.models_per_server,
            "targetRps": request.target_rps,
            "rpsPerServer": request.rps_per_server,
            "compute": request.compute,
            "server": asdict(request.server),
            "results": measured.source if measured else None,
            "sloBasis": measured.basis if measured else "--rps-per-server (stated, not measured)",
        },
        "prices": {"source": prices.describe_source(), "currency": prices.currency, "region": prices.region},
        "options": [asdict(o) for o in options],
    }


def _print_table(
    request: PlanRequest, measured: Measurement | None, options: list[PlanOption], prices: PriceTable, top: int
) -> None:
    console = Console()
    if not console.is_terminal:
        console.width = 160  # pipes and files get the whole table, not an 80-column squeeze
    basis = f"{measured.source}, met {measured.basis}" if measured else "--rps-per-server (stated)"
    first = options[0]
    console.print(
        f"[bold]{request.models}[/] models at {request.models_per_server} per server -> {first.server_groups} servers "
        f"x {first.replicas_per_group} replicas = {first.server_pods} server pods, for {request.target_rps:g} req/s "
        f"at {request.rps_per_server:.4g} req/s per server ({basis})"
    )
    table = Table(title=f"{request.compute} options, cheapest first ({prices.currency})")
    for col in ("#", "instance", "servers/node", "limited by", "nodes", "per hour", "per month", "per 1M req", "fill"):
        table.add_column(col, justify="left" if col in ("instance", "limited by") else "right", no_wrap=True)
    for rank, o in enumerate(options[:top], start=1):
        table.add_row(
            str(rank),
            o.instance_type,
            str(o.servers_per_node),
            o.limited_by,
            str(o.nodes),
            f"{o.hourly_cost:,.2f}",
            f"{o.monthly_cost:,.0f}",
            f"{o.cost_per_million_requests:.4f}",
            f"{o.utilization:.0%}",
        )
    console.print(table)
    console.print(f"Prices: {prices.describe_source()}")
    if not prices.verified:
        console.print("[yellow]The price table is marked unverified: check it against AWS before deciding.[/]")


def run(args: argparse.Namespace) -> int:
    if args.top < 1:
        raise CliError(f"--top must be at least 1, got {args.top}")
    prices = _prices(args)
    request, measured, _ = build_request(args)
    try:
        options = plan(request, prices)
    except PlanError as err:
        raise CliError(str(err)) from None
    if args.json:
        print(json.dumps(_as_json(request, measured, options, prices), indent=2))
    else:
        _print_table(request, measured, options, prices, args.top)
    return 0
