"""`modelpack serve` (and ``python -m model_server``): one model server over a store. Every flag can also come
from a MODELPACK_* env var (what the operator's pods and `modelpack run` set); a flag given on the command line
wins. The server owns this parsing: the ``modelpack`` CLI only mounts it as a subcommand."""

from __future__ import annotations

import argparse
import math
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar, get_args

from model_server.settings import Settings
from modelpack.api.base import parse_quantity
from modelpack.api.modelpack import Precision
from modelpack.serving import STORE_UNAVAILABLE_EXIT

PRECISIONS: tuple[str, ...] = get_args(Precision)


class SettingsError(Exception):
    """A flag or env var the server cannot run with; the message names it. ``exit_code`` 2 (bad input) or
    ``STORE_UNAVAILABLE_EXIT``."""

    def __init__(self, message: str, exit_code: int = 2) -> None:
        super().__init__(message)
        self.exit_code = exit_code


T = TypeVar("T")

# flag dest -> env var
ENV_VARS: dict[str, str] = {
    "store": "MODELPACK_STORE",
    "models": "MODELPACK_MODELS",
    "models_file": "MODELPACK_MODELS_FILE",
    "host": "MODELPACK_HOST",
    "port": "MODELPACK_PORT",
    "threads": "MODELPACK_THREADS",
    "inference_workers": "MODELPACK_INFERENCE_WORKERS",
    "load_workers": "MODELPACK_LOAD_WORKERS",
    "max_pending_loads": "MODELPACK_MAX_PENDING_LOADS",
    "load_retry_base_s": "MODELPACK_LOAD_RETRY_BASE_S",
    "load_retry_max_s": "MODELPACK_LOAD_RETRY_MAX_S",
    "memory_budget": "MODELPACK_MEMORY_BUDGET",
    "max_batch_size": "MODELPACK_MAX_BATCH_SIZE",
    "max_queue_delay_ms": "MODELPACK_MAX_QUEUE_DELAY_MS",
    "max_queue_size": "MODELPACK_MAX_QUEUE_SIZE",
    "preload": "MODELPACK_PRELOAD",
    "precision": "MODELPACK_PRECISION",
    "jit_optimize": "MODELPACK_JIT_OPTIMIZE",
    "jit_load_every_model": "MODELPACK_JIT_LOAD_EVERY_MODEL",
    "max_body_bytes": "MODELPACK_MAX_BODY_BYTES",
    "cache_dir": "MODELPACK_CACHE_DIR",
    "graceful_shutdown_s": "MODELPACK_GRACEFUL_SHUTDOWN_S",
    "log_level": "MODELPACK_LOG_LEVEL",
}


def register(parser: argparse.ArgumentParser) -> None:
    def env(dest: str) -> str:
        return f" (env {ENV_VARS[dest]})"

    add = parser.add_argument
    add("--store", help="model store: directory, file:///path or s3://bucket/prefix" + env("store"))
    group = parser.add_mutually_exclusive_group()
    group.add_argument("--models", help="comma-separated model names to serve (default: all)" + env("models"))
    group.add_argument("--models-file", help="file with one model name per line" + env("models_file"))
    add("--host", help="listen address (default 127.0.0.1)" + env("host"))
    add("--port", help="listen port (default 8080; 0 picks a free one)" + env("port"))
    add("--threads", help="torch intra-op threads (default: CPUs allowed by cgroup/affinity)" + env("threads"))
    add("--inference-workers", help="inference threads (default CPUs // threads)" + env("inference_workers"))
    add("--load-workers", help="model loading threads (default: CPUs, at least 2)" + env("load_workers"))
    add("--max-pending-loads", help="models waiting to load before 503 (default 32)" + env("max_pending_loads"))
    add(
        "--load-retry-base-s",
        help="seconds before a failed model is tried again, doubling per failure (default 1)"
        + env("load_retry_base_s"),
    )
    add(
        "--load-retry-max-s",
        help="longest wait between retries of a failed model (default 60)" + env("load_retry_max_s"),
    )
    add("--memory-budget", help="bytes of loaded models, e.g. 2Gi (default 2Gi)" + env("memory_budget"))
    add("--max-batch-size", help="largest dynamic batch (default 8)" + env("max_batch_size"))
    add("--max-queue-delay-ms", help="busy model's longest batch hold, ms (default 0)" + env("max_queue_delay_ms"))
    add("--max-queue-size", help="queued requests per model before 503 (default 256)" + env("max_queue_size"))
    add("--preload", action="store_true", default=None, help="load models at start" + env("preload"))
    add("--precision", help=f"serve only models built as this ({', '.join(PRECISIONS)})" + env("precision"))
    add(
        "--jit-optimize",
        action="store_true",
        default=None,
        help="TorchScript's profiling optimizer (default off: its warm-up per model and shape)" + env("jit_optimize"),
    )
    add(
        "--jit-load-every-model",
        action="store_true",
        default=None,
        help="torch.jit.load every model, never a copy of its architecture's template" + env("jit_load_every_model"),
    )
    add("--max-body-bytes", help="largest request body, e.g. 16Mi (default 16Mi)" + env("max_body_bytes"))
    add("--cache-dir", help="download cache for s3:// stores" + env("cache_dir"))
    drain = "seconds to finish in-flight requests on SIGTERM (default 30)"
    add("--graceful-shutdown-s", help=drain + env("graceful_shutdown_s"))
    add("--log-level", choices=["critical", "error", "warning", "info", "debug"], help="log level" + env("log_level"))


