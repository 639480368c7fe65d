"""`modelpack loadgen`: open-loop (constant-rate), closed-loop (concurrency) or sweep load against V2 servers.

Exit codes: 0 done (SLO met or none set), 1 SLO missed or target unusable (unreachable, unknown model),
2 bad flags or spec, 130 interrupted (partial results are still printed and written).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import signal
import sys
from pathlib import Path
from typing import Any

from pydantic import ValidationError
from rich.console import Console

from modelpack.api.base import parse_duration
from modelpack.api.loading import InvalidObjectError, format_validation_error, load_file
from modelpack.api.loadtest import LoadTest, LoadTestSpec
from modelpack.cli.errors import CliError

LOAD_FLAGS = (
    "mode", "rate", "concurrency", "arrival", "duration", "warmup", "timeout", "max_in_flight", "stage", "sweep_start",
    "sweep_step", "sweep_max", "sweep_step_duration", "spread", "zipf_exponent", "seed", "slo_p50_ms", "slo_p90_ms",
    "slo_p99_ms", "slo_max_error_rate", "slo_min_throughput", "payload_file", "text", "batch_size",
)  # fmt: skip
DEFAULTS: dict[str, Any] = {"mode": "constant-rate", "arrival": "uniform", "duration": "30s", "warmup": "5s"}
DEFAULTS |= {"timeout": "10s", "max_in_flight": 1000, "spread": "uniform", "zipf_exponent": 1.1, "seed": 0}
DEFAULTS |= {"batch_size": 1}
FIELD_TO_FLAG = {
    "load.duration": "--duration",
    "load.warmup": "--warmup",
    "load.timeout": "--timeout",
    "load.sweep.stepDuration": "--sweep-step-duration",
    "load.sweep.startRate": "--sweep-start",
    "load.sweep.maxRate": "--sweep-max",
    "the stages' total duration": "the --stage durations",
}


def register(parser: argparse.ArgumentParser) -> None:
    t = parser.add_argument_group("targets")
    t.add_argument("--url", action="append", default=[], metavar="URL", help="V2 server base URL (repeatable)")
    t.add_argument("--model", action="append", default=[], metavar="NAME", help="model at every --url (repeatable)")
    t.add_argument(
        "--models-from-server", action="store_true", help="every servable (not FAILED) model in each server's index"
    )
    t.add_argument("--loadtest", metavar="FILE", help="a LoadTest YAML; its spec replaces the load flags")
    t.add_argument("--spread", choices=["uniform", "zipf", "round-robin"], help="how requests spread over models")
    t.add_argument("--zipf-exponent", type=float, help="skew of --spread zipf (default 1.1)")
    t.add_argument("--seed", type=int, help="seed of the spread and the payloads (default 0)")
    ld = parser.add_argument_group("load")
    ld.add_argument("--mode", choices=["constant-rate", "concurrency", "sweep"], help="default constant-rate")
    ld.add_argument("--rate", type=float, help="requests per second, all processes together (constant-rate)")
    ld.add_argument("--arrival", choices=["uniform", "poisson"], help="send times: evenly spaced or Poisson")
    ld.add_argument("--concurrency", type=int, help="requests in flight (concurrency mode)")
    ld.add_argument(
        "--stage", action="append", metavar="DURATION:VALUE", help="ramp stage, e.g. 10s:100 (rate or concurrency)"
    )
    ld.add_argument("--duration", help="measured duration after warm-up (default 30s)")
    ld.add_argument("--warmup", help="load sent first and left out of results (default 5s)")
    ld.add_argument("--timeout", help="per-request timeout (default 10s)")
    ld.add_argument("--max-in-flight", type=int, help="bound on outstanding requests per process (default 1000)")
    sw = parser.add_argument_group("sweep")
    sw.add_argument("--sweep-start", type=float, help="first step's rate (default 10)")
    sw.add_argument("--sweep-step", type=float, help="rate added per step (default 10)")
    sw.add_argument("--sweep-max", type=float, help="highest rate tried (default 10000)")
    sw.add_argument("--sweep-step-duration", help="measured time per step (default 10s)")
    slo = parser.add_argument_group("SLO (sweep stops when it breaks; exit 1 when missed)")
    slo.add_argument("--slo-p50-ms", type=float)
    slo.add_argument("--slo-p90-ms", type=float)
    slo.add_argument("--slo-p99-ms", type=float)
    slo.add_argument("--slo-max-error-rate", type=float, help="0..1")
    slo.add_argument("--slo-min-throughput", type=float, help="successful requests per second")
    pl = parser.add_argument_group("payload")
    pl.add_argument("--payload-file", metavar="FILE", help="a V2 request body (JSON) sent as is to every model")
    pl.add_argument("--text", help="text for BYTES inputs")
    pl.add_argument("--batch-size", type=int, help="rows per generated request (default 1)")
    pl.add_argument("--seq-len", type=int, default=128, help="size of variable (-1) dimensions (default 128)")
    out = parser.add_argument_group("run and output")
    out.add_argument("--processes", type=int, default=1, help="processes sharing the rate (default 1)")
    out.add_argument("--per-model", type=int, default=10, help="slowest models listed (0: none; default 10)")
    out.add_argument("--json", metavar="FILE", help="write Results (modelpack API shape) as JSON; - for stdout")
    out.add_argument("--outcome-json", metavar="FILE", help="write the full mergeable outcome (histograms, timeline)")
    out.add_argument("--no-progress", action="store_true", help="no live progress bar")


def _positive(args: argparse.Namespace, name: str, minimum: float = 0, strict: bool = True) -> None:
    value = getattr(args, name)
    if value is None:
        return
    flag = "--" + name.replace("_", "-")
    if (strict and value <= minimum) or (not strict and value < minimum):
        relation = "greater than" if strict else "at least"
        raise CliError(f"{flag} must be {relation} {minimum:g}, got {value:g}")


def _duration(args: argparse.Namespace, name: str) -> None:
    value = getattr(args, name)
    if value is None:
        return
    try:
        parse_duration(value)
    except ValueError as err:
        raise CliError(f"--{name.replace('_', '-')}: {err}") from None


def _stages(args: argparse.Namespace, mode: str) -> list[dict[str, Any]] | None:
    if not args.stage:
        return None
    key = "concurrency" if mode == "concurrency" else "rate"
    stages = []
    for text in args.stage:
        duration, sep, value = text.partition(":")
        try:
            parse_duration(duration)
            number = int(value) if key == "concurrency" else float(value)
        except ValueError:
            raise CliError(f"--stage {text!r}: expected DURATION:{key.upper()}, e.g. 10s:100") from None
        if not sep or number <= 0:
            raise CliError(f"--stage {text!r}: the {key} must be greater than 0")
        stages.append({"duration": duration, key: number})
    return stages


def _check_flags(args: argparse.Namespace) -> None:
    for name in ("rate", "zipf_exponent", "sweep_start", "sweep_step", "sweep_max", "slo_p50_ms", "slo_p90_ms"):
        _positive(args, name)
    for name in ("slo_p99_ms",):
        _positive(args, name)
    for name in ("concurrency", "max_in_flight", "batch_size", "seq_len", "processes"):
        _positive(args, name, 1, strict=False)
    _positive(args, "per_model", 0, strict=False)
    _positive(args, "slo_min_throughput", 0, strict=False)
    if args.slo_max_error_rate is not None and not 0 <= args.slo_max_error_rate <= 1:
        raise CliError(f"--slo-max-error-rate must be between 0 and 1, got {args.slo_max_error_rate:g}")
    for name in ("duration", "warmup", "timeout", "sweep_step_duration"):
        _duration(args, name)
    if args.processes > 64:
        raise CliError(f"--processes must be at most 64, got {args.processes}")


def spec_from_flags(args: argparse.Namespace) -> LoadTestSpec:
    values = {k: (getattr(args, k) if getattr(args, k) is not None else DEFAULTS.get(k)) for k in LOAD_FLAGS}
    mode = str(values["mode"])
    stages = _stages(args, mode)
    if mode == "constant-rate" and values["rate"] is None and stages is None:
        raise CliError("--rate is required in constant-rate mode (or give --stage DURATION:RATE)")
    if mode == "concurrency" and values["rate"] is not None:
        raise CliError("--rate cannot be used with --mode concurrency: use --concurrency")
    if mode == "concurrency" and values["concurrency"] is None and stages is None:
        raise CliError("--concurrency is required in concurrency mode (or give --stage DURATION:CONCURRENCY)")
    if mode != "concurrency" and values["concurrency"] is not None:
        raise CliError(f"--concurrency is only valid with --mode concurrency, not {mode}")
    sweep_flags = [f for f in ("sweep_start", "sweep_step", "sweep_max", "sweep_step_duration") if getattr(args, f)]
    if mode != "sweep" and sweep_flags:
        raise CliError(f"--{sweep_flags[0].replace('_', '-')} is only valid with --mode sweep")
    if mode == "sweep" and args.stage:
        raise CliError("--stage cannot be used with --mode sweep: the sweep sets the rate of each step")
    if mode == "sweep" and values["rate"] is not None:
        raise CliError("--rate cannot be used with --mode sweep: use --sweep-start/--sweep-step/--sweep-max")
    load: dict[str, Any] = {
        "mode": mode,
        "arrival": values["arrival"],
        "duration": values["duration"],
        "warmup": values["warmup"],
        "timeout": values["timeout"],
        "maxInFlight": values["max_in_flight"],
    }
    if values["rate"] is not None:
        load["rate"] = values["rate"]
    if values["concurrency"] is not None:
        load["concurrency"] = values["concurrency"]
    if stages:
        load["stages"] = stages
    if mode == "sweep":
        sweep = {"startRate": args.sweep_start, "stepRate": args.sweep_step, "maxRate": args.sweep_max}
        sweep["stepDuration"] = args.sweep_step_duration
        load["sweep"] = {k: v for k, v in sweep.items() if v is not None}
    slo = {
        "p50LatencyMs": args.slo_p50_ms,
        "p90LatencyMs": args.slo_p90_ms,
        "p99LatencyMs": args.slo_p99_ms,
        "maxErrorRate": args.slo_max_error_rate,
        "minThroughput": args.slo_min_throughput,
    }
    slo = {k: v for k, v in slo.items() if v is not None}
    if mode == "sweep" and not slo:
        raise CliError("--mode sweep needs an SLO to stop at: give --slo-p99-ms (or another --slo-* flag)")
    payload: dict[str, Any] = {"batchSize": values["batch_size"]}
    if args.text is not None:
        payload["text"] = args.text
    if args.payload_file:
        payload |= {"mode": "given", "request": _read_payload(args.payload_file)}
    doc = {
        "target": {
            "modelPack": "cli",
            "spread": values["spread"],
            "zipfExponent": values["zipf_exponent"],
            "models": {"seed": values["seed"]},
        },
        "load": load,
        "payload": payload,
        "workers": args.processes,
    }
    if slo:
        doc["slo"] = slo
    try:
        return LoadTestSpec.model_validate(doc)
    except ValidationError as err:
        raise CliError(f"invalid load settings:\n{format_validation_error(err)}") from None


def _read_payload(path: str) -> dict[str, Any]:
    try:
        data = json.loads(Path(path).read_text())
    except FileNotFoundError:
        raise CliError(f"--payload-file {path}: no such file") from None
    except (OSError, ValueError) as err:
        raise CliError(f"--payload-file {path}: not a readable JSON file: {err}") from None
    if not isinstance(data, dict) or not isinstance(data.get("inputs"), list):
        raise CliError(f"--payload-file {path}: expected a V2 request object with an 'inputs' list")
    return data


def spec_from_file(args: argparse.Namespace) -> LoadTestSpec:
    given = [k for k in LOAD_FLAGS if getattr(args, k) is not None]
    if given:
        flags = ", ".join("--" + k.replace("_", "-") for k in given)
        raise CliError(f"{flags} cannot be combined with --loadtest: the file sets the load")
    try:
        objects = load_file(args.loadtest)
    except InvalidObjectError as err:
        raise CliError(str(err)) from None
    tests = [o for o in objects if isinstance(o, LoadTest)]
    if len(tests) != 1:
        raise CliError(f"--loadtest {args.loadtest}: expected exactly one LoadTest object, found {len(tests)}")
    return tests[0].spec


def endpoints_for(args: argparse.Namespace, spec: LoadTestSpec) -> list[Any]:
    from modelpack.loadgen import Endpoint, LoadgenError, normalize_url, select_models
    from modelpack.loadgen.probe import discover

    if not args.url:
        raise CliError("--url is required: the base URL of a V2 model server, e.g. --url http://127.0.0.1:8080")
    try:
        urls = [normalize_url(u) for u in args.url]
    except LoadgenError as err:
        raise CliError(f"--url: {err}") from None
    if args.models_from_server and args.model:
        raise CliError("--model and --models-from-server cannot be combined")
    if args.models_from_server:
        index = _run_target_check(discover(urls))
        try:
            return [Endpoint(m, u) for u in urls for m in select_models(spec.target.models, index[u])]
        except LoadgenError as err:
            raise CliError(f"{err} (at {', '.join(urls)})") from None
    names = list(dict.fromkeys(args.model))
    if not names and spec.target.models.selection == "list" and spec.target.models.names:
        names = list(spec.target.models.names)
    if not names:
        raise CliError("no models: give --model NAME (repeatable) or --models-from-server")
    try:
        if args.model and spec.target.models.selection != "all":
            names = select_models(spec.target.models, names)  # a LoadTest's list/sample among the --model names
        return [Endpoint(m, u) for u in urls for m in names]
    except LoadgenError as err:
        raise CliError(f"--model: {err}") from None


def _run_target_check(coro: Any) -> Any:
    from modelpack.loadgen import LoadgenError, TargetError
    from modelpack.loadgen.eventloop import run

    try:
        return run(coro)
    except TargetError as err:
        raise CliError(str(err), exit_code=1) from None
    except LoadgenError as err:
        raise CliError(str(err)) from None


def _flag_names(message: str, from_file: bool) -> str:
    if from_file:
        return message
    for field, flag in FIELD_TO_FLAG.items():
        message = message.replace(field, flag)
    return message


async def _run_single(spec: LoadTestSpec, endpoints: list[Any], args: argparse.Namespace) -> Any:
    from modelpack.loadgen import LoadRun

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    loop.add_signal_handler(signal.SIGINT, stop.set)
    try:
        async with LoadRun(spec, endpoints, seq_len=args.seq_len, per_model=args.per_model) as run:
            await run.prepare()
            if args.no_progress:
                return await run.execute(stop_event=stop)
            from modelpack.loadgen.progress import LiveProgress

            with LiveProgress() as live:
                return await run.execute(on_progress=live.update, stop_event=stop)
    finally:
        loop.remove_signal_handler(signal.SIGINT)


def _execute(spec: LoadTestSpec, endpoints: list[Any], args: argparse.Namespace) -> Any:
    from modelpack.loadgen.processes import run_load_processes

    if args.processes == 1:
        return _run_target_check(_run_single(spec, endpoints, args))
    from modelpack.loadgen import LoadgenError, TargetError

    try:
        if args.no_progress:
            return run_load_processes(spec, endpoints, args.processes, seq_len=args.seq_len, per_model=args.per_model)
        from modelpack.loadgen.progress import LiveProgress

        with LiveProgress() as live:
            return run_load_processes(
                spec, endpoints, args.processes, seq_len=args.seq_len, per_model=args.per_model, on_progress=live.update
            )
    except TargetError as err:
        raise CliError(str(err), exit_code=1) from None
    except LoadgenError as err:
        raise CliError(str(err)) from None


def run(args: argparse.Namespace) -> int:
    from modelpack.loadgen import LoadgenError
    from modelpack.loadgen.report import print_report
    from modelpack.loadgen.worker_plan import make_plan

    _check_flags(args)
    from_file = args.loadtest is not None
    spec = spec_from_file(args) if from_file else spec_from_flags(args)
    try:
        make_plan(spec, 0, args.processes)
    except LoadgenError as err:
        raise CliError(_flag_names(str(err), from_file)) from None
    endpoints = endpoints_for(args, spec)
    outcome = _execute(spec, endpoints, args)
    print_report(outcome, Console(stderr=True) if args.json == "-" else None)
    results = outcome.results.model_dump(by_alias=True, exclude_none=True, mode="json")
    if args.json:
        _write(args.json, results)
    if args.outcome_json:
        _write(args.outcome_json, outcome.to_json())
    if outcome.interrupted:
        return 130
    verdict = outcome.slo_verdict
    return 1 if verdict is not None and not verdict.met else 0


def _write(path: str, data: Any) -> None:
    text = json.dumps(data, indent=2)
    if path == "-":
        sys.stdout.write(text + "\n")
        return
    try:
        Path(path).write_text(text + "\n")
    except OSError as err:
        raise CliError(f"cannot write {path}: {err.strerror}", exit_code=1) from None
