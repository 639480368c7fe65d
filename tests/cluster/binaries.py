"""Build the control-plane binaries from Go modules and cache them by version.

Nothing here downloads a release: only the Go module proxy is reachable, so every
binary is compiled from its module. Builds are cached outside the repository
(``$MODELPACK_BIN_CACHE`` or ``~/.cache/modelpack/bin``) under a directory named
for the version, so a second run costs a directory listing.
"""

from __future__ import annotations

import fcntl
import functools
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

KUBERNETES_VERSION = "v1.34.4"
ETCD_VERSION = "v3.6.16"
KWOK_VERSION = "v0.7.0"
HELM_VERSION = "v3.19.5"

COREDNS_VERSION = "v1.14.7"
# Prometheus's Go module numbers its 3.x releases v0.3xx.0. Its own cache entry: the monitoring tests need it,
# the control plane does not, so adding or bumping it never rebuilds the control plane's entries.
PROMETHEUS_VERSION = "v0.316.0"
PROMETHEUS_COMMANDS = ("prometheus", "promtool")
# Prometheus' documented build tag that leaves out every service-discovery plugin (plugins/plugin_*.go): the
# tests scrape static targets, and the cloud SDKs behind those plugins were most of its cold build time.
PROMETHEUS_TAGS = "remove_all_sd"
# The resource metrics API (metrics.k8s.io) the HorizontalPodAutoscaler reads; its own cache entry, like Prometheus.
METRICS_SERVER_VERSION = "v0.8.0"

KUBE_COMMANDS = ("kube-apiserver", "kube-controller-manager", "kube-scheduler", "kubectl")
# The real node's binaries: a separate cache entry, so adding them never invalidates (and rebuilds) the control
# plane's entry that running tests use.
NODE_COMMANDS = ("kubelet", "kube-proxy")
# CoreDNS plugins the cluster DNS needs (in CoreDNS' own execution order); a custom build with only these
# compiles in a fraction of the time of the full binary (which links every cloud provider's SDK).
COREDNS_PLUGINS = ("ready", "health", "errors", "log", "cache", "kubernetes")
PAUSE_SOURCE = Path(__file__).with_name("pause.go")
GOPHER_LUA_VERSION = "v1.1.2"
"""The Lua interpreter Argo CD embeds (its go.mod pins github.com/yuin/gopher-lua)."""
ARGOCD_LUA_SOURCE = Path(__file__).with_name("argocd_lua.go")


def cache_root() -> Path:
    """Where built binaries live; outside the repo so clean clones reuse them."""
    env = os.environ.get("MODELPACK_BIN_CACHE")
    return Path(env) if env else Path.home() / ".cache" / "modelpack" / "bin"


@dataclass(frozen=True)
class Binaries:
    """Paths of every binary the control-plane harness runs."""

    kube_apiserver: Path
    kube_controller_manager: Path
    kube_scheduler: Path
    kubectl: Path
    etcd: Path
    kwok: Path
    helm: Path


@dataclass(frozen=True)
class NodeBinaries:
    """Paths of what the real node runs from Go modules (the rest are Debian packages: containerd, runc, CNI)."""

    kubelet: Path
    kube_proxy: Path
    coredns: Path
    pause: Path


def _log(msg: str) -> None:
    print(f"[binaries] {msg}", file=sys.stderr, flush=True)


def _go(args: list[str], cwd: Path, env: dict[str, str] | None = None) -> str:
    full_env = {**os.environ, "CGO_ENABLED": "0", "GOFLAGS": "-mod=mod", **(env or {})}
    proc = subprocess.run(["go", *args], cwd=cwd, env=full_env, text=True, capture_output=True, check=False)
    if proc.returncode != 0:
        raise RuntimeError(f"go {' '.join(args)} failed in {cwd}:\n{proc.stderr[-4000:]}")
    return proc.stdout


def staging_replaces(gomod_text: str) -> list[str]:
    """Modules that k8s.io/kubernetes' go.mod replaces with its ./staging tree.

    Derived from the real go.mod so a version bump cannot leave a stale list behind.
    """
    return sorted(set(re.findall(r"^\s*(k8s\.io/[\w.\-/]+)\s+=>\s+\./staging/", gomod_text, re.M)))


def _wrapper_module(
    workdir: Path, module: str, requires: dict[str, str], replaces: dict[str, str], imports: list[str]
) -> None:
    workdir.mkdir(parents=True, exist_ok=True)
    lines = [f"module {module}", "", "go 1.24", "", "require ("]
    lines += [f"\t{mod} {ver}" for mod, ver in requires.items()]
    lines.append(")")
    if replaces:
        lines += ["", "replace ("]
        lines += [f"\t{mod} => {mod} {ver}" for mod, ver in replaces.items()]
        lines.append(")")
    (workdir / "go.mod").write_text("\n".join(lines) + "\n")
    tools = ["//go:build tools", "", "package tools", "", "import ("]
    tools += [f'\t_ "{imp}"' for imp in imports]
    tools.append(")")
    (workdir / "tools.go").write_text("\n".join(tools) + "\n")


