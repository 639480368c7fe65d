"""The chart as the tests run it: the cached helm binary with a clean environment, and ``helm template`` parsed."""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

import yaml

from tests.cluster.binaries import ensure_binaries

ROOT = Path(__file__).resolve().parents[2]
CHART = ROOT / "helm" / "modelpack"
KUBE_VERSION = "1.34.0"  # helm built from source reports v1.20 without a cluster; the chart needs >= 1.29


def helm(*args: str, kubeconfig: Path | None = None, check: bool = True) -> subprocess.CompletedProcess[str]:
    """Never the developer's kubeconfig or helm settings: only what the test passes."""
    env = {"PATH": "/usr/bin:/bin", "HOME": "/tmp", "HELM_CACHE_HOME": "/tmp/helm-cache"}
    if kubeconfig:
        env["KUBECONFIG"] = str(kubeconfig)
    proc = subprocess.run([str(ensure_binaries().helm), *args], capture_output=True, text=True, env=env, timeout=120)
    if check and proc.returncode != 0:
        raise AssertionError(f"helm {' '.join(args)} failed:\n{proc.stdout}\n{proc.stderr}")
    return proc


def render(*sets: str, namespace: str = "mp", chart: Path = CHART) -> list[dict[str, Any]]:
    flags = [f"--set={s}" for s in sets]
    out = helm("template", "rel", str(chart), "--namespace", namespace, "--kube-version", KUBE_VERSION, *flags).stdout
    return [d for d in yaml.safe_load_all(out) if d]


def of_kind(docs: list[dict[str, Any]], kind: str) -> list[dict[str, Any]]:
    return [d for d in docs if d["kind"] == kind]
