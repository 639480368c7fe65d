"""`modelpack worker`: one LoadTest worker, as the operator's Job runs it (all input from the environment).

Exit codes: 0 load ran and was reported; 1 the run failed and the failure was reported; 2 bad input (env);
3 the Kubernetes API could not be reached (retried by the Job). Run by hand only to reproduce a Job pod:
set the variables the Job's pod template shows (``kubectl get job <loadtest>-load -o yaml``), put each
route-table shard's ``routes.json`` as a ``*.json`` file in the directory ``MODELPACK_ROUTES_DIR`` names,
and point KUBECONFIG at the cluster.
"""

from __future__ import annotations

import argparse
import logging

from modelpack.cli.errors import CliError

RETRYABLE = 3
"""Exit code when the API could not be reached: the Job retries the pod (exit 1 and 2 fail the Job at once)."""


def register(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--kubeconfig", help="kubeconfig when not running in a pod (default: $KUBECONFIG)")


def run(args: argparse.Namespace) -> int:
    from modelpack_operator.kube import Kube, KubeError, load_api_client
    from modelpack_operator.worker import run_worker
    from modelpack_operator.workerenv import WorkerEnvError, from_env

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        cfg = from_env()
    except WorkerEnvError as err:
        raise CliError(str(err)) from None
    try:
        kube = Kube(load_api_client(args.kubeconfig), field_manager="modelpack-worker")
    except Exception as err:  # kubernetes.config raises several types for missing credentials
        raise CliError(f"cannot load Kubernetes credentials: {err}", exit_code=RETRYABLE) from None
    try:
        return run_worker(cfg, kube)
    except KubeError as err:
        raise CliError(str(err), exit_code=RETRYABLE) from None