@functools.cache
def _kubernetes_module(version: str) -> Path:
    """The wrapper module that builds k8s.io/kubernetes commands; one for the control plane and the node, and
    the versions metrics-server pins. Made once per process: a cold build asks for it three times."""
    work = cache_root().parent / "build" / f"kubernetes-{version}"
    _log(f"downloading k8s.io/kubernetes@{version} module metadata")
    info = json.loads(_go(["mod", "download", "-json", f"k8s.io/kubernetes@{version}"], cwd=Path.cwd()))
    gomod = Path(info["GoMod"]).read_text()
    staging = staging_replaces(gomod)
    if not staging:
        raise RuntimeError("no staging replaces found in k8s.io/kubernetes go.mod")
    published = "v0." + version.removeprefix("v1.")
    _log(f"wrapper module: {len(staging)} staging modules replaced with {published}")
    _wrapper_module(
        work,
        "modelpack.dev/build/kubernetes",
        {"k8s.io/kubernetes": version},
        {mod: published for mod in staging},
        [f"k8s.io/kubernetes/cmd/{cmd}" for cmd in (*KUBE_COMMANDS, *NODE_COMMANDS)],
    )
    _go(["mod", "tidy"], cwd=work)
    return work


def _kubernetes_builder(commands: tuple[str, ...]):  # type: ignore[no-untyped-def]
    def build(dest: Path, version: str) -> None:
        work = _kubernetes_module(version)
        major, minor = version.removeprefix("v").split(".")[:2]
        pkgs = ["k8s.io/component-base/version", "k8s.io/client-go/pkg/version"]
        ldflags = ["-s", "-w"]
        for pkg in pkgs:
            ldflags += [
                f"-X {pkg}.gitVersion={version}",
                f"-X {pkg}.gitMajor={major}",
                f"-X {pkg}.gitMinor={minor}",
                f"-X {pkg}.gitTreeState=clean",
                f"-X {pkg}.buildDate=1970-01-01T00:00:00Z",
            ]
        for cmd in commands:
            started = time.monotonic()
            _log(f"go build {cmd} (first build takes minutes)")
            _go(
                [
                    "build",
                    "-trimpath",
                    "-ldflags",
                    " ".join(ldflags),
                    "-o",
                    str(dest / cmd),
                    f"k8s.io/kubernetes/cmd/{cmd}",
                ],
                cwd=work,
            )
            _log(f"built {cmd} in {time.monotonic() - started:.0f}s")

    return build


def coredns_main(plugins: tuple[str, ...]) -> str:
    """A CoreDNS main package linking only ``plugins``, CoreDNS' documented way to build a custom server."""
    imports = "\n".join(f'\t_ "github.com/coredns/coredns/plugin/{p}"' for p in plugins)
    directives = ", ".join(f'"{p}"' for p in plugins)
    return (
        "package main\n\nimport (\n"
        '\t"github.com/coredns/coredns/core/dnsserver"\n'
        '\t"github.com/coredns/coredns/coremain"\n'
        f"{imports}\n)\n\n"
        f"func init() {{ dnsserver.Directives = []string{{{directives}}} }}\n\n"
        "func main() { coremain.Run() }\n"
    )


def _build_coredns(dest: Path, version: str) -> None:
    work = cache_root().parent / "build" / f"coredns-{version}"
    work.mkdir(parents=True, exist_ok=True)
    (work / "go.mod").write_text(
        f"module modelpack.dev/build/coredns\n\ngo 1.25.0\n\nrequire github.com/coredns/coredns {version}\n"
    )
    (work / "main.go").write_text(coredns_main(COREDNS_PLUGINS))
    _go(["mod", "tidy"], cwd=work)
    _log(f"go build coredns ({', '.join(COREDNS_PLUGINS)})")
    _go(["build", "-trimpath", "-ldflags", "-s -w", "-o", str(dest / "coredns"), "."], cwd=work)


def _build_pause(dest: Path, version: str) -> None:
    """The pod sandbox's pause process, from this repository's own source (no registry to pull one from)."""
    _go(["build", "-trimpath", "-ldflags", "-s -w", "-o", str(dest / "pause"), str(PAUSE_SOURCE)], cwd=dest)