def _value(args: argparse.Namespace, dest: str) -> tuple[Any, str] | None:
    """The raw value and where it came from (for error messages), flag first, then env."""
    given = getattr(args, dest, None)
    if given is not None:
        return given, _flag(dest)
    env_value = os.environ.get(ENV_VARS[dest])
    if env_value not in (None, ""):
        return env_value, ENV_VARS[dest]
    return None


def _source(args: argparse.Namespace, dest: str) -> str:
    """The flag or env var a value came from; the flag when it is the default."""
    found = _value(args, dest)
    return found[1] if found is not None else _flag(dest)


def _flag(dest: str) -> str:
    return "--" + dest.replace("_", "-")


def _typed(args: argparse.Namespace, dest: str, parse: Callable[[str], T], default: T, check: str = "") -> T:
    found = _value(args, dest)
    if found is None:
        return default
    raw, source = found
    try:
        value = parse(str(raw))
    except ValueError:
        raise SettingsError(f"{source}: {raw!r} is not a valid value{f' ({check})' if check else ''}") from None
    return value


def _int(minimum: int, maximum: int | None = None) -> Callable[[str], int]:
    def parse(text: str) -> int:
        value = int(text)
        if value < minimum or (maximum is not None and value > maximum):
            raise ValueError(text)
        return value

    return parse


def _quantity(text: str) -> int:
    value = parse_quantity(text)
    if value <= 0:
        raise ValueError(text)
    return value


def _float(text: str) -> float:
    value = float(text)
    if not 0 <= value < math.inf:  # also refuses nan
        raise ValueError(text)
    return value


def _bool(text: str) -> bool:
    lowered = text.lower()
    if lowered in ("1", "true", "yes", "on"):
        return True
    if lowered in ("0", "false", "no", "off"):
        return False
    raise ValueError(text)


def read_models_file(path: str, source: str) -> list[str]:
    try:
        lines = Path(path).read_text().splitlines()
    except OSError as err:
        raise SettingsError(f"{source}: cannot read {path}: {err.strerror}") from None
    names = [line.split("#", 1)[0].strip() for line in lines]
    return [n for n in names if n]


def _models(args: argparse.Namespace) -> list[str] | None:
    """--models / --models-file (exclusive flags) win over MODELPACK_MODELS / MODELPACK_MODELS_FILE."""
    if args.models is not None:
        chosen: tuple[str, str, str] | None = ("models", str(args.models), "--models")
    elif args.models_file is not None:
        chosen = ("models_file", str(args.models_file), "--models-file")
    else:
        env_models = os.environ.get(ENV_VARS["models"]) or None
        env_file = os.environ.get(ENV_VARS["models_file"]) or None
        if env_models and env_file:
            raise SettingsError(f"set either {ENV_VARS['models']} or {ENV_VARS['models_file']}, not both")
        chosen = (
            ("models", env_models, ENV_VARS["models"])
            if env_models
            else ("models_file", env_file, ENV_VARS["models_file"])
            if env_file
            else None
        )
    if chosen is None:
        return None
    kind, raw, source = chosen
    names = [n.strip() for n in raw.split(",")] if kind == "models" else read_models_file(raw, source)
    names = [n for n in names if n]
    if not names:
        raise SettingsError(f"{source}: no model names in {raw!r}")
    return names


