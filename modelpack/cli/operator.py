"""`modelpack operator`: run the Kubernetes operator (kopf) in this process, in-cluster or with a kubeconfig."""

from __future__ import annotations

import argparse
import logging
import os
import re
import signal
import sys
import threading

from modelpack.cli.errors import CliError

NAMESPACE_PATTERN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")


def register(parser: argparse.ArgumentParser) -> None:
    scope = parser.add_mutually_exclusive_group()
    scope.add_argument(
        "--namespace",
        "-n",
        action="append",
        default=[],
        metavar="NS",
        help="watch only this namespace (repeatable); the Helm chart's rbac.scope=namespace sets it",
    )
    scope.add_argument("--all-namespaces", "-A", action="store_true", help="watch every namespace (the default)")
    parser.add_argument("--kubeconfig", help="kubeconfig file when not running in a pod (default: $KUBECONFIG)")
    parser.add_argument(
        "--liveness",
        default="http://0.0.0.0:8081/healthz",
        metavar="URL",
        help="where kopf serves its liveness probe (default: %(default)s); 'off' disables it",
    )
    parser.add_argument(
        "--metrics-port", type=int, default=8080, help="Prometheus metrics port (default: %(default)s); 0 disables"
    )
    parser.add_argument("--verbose", "-v", action="store_true", help="debug logging")


def run(args: argparse.Namespace) -> int:
    for ns in args.namespace:
        if not NAMESPACE_PATTERN.match(ns) or len(ns) > 63:
            raise CliError(f"--namespace {ns!r}: not a valid namespace name (lowercase letters, digits and '-')")
    if not 0 <= args.metrics_port <= 65535:
        raise CliError(f"--metrics-port {args.metrics_port}: expected 0 (off) or a port from 1 to 65535")
    if args.liveness != "off" and not args.liveness.startswith("http://"):
        raise CliError(f"--liveness {args.liveness!r}: expected http://HOST:PORT/PATH or 'off'")

    import kopf

    from modelpack_operator import handlers
    from modelpack_operator.kube import Kube, load_api_client
    from modelpack_operator.runtime import Runtime
    from modelpack_operator.settings import OperatorSettings, SettingsError

    try:
        settings = OperatorSettings.from_env()
    except SettingsError as err:
        raise CliError(str(err)) from None
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    if not args.verbose:
        # kopf logs every handler call at INFO ("Handler ... succeeded"): one line per watch event.
        logging.getLogger("kopf.objects").setLevel(logging.WARNING)
    try:
        api_client = load_api_client(args.kubeconfig)
    except Exception as err:  # kubernetes.config raises several types for a missing or broken kubeconfig
        raise CliError(f"cannot load Kubernetes credentials: {err}") from None
    if args.kubeconfig:
        os.environ["KUBECONFIG"] = args.kubeconfig  # kopf reads credentials on its own
    if args.metrics_port:
        from modelpack_operator import metrics

        try:
            metrics.serve(args.metrics_port)
        except OSError as err:
            raise CliError(f"--metrics-port {args.metrics_port}: cannot listen: {err.strerror}", exit_code=1) from None
    stop_flag = threading.Event()
    handlers.install(Runtime(Kube(api_client), settings, args.namespace), stop_flag)
    failure: list[BaseException] = []

    def run_kopf() -> None:
        try:
            kopf.run(
                standalone=True,
                clusterwide=not args.namespace,
                namespaces=args.namespace,
                liveness_endpoint=None if args.liveness == "off" else args.liveness,
                stop_flag=stop_flag,
            )
        except BaseException as err:  # reported by the main thread, which owns the exit code
            failure.append(err)

    # kopf runs in a thread so that signals reach this thread: the stop deadline starts at SIGTERM, not when
    # kopf gets round to its cleanup handlers (after its watchers, which wait on reconcile threads).
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda signum, _frame: handlers.begin_stop(f"{signal.Signals(signum).name} received"))
    thread = threading.Thread(target=run_kopf, name="kopf", daemon=True)
    thread.start()
    while thread.is_alive():
        thread.join(0.5)
    # Reconcile threads still running (a large write cut short) would keep the interpreter alive at exit, past
    # the pod's grace period. Their work is redone by the next operator, so do not wait.
    if failure:
        logging.getLogger("modelpack.operator").error("operator failed: %s", failure[0], exc_info=failure[0])
    logging.shutdown()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(1 if failure else 0)