def _build_argocd_lua(dest: Path, version: str) -> None:
    """``argocd-lua``: runs a health script as Argo CD does (``argocd_lua.go``), on gopher-lua from its module."""
    work = cache_root().parent / "build" / f"argocd-lua-{version}"
    work.mkdir(parents=True, exist_ok=True)
    (work / "go.mod").write_text(
        f"module modelpack.dev/build/argocdlua\n\ngo 1.24\n\nrequire github.com/yuin/gopher-lua {GOPHER_LUA_VERSION}\n"
    )
    shutil.copyfile(ARGOCD_LUA_SOURCE, work / "main.go")
    _go(["mod", "tidy"], cwd=work)
    _log(f"go build argocd-lua (gopher-lua {GOPHER_LUA_VERSION})")
    _go(["build", "-trimpath", "-ldflags", "-s -w", "-o", str(dest / "argocd-lua"), "."], cwd=work)


def ensure_argocd_lua() -> Path:
    """The ``argocd-lua`` binary (its own cache entry: gopher-lua's version and this repository's source)."""
    version = f"{GOPHER_LUA_VERSION}-{source_version(ARGOCD_LUA_SOURCE)}"
    return _ensure("argocd-lua", version, ("argocd-lua",), _build_argocd_lua) / "argocd-lua"


def _build_prometheus(dest: Path, version: str) -> None:
    """prometheus and promtool from github.com/prometheus/prometheus; without the ``builtinassets`` tag the web UI
    is absent (its assets are an npm build), which the tests never use: they talk to the HTTP API."""
    work = cache_root().parent / "build" / f"prometheus-{version}"
    module = "github.com/prometheus/prometheus"
    commands = [f"{module}/cmd/{cmd}" for cmd in PROMETHEUS_COMMANDS]
    _wrapper_module(work, "modelpack.dev/build/prometheus", {module: PROMETHEUS_VERSION}, {}, commands)
    _go(["mod", "tidy"], cwd=work)
    for cmd in PROMETHEUS_COMMANDS:
        started = time.monotonic()
        _log(f"go build {cmd} (first build takes minutes)")
        flags = ["-trimpath", "-tags", PROMETHEUS_TAGS, "-ldflags", "-s -w"]
        _go(["build", *flags, "-o", str(dest / cmd), f"{module}/cmd/{cmd}"], cwd=work)
        _log(f"built {cmd} in {time.monotonic() - started:.0f}s")


def source_version(path: Path) -> str:
    """A cache version for a binary built from a file here: a change to the source is a new entry."""
    return "src-" + hashlib.sha256(path.read_bytes()).hexdigest()[:12]


def _build_etcd(dest: Path, version: str) -> None:
    work = cache_root().parent / "build" / f"etcd-{version}"
    _wrapper_module(
        work, "modelpack.dev/build/etcd", {"go.etcd.io/etcd/server/v3": version}, {}, ["go.etcd.io/etcd/server/v3"]
    )
    _go(["mod", "tidy"], cwd=work)
    _log("go build etcd")
    _go(["build", "-trimpath", "-ldflags", "-s -w", "-o", str(dest / "etcd"), "go.etcd.io/etcd/server/v3"], cwd=work)


def _go_install(dest: Path, target: str, ldflags: str = "-s -w") -> None:
    _log(f"go install {target}")
    _go(["install", "-trimpath", "-ldflags", ldflags, target], cwd=Path.cwd(), env={"GOBIN": str(dest)})


def _ensure(name: str, version: str, files: tuple[str, ...], build) -> Path:  # type: ignore[no-untyped-def]
    dest = cache_root() / f"{name}-{version}"
    if all((dest / f).exists() for f in files):
        return dest
    if shutil.which("go") is None:
        # Only a build needs Go: a machine with a warm cache runs the harness without it.
        raise RuntimeError(f"Go >= 1.24 is required to build {name} {version} for the test control plane (not cached)")
    cache_root().mkdir(parents=True, exist_ok=True)
    # Two runs (two worktrees' test sessions) building the same entry would delete each other's partial dir.
    with (cache_root() / f".{name}-{version}.lock").open("ab") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if all((dest / f).exists() for f in files):
            return dest  # built by the run we waited for
        tmp = dest.with_name(dest.name + ".partial")
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir(parents=True)
        started = time.monotonic()
        build(tmp, version)
        shutil.rmtree(dest, ignore_errors=True)
        tmp.rename(dest)
    _log(f"{name} {version} ready in {time.monotonic() - started:.0f}s at {dest}")
    return dest