def settings_from_args(args: argparse.Namespace) -> Settings:
    """Validate everything before starting the server, so bad input never gets as far as a traceback."""
    from model_server.store import StoreError, open_store

    found = _value(args, "store")
    if found is None:
        raise SettingsError("--store is required (or set MODELPACK_STORE)")
    store_uri = str(found[0])
    defaults = Settings(store=store_uri)
    models = _models(args)
    settings = Settings(
        store=store_uri,
        models=models,
        host=_typed(args, "host", str, defaults.host),
        port=_typed(args, "port", _int(0, 65535), defaults.port, "an integer 0-65535"),
        threads=_typed(args, "threads", _int(1, 1024), defaults.threads, "an integer >= 1"),
        inference_workers=_typed(args, "inference_workers", _int(1, 1024), 0, "an integer >= 1"),
        load_workers=_typed(args, "load_workers", _int(1, 64), defaults.load_workers, "an integer 1-64"),
        max_pending_loads=_typed(args, "max_pending_loads", _int(1), defaults.max_pending_loads, "an integer >= 1"),
        load_retry_base_s=_typed(args, "load_retry_base_s", _float, defaults.load_retry_base_s, "seconds >= 0"),
        load_retry_max_s=_typed(args, "load_retry_max_s", _float, defaults.load_retry_max_s, "seconds >= 0"),
        memory_budget=_typed(args, "memory_budget", _quantity, defaults.memory_budget, "a quantity like 2Gi"),
        max_batch_size=_typed(args, "max_batch_size", _int(1, 1024), defaults.max_batch_size, "an integer 1-1024"),
        max_queue_delay_ms=_typed(args, "max_queue_delay_ms", _float, defaults.max_queue_delay_ms, "ms >= 0"),
        max_queue_size=_typed(args, "max_queue_size", _int(1), defaults.max_queue_size, "an integer >= 1"),
        preload=_typed(args, "preload", _bool, defaults.preload, "true or false"),
        precision=_typed(args, "precision", _precision, None, " or ".join(PRECISIONS)),
        jit_optimize=_typed(args, "jit_optimize", _bool, defaults.jit_optimize, "true or false"),
        jit_load_every_model=_typed(
            args, "jit_load_every_model", _bool, defaults.jit_load_every_model, "true or false"
        ),
        max_body_bytes=_typed(args, "max_body_bytes", _quantity, defaults.max_body_bytes, "a quantity like 16Mi"),
        cache_dir=_typed(args, "cache_dir", Path, defaults.cache_dir),
        graceful_shutdown_s=_typed(args, "graceful_shutdown_s", _float, defaults.graceful_shutdown_s, "seconds"),
        log_level=_typed(args, "log_level", _log_level, defaults.log_level, "critical/error/warning/info/debug"),
    )
    if settings.load_retry_max_s < settings.load_retry_base_s:
        raise SettingsError(
            f"{_source(args, 'load_retry_max_s')} ({settings.load_retry_max_s:g}) must be at least "
            f"{_source(args, 'load_retry_base_s')} ({settings.load_retry_base_s:g})"
        )
    try:
        open_store(settings.store, settings.cache_dir)
    except StoreError as err:
        raise SettingsError(f"--store: {err}") from None
    return settings


def _precision(text: str) -> Precision:
    if text not in PRECISIONS:
        raise ValueError(text)
    return text  # type: ignore[return-value]


def _log_level(text: str) -> str:
    if text.lower() not in ("critical", "error", "warning", "info", "debug"):
        raise ValueError(text)
    return text.lower()


def run(args: argparse.Namespace) -> int:
    """Serve until stopped; bad settings or an unreadable store end it with the message on stderr (the last log
    line: what Kubernetes keeps as the pod's termination message, FallbackToLogsOnError)."""
    try:
        settings = settings_from_args(args)
        from model_server.server import serve
        from model_server.store import StoreError, open_store

        try:
            open_store(settings.store, settings.cache_dir).check()
        except StoreError as err:
            raise SettingsError(f"store unavailable: {err}", exit_code=STORE_UNAVAILABLE_EXIT) from None
    except SettingsError as err:
        print(f"modelpack serve: error: {err}", file=sys.stderr)
        return err.exit_code
    serve(settings)
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="modelpack serve", description="Start one model server over a model store.")
    register(parser)
    return run(parser.parse_args(argv))
