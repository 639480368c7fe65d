"""The test's stand-in for kubelets and cluster DNS: run a pod template's container as a local process.

kwok pods run nothing, so the end-to-end tests read what the operator created (a server Deployment,
a worker Job) and start the same command with the same args and env, resolving what a kubelet would:
downward-API env (namespace, completion index), ConfigMap volumes (materialised as files), and Service
DNS names (rewritten to the local server standing in for that Service). Nothing else is changed.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import time
import urllib.request
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from modelpack_operator.kube import Kube
from tests.cluster.controlplane import ControlPlane
from tests.cluster.process import free_port
from tests.operator.harness import MODELPACK, ROOT
from tests.processes import die_with_parent


class LocalProcess:
    def __init__(self, argv: list[str], env: Mapping[str, str], log_path: Path) -> None:
        self.log_path = log_path
        with log_path.open("ab") as log:
            self.popen = subprocess.Popen(
                die_with_parent(argv),
                cwd=ROOT,
                env={**os.environ, **env},
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )

    def wait(self, timeout: float) -> int:
        return self.popen.wait(timeout=timeout)

    def stop(self) -> None:
        if self.popen.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.popen.pid, signal.SIGTERM)
            try:
                self.popen.wait(timeout=10)
            except subprocess.TimeoutExpired:
                os.killpg(self.popen.pid, signal.SIGKILL)
                self.popen.wait(timeout=5)

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""


def _container(template_spec: Mapping[str, Any]) -> dict[str, Any]:
    containers = template_spec["containers"]
    assert len(containers) == 1, "the operator's pods have one container"
    return dict(containers[0])


def _argv(container: Mapping[str, Any], args: list[str]) -> list[str]:
    """command + args as the container runtime would join them; ``modelpack`` is this venv's console script."""
    command = list(container["command"])
    assert command[0] == "modelpack", f"unexpected command {command}"
    return [MODELPACK, *command[1:], *args]


def _wait_ready(url: str, proc: LocalProcess, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.popen.poll() is not None:
            raise AssertionError(f"server exited with {proc.popen.returncode}:\n{proc.log()[-3000:]}")
        with contextlib.suppress(OSError), urllib.request.urlopen(f"{url}/v2/health/ready", timeout=2) as resp:
            if resp.status == 200:
                return
        time.sleep(0.2)
    raise AssertionError(f"server at {url} never became ready:\n{proc.log()[-3000:]}")


def run_server_deployment(deployment: Mapping[str, Any], workdir: Path) -> tuple[str, LocalProcess]:
    """Start the Deployment's server command on a loopback port; returns (local URL, process)."""
    container = _container(deployment["spec"]["template"]["spec"])
    args = list(container["args"])
    port = free_port()
    args[args.index("--host") + 1] = "127.0.0.1"  # loopback only: a pod listens on its own IP
    args[args.index("--port") + 1] = str(port)
    env = {e["name"]: e["value"] for e in container.get("env") or [] if "value" in e}
    env["MODELPACK_CACHE_DIR"] = str(workdir / "cache")
    env["HOME"] = str(workdir)
    name = deployment["metadata"]["name"]
    proc = LocalProcess(_argv(container, args), env, workdir / f"{name}.log")
    url = f"http://127.0.0.1:{port}"
    _wait_ready(url, proc)
    return url, proc


def _field_ref(path: str, namespace: str, annotations: Mapping[str, str]) -> str:
    if path == "metadata.namespace":
        return namespace
    prefix = "metadata.annotations['"
    if path.startswith(prefix) and path.endswith("']"):
        return annotations[path[len(prefix) : -2]]
    raise AssertionError(f"the local kubelet does not resolve fieldRef {path}")


def run_job_pod(
    kube: Kube,
    job: Mapping[str, Any],
    index: int,
    service_urls: Mapping[str, str],
    kubeconfig: Path,
    workdir: Path,
) -> LocalProcess:
    """Start pod ``index`` of an Indexed Job; ``service_urls`` maps each Service URL to its local stand-in."""
    namespace = job["metadata"]["namespace"]
    spec = job["spec"]["template"]["spec"]
    container = _container(spec)
    annotations = {"batch.kubernetes.io/job-completion-index": str(index)}
    env: dict[str, str] = {}
    for item in container.get("env") or []:
        if "value" in item:
            env[item["name"]] = item["value"]
        else:
            env[item["name"]] = _field_ref(item["valueFrom"]["fieldRef"]["fieldPath"], namespace, annotations)
    declared = dict(env)
    volumes = {v["name"]: v for v in spec.get("volumes") or []}
    pod_dir = workdir / f"pod-{index}"
    for mount in container.get("volumeMounts") or []:
        volume = volumes[mount["name"]]
        local = pod_dir / mount["mountPath"].lstrip("/")
        local.mkdir(parents=True, exist_ok=True)
        sources = [volume] if "configMap" in volume else (volume.get("projected") or {}).get("sources") or []
        for source in sources:
            if "configMap" not in source:
                continue
            configmap = kube.get("v1", "ConfigMap", namespace, source["configMap"]["name"])
            assert configmap is not None, f"volume {mount['name']}: ConfigMap {source['configMap']['name']} missing"
            for item in source["configMap"].get("items") or [{"key": k, "path": k} for k in configmap["data"]]:
                text = configmap["data"][item["key"]]
                if item["key"] == "routes.json":
                    table = json.loads(text)
                    text = json.dumps({m: service_urls.get(u, u) for m, u in table.items()})
                (local / item["path"]).write_text(text)
        # env paths under a mount point now live under the pod's directory
        for key, value in declared.items():
            if value == mount["mountPath"] or value.startswith(mount["mountPath"] + "/"):
                env[key] = str(local / value[len(mount["mountPath"]) + 1 :])
    env["KUBECONFIG"] = str(kubeconfig)  # the worker ServiceAccount's token, as the pod would mount it
    env["HOME"] = str(pod_dir)
    return LocalProcess(_argv(container, container.get("args") or []), env, workdir / f"worker-{index}.log")


def report_pod_status(cp: ControlPlane, pod: Mapping[str, Any], status: Mapping[str, Any], **containers: Any) -> None:
    """Write a pod's status as its kubelet would (kwok's never run anything); ``containers`` maps a container
    name to its status fields, completed with what a kubelet always reports."""
    spec = {c["name"]: c for c in pod["spec"]["containers"]}
    statuses = [
        {"name": name, "image": spec[name]["image"], "imageID": "", "ready": False, "restartCount": 0, **fields}
        for name, fields in containers.items()
    ]
    patch = {"status": {**status, "containerStatuses": statuses}}
    meta = pod["metadata"]
    cp.kubectl(
        "patch",
        "pod",
        meta["name"],
        "-n",
        meta["namespace"],
        "--subresource=status",
        "--type=strategic",
        "-p",
        json.dumps(patch),
    )