def ensure_binaries() -> Binaries:
    """Return every harness binary, building what the cache lacks."""
    kube = _ensure("kubernetes", KUBERNETES_VERSION, KUBE_COMMANDS, _kubernetes_builder(KUBE_COMMANDS))
    etcd = _ensure("etcd", ETCD_VERSION, ("etcd",), _build_etcd)
    kwok = _ensure("kwok", KWOK_VERSION, ("kwok",), lambda d, v: _go_install(d, f"sigs.k8s.io/kwok/cmd/kwok@{v}"))
    helm = _ensure("helm", HELM_VERSION, ("helm",), lambda d, v: _go_install(d, f"helm.sh/helm/v3/cmd/helm@{v}"))
    return Binaries(
        kube_apiserver=kube / "kube-apiserver",
        kube_controller_manager=kube / "kube-controller-manager",
        kube_scheduler=kube / "kube-scheduler",
        kubectl=kube / "kubectl",
        etcd=etcd / "etcd",
        kwok=kwok / "kwok",
        helm=helm / "helm",
    )


def ensure_node_binaries() -> NodeBinaries:
    """Return the real node's binaries (kubelet, kube-proxy, CoreDNS, pause), building what the cache lacks."""
    node = _ensure("kubernetes-node", KUBERNETES_VERSION, NODE_COMMANDS, _kubernetes_builder(NODE_COMMANDS))
    coredns = _ensure("coredns", COREDNS_VERSION, ("coredns",), _build_coredns)
    pause = _ensure("pause", source_version(PAUSE_SOURCE), ("pause",), _build_pause)
    return NodeBinaries(
        kubelet=node / "kubelet", kube_proxy=node / "kube-proxy", coredns=coredns / "coredns", pause=pause / "pause"
    )


def kubernetes_pins(work: Path) -> dict[str, str]:
    """Every module version the Kubernetes wrapper module builds with (a replaced staging module at the published
    version it is replaced with): pinned in another build, they let it reuse the Kubernetes build's compiled
    packages."""
    pins: dict[str, str] = {}
    for line in _go(["list", "-m", "all"], cwd=work).splitlines()[1:]:
        mod, ver, *replaced = line.split()
        if mod != "k8s.io/kubernetes":
            pins[mod] = replaced[-1] if replaced[:1] == ["=>"] else ver
    return pins


def _build_metrics_server(dest: Path, version: str) -> None:
    """metrics-server built against Kubernetes' own module versions (``kubernetes_pins``), so its k8s.io/apiserver
    stack comes from the Go build cache the Kubernetes build filled; stamped with the version as its Makefile
    does (``metrics-server --version`` otherwise says ``v0.0.0-master``)."""
    work = cache_root().parent / "build" / f"metrics-server-{version}"
    module = "sigs.k8s.io/metrics-server"
    pins = kubernetes_pins(_kubernetes_module(KUBERNETES_VERSION))
    requires = {module: METRICS_SERVER_VERSION, **pins}
    _wrapper_module(work, "modelpack.dev/build/metrics-server", requires, {}, [f"{module}/cmd/metrics-server"])
    _go(["mod", "tidy"], cwd=work)
    stamp = f"-X k8s.io/client-go/pkg/version.gitVersion={METRICS_SERVER_VERSION}"
    _log(f"go build metrics-server {METRICS_SERVER_VERSION} (Kubernetes {KUBERNETES_VERSION} modules)")
    out = str(dest / "metrics-server")
    _go(["build", "-trimpath", "-ldflags", f"-s -w {stamp}", "-o", out, f"{module}/cmd/metrics-server"], cwd=work)


def ensure_metrics_server() -> Path:
    """The metrics-server binary, building it if the cache lacks it."""
    version = f"{METRICS_SERVER_VERSION}-k8s-{KUBERNETES_VERSION}"
    built = _ensure("metrics-server", version, ("metrics-server",), _build_metrics_server)
    return built / "metrics-server"


@dataclass(frozen=True)
class PrometheusBinaries:
    """The Prometheus server and promtool, for the chart's dashboard and rules (tests/monitoring)."""

    prometheus: Path
    promtool: Path


def ensure_prometheus() -> PrometheusBinaries:
    """Return prometheus and promtool, building them if the cache lacks them."""
    prom = _ensure("prometheus", f"{PROMETHEUS_VERSION}-{PROMETHEUS_TAGS}", PROMETHEUS_COMMANDS, _build_prometheus)
    return PrometheusBinaries(prometheus=prom / "prometheus", promtool=prom / "promtool")


if __name__ == "__main__":
    started = time.monotonic()
    for bins in (ensure_binaries(), ensure_node_binaries(), ensure_prometheus()):
        for field, path in vars(bins).items():
            print(f"{field}: {path}")
    print(f"argocd_lua: {ensure_argocd_lua()}")
    print(f"metrics_server: {ensure_metrics_server()}")
    print(f"total: {time.monotonic() - started:.1f}s")
