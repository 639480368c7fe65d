"""A real Kubernetes control plane on loopback: etcd, kube-apiserver, controller-manager, scheduler and kwok.

Nothing is faked at the API level: requests go through TLS, authentication, RBAC and admission; the
scheduler binds pods; the controller-manager runs Deployments, Jobs, garbage collection and service
account tokens. Only kubelets are simulated (kwok moves pods on fake nodes to Running / Succeeded).
"""

from __future__ import annotations

import atexit
import json
import os
import shutil
import ssl
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import yaml

from tests.cluster import kubeconfig as kc
from tests.cluster import pki
from tests.cluster.binaries import Binaries, ensure_binaries
from tests.cluster.process import Component, free_port, stop_all

STAGES_FILE = Path(__file__).with_name("kwok_stages.yaml")
SERVICE_CIDR = "10.96.0.0/16"
SA_ISSUER = "https://kubernetes.default.svc.cluster.local"
KWOK_NODE_ANNOTATION = "kwok.x-k8s.io/node"
# Client-side rate limits (defaults 20-50 QPS) would make a 1,000-pod rollout the limiter's benchmark.
CLIENT_RATE = ("--kube-api-qps=1000", "--kube-api-burst=2000")
PORT_ATTEMPTS = 3
# The aggregation layer's client identity towards extension apiservers (metrics-server).
FRONT_PROXY_CLIENT = "front-proxy-client"
DISABLED_CONTROLLERS = ("cloud-node-lifecycle-controller", "service-lb-controller", "node-route-controller")


class ControlPlaneError(RuntimeError):
    """A component failed to start or died; the message carries the tail of its log."""


class KubectlError(subprocess.CalledProcessError):
    """A failed kubectl call whose message shows what kubectl said, not only its exit status."""

    def __str__(self) -> str:
        return f"{' '.join(map(str, self.cmd[2:]))} exited {self.returncode}: {(self.stderr or '').strip()}"


def _log(msg: str) -> None:
    print(f"[controlplane] {msg}", file=sys.stderr, flush=True)


def _http_ok(url: str, context: ssl.SSLContext | None) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=2, context=context) as resp:
            return bool(resp.status == 200)
    except (urllib.error.URLError, OSError):
        return False


class ControlPlane:
    """Start with ``with ControlPlane() as cp:`` or ``cp.start()`` / ``cp.stop()``."""

    def __init__(
        self,
        binaries: Binaries | None = None,
        *,
        keep_logs: bool = False,
        workdir: Path | None = None,
        start_timeout: float = 90.0,
        bind_address: str = "127.0.0.1",
        controller_args: Sequence[str] = (),
    ) -> None:
        """``bind_address``: where the apiserver listens and what it advertises (the ``kubernetes`` Service's
        endpoint). Loopback unless a real node needs it: then the host end of the node's veth pair, which
        the node's network namespace reaches (see ``tests/cluster/realnode.py``). ``controller_args``: more
        kube-controller-manager flags (the real-node cluster's quicker HPA loop).
        """
        self._binaries = binaries
        self.bind_address = bind_address
        self.controller_args = tuple(controller_args)
        self.keep_logs = keep_logs
        self._given_workdir = workdir
        self.start_timeout = start_timeout
        self.workdir = Path()
        self.pki_dir = Path()
        self.log_dir = Path()
        self.kubeconfig = Path()
        self.server = ""
        self._components: list[Component] = []
        self._ca: pki.KeyPair | None = None
        self._started = False
        self._began = 0.0

    # lifecycle ---------------------------------------------------------------------------------

    def __enter__(self) -> ControlPlane:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def start(self) -> ControlPlane:
        if self._started:
            raise ControlPlaneError("control plane already started")
        began = self._began = time.monotonic()
        bins = self._binaries = self._binaries or ensure_binaries()
        self.workdir = self._given_workdir or Path(tempfile.mkdtemp(prefix="modelpack-cp-"))
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.pki_dir = self.workdir / "pki"
        self.log_dir = self.workdir / "logs"
        self.pki_dir.mkdir(exist_ok=True)
        self.log_dir.mkdir(exist_ok=True)
        self._started = True
        atexit.register(self.stop)
        try:
            for attempt in range(1, PORT_ATTEMPTS + 1):
                try:
                    self._start_all(bins)
                    break
                except ControlPlaneError as err:
                    # A free port can be taken by a concurrent run before a component binds it: retry fresh.
                    if "address already in use" not in str(err) or attempt == PORT_ATTEMPTS:
                        raise
                    _log(f"port race ({err.args[0].splitlines()[0]}); retrying")
                    stop_all(list(reversed(self._components)), grace=0.3)
                    self._components = []
                    shutil.rmtree(self.workdir / "etcd", ignore_errors=True)
        except BaseException:
            self.keep_logs = True
            self.stop()
            raise
        _log(f"ready in {time.monotonic() - began:.1f}s: {self.server}, logs in {self.log_dir}")
        return self

    def stop(self) -> None:
        """Kill every component's process group, then remove the work dir unless logs are kept."""
        if not self._started:
            return
        self._started = False
        atexit.unregister(self.stop)
        # Throw-away state needs no graceful apiserver shutdown (~1 s); kept logs get one so they end cleanly.
        stop_all(list(reversed(self._components)), grace=5.0 if self.keep_logs else 0.3)
        self._components = []
        if self.keep_logs:
            _log(f"component logs kept in {self.log_dir}")
        else:
            shutil.rmtree(self.workdir, ignore_errors=True)

    # startup -----------------------------------------------------------------------------------

    def _start_all(self, bins: Binaries) -> None:
        ports = {name: free_port() for name in ("etcd", "etcd-peer", "apiserver", "kcm", "scheduler", "kwok")}
        self.server = f"https://{self.bind_address}:{ports['apiserver']}"
        etcd_url = f"http://127.0.0.1:{ports['etcd']}"
        peer_url = f"http://127.0.0.1:{ports['etcd-peer']}"
        etcd = self._spawn(
            "etcd",
            [
                str(bins.etcd),
                "--name=node0",
                f"--data-dir={self.workdir / 'etcd'}",
                f"--listen-client-urls={etcd_url}",
                f"--advertise-client-urls={etcd_url}",
                f"--listen-peer-urls={peer_url}",
                f"--initial-advertise-peer-urls={peer_url}",
                f"--initial-cluster=node0={peer_url}",
                "--unsafe-no-fsync=true",
                "--log-level=warn",
            ],
        )
        _log("generating certificates")
        kcm_kubeconfig, sched_kubeconfig = self._make_pki()
        self._wait(etcd, lambda: _http_ok(f"{etcd_url}/health", None), "etcd /health")

        p = self.pki_dir
        apiserver = self._spawn(
            "kube-apiserver",
            [
                str(bins.kube_apiserver),
                f"--etcd-servers={etcd_url}",
                f"--bind-address={self.bind_address}",
                f"--secure-port={ports['apiserver']}",
                f"--kubelet-client-certificate={p / 'kubelet-client.crt'}",
                f"--kubelet-client-key={p / 'kubelet-client.key'}",
                # A real kubelet by its InternalIP (inside the node's netns), never by a hostname, which would be
                # looked up with the host's resolvers.
                "--kubelet-preferred-address-types=InternalIP",
                f"--tls-cert-file={p / 'apiserver.crt'}",
                f"--tls-private-key-file={p / 'apiserver.key'}",
                f"--client-ca-file={p / 'ca.crt'}",
                f"--service-account-key-file={p / 'sa.pub'}",
                f"--service-account-signing-key-file={p / 'sa.key'}",
                f"--service-account-issuer={SA_ISSUER}",
                f"--service-cluster-ip-range={SERVICE_CIDR}",
                "--authorization-mode=Node,RBAC",
                "--allow-privileged=true",
                f"--cert-dir={self.workdir / 'apiserver-certs'}",
                *self._aggregation_flags(),
            ],
        )
        ctx = ssl.create_default_context(cafile=str(p / "ca.crt"))
        ctx.load_cert_chain(str(p / "admin.crt"), str(p / "admin.key"))
        self._wait(apiserver, lambda: _http_ok(f"{self.server}/readyz", ctx), "kube-apiserver /readyz")

        kcm = self._spawn(
            "kube-controller-manager",
            [
                str(bins.kube_controller_manager),
                f"--kubeconfig={kcm_kubeconfig}",
                f"--authentication-kubeconfig={kcm_kubeconfig}",
                f"--authorization-kubeconfig={kcm_kubeconfig}",
                "--bind-address=127.0.0.1",
                f"--secure-port={ports['kcm']}",
                f"--cert-dir={self.workdir / 'kcm-certs'}",
                "--leader-elect=false",
                "--use-service-account-credentials=true",
                "--controllers=*," + ",".join(f"-{c}" for c in DISABLED_CONTROLLERS),
                f"--service-account-private-key-file={p / 'sa.key'}",
                f"--root-ca-file={p / 'ca.crt'}",
                f"--cluster-signing-cert-file={p / 'ca.crt'}",
                f"--cluster-signing-key-file={p / 'ca.key'}",
                f"--service-cluster-ip-range={SERVICE_CIDR}",
                *CLIENT_RATE,
                *self.controller_args,
            ],
        )
        scheduler = self._spawn(
            "kube-scheduler",
            [
                str(bins.kube_scheduler),
                f"--kubeconfig={sched_kubeconfig}",
                f"--authentication-kubeconfig={sched_kubeconfig}",
                f"--authorization-kubeconfig={sched_kubeconfig}",
                "--bind-address=127.0.0.1",
                f"--secure-port={ports['scheduler']}",
                f"--cert-dir={self.workdir / 'scheduler-certs'}",
                "--leader-elect=false",
                *CLIENT_RATE,
            ],
        )
        kwok = self._spawn(
            "kwok",
            [
                str(bins.kwok),
                f"--kubeconfig={self.kubeconfig}",
                f"--config={STAGES_FILE}",
                "--manage-all-nodes=false",
                f"--manage-nodes-with-annotation-selector={KWOK_NODE_ANNOTATION}=fake",
                "--manage-nodes-with-label-selector=",
                f"--server-address=127.0.0.1:{ports['kwok']}",
                "--node-ip=127.0.0.1",
                "--node-lease-duration-seconds=40",
            ],
        )
        insecure = ssl.create_default_context()
        insecure.check_hostname = False
        insecure.verify_mode = ssl.CERT_NONE  # the components' self-signed serving certs; loopback health only
        self._wait(kcm, lambda: _http_ok(f"https://127.0.0.1:{ports['kcm']}/healthz", insecure), "controller /healthz")
        self._wait(
            scheduler, lambda: _http_ok(f"https://127.0.0.1:{ports['scheduler']}/healthz", insecure), "sched /healthz"
        )
        self._wait(kwok, lambda: _http_ok(f"http://127.0.0.1:{ports['kwok']}/healthz", None), "kwok /healthz")
        self._wait(apiserver, self._default_service_account_exists, "default ServiceAccount from the controllers")

    def _aggregation_flags(self) -> list[str]:
        """The aggregation layer: the apiserver proxies an APIService's group (metrics.k8s.io) to the extension
        apiserver with the front proxy's client cert and the caller in X-Remote-* headers, which the extension
        trusts from that CA and name only (it reads both from the extension-apiserver-authentication ConfigMap
        the apiserver publishes). Aggregator routing sends the proxied request to the Service's endpoint address
        rather than its ClusterIP: the apiserver runs on the host, outside kube-proxy's reach."""
        p = self.pki_dir
        return [
            f"--requestheader-client-ca-file={p / 'front-proxy-ca.crt'}",
            f"--requestheader-allowed-names={FRONT_PROXY_CLIENT}",
            "--requestheader-extra-headers-prefix=X-Remote-Extra-",
            "--requestheader-group-headers=X-Remote-Group",
            "--requestheader-username-headers=X-Remote-User",
            f"--proxy-client-cert-file={p / 'front-proxy-client.crt'}",
            f"--proxy-client-key-file={p / 'front-proxy-client.key'}",
            "--enable-aggregator-routing=true",
        ]

    def _make_front_proxy(self) -> pki.KeyPair:
        ca = pki.make_ca(self.pki_dir, "front-proxy-ca", "modelpack-test-front-proxy-ca")
        return pki.issue(ca, self.pki_dir, "front-proxy-client", FRONT_PROXY_CLIENT)

    def _make_pki(self) -> tuple[Path, Path]:
        """Every key and cert the plane needs, issued in parallel while etcd boots (openssl is the cost)."""
        p = self.pki_dir
        ca = self._ca = pki.make_ca(p)
        sans = ("IP:127.0.0.1", "DNS:localhost", "DNS:kubernetes", "DNS:kubernetes.default",
                "DNS:kubernetes.default.svc", "DNS:kubernetes.default.svc.cluster.local", "IP:10.96.0.1")  # fmt: skip
        if self.bind_address != "127.0.0.1":
            sans += (f"IP:{self.bind_address}",)
        with ThreadPoolExecutor(max_workers=4) as pool:
            serving = pool.submit(pki.issue, ca, p, "apiserver", "kube-apiserver", (), sans)
            sa_key = pool.submit(pki.make_rsa_key, p, "sa")
            front_proxy = pool.submit(self._make_front_proxy)
            # What the apiserver shows a real kubelet (logs, exec); kwok's fake kubelets ignore it.
            kubelet_client = pool.submit(pki.issue, ca, p, "kubelet-client", "kube-apiserver-kubelet-client",
                                         ("system:masters",))  # fmt: skip
            admin = pool.submit(self._cert_kubeconfig, "admin", "kubernetes-admin", ("system:masters",))
            kcm = pool.submit(self._cert_kubeconfig, "kcm", "system:kube-controller-manager")
            scheduler = pool.submit(self._cert_kubeconfig, "scheduler", "system:kube-scheduler")
            serving.result()
            sa_key.result()
            front_proxy.result()
            kubelet_client.result()
            self.kubeconfig = admin.result()
            return kcm.result(), scheduler.result()

    def _cert_kubeconfig(self, name: str, user: str, groups: tuple[str, ...] = ()) -> Path:
        assert self._ca is not None
        pair = pki.issue(self._ca, self.pki_dir, name, user, groups)
        doc = kc.kubeconfig(self.server, self._ca.cert, user, client_cert=pair.cert, client_key=pair.key)
        return kc.write(self.workdir / f"{name}.kubeconfig", doc)

    def _spawn(self, name: str, argv: list[str]) -> Component:
        comp = Component(name=name, argv=argv, log_path=self.log_dir / f"{name}.log", cwd=self.workdir)
        _log(f"starting {name}")
        comp.start()
        self._components.append(comp)
        return comp

    def _wait(self, comp: Component, ready: Callable[[], bool], what: str) -> None:
        """Poll ``ready`` until it holds, failing fast on any started component's death, not only ``comp``'s.

        A probe can succeed for the wrong process: when another run takes a component's port before it binds,
        that run's server may answer the probe with 200 while our component has died of "address already in
        use". Checking every component, after the probe as well as before, names the dead one (and its port
        race, which ``start`` retries) instead of timing out on a later wait that the dead one would have met.
        """
        deadline = time.monotonic() + self.start_timeout
        while time.monotonic() < deadline:
            self._raise_if_one_died(what)
            if ready():
                self._raise_if_one_died(what)
                _log(f"{what}: ok after {time.monotonic() - self._began:.1f}s")
                return
            time.sleep(0.1)
        raise ControlPlaneError(f"timed out after {self.start_timeout:.0f}s waiting for {what}:\n{comp.tail()}")

    def _raise_if_one_died(self, what: str) -> None:
        for started in self._components:
            code = started.exit_code()
            if code is not None:
                tail = started.tail()
                raise ControlPlaneError(f"{started.name} exited with {code} while waiting for {what}:\n{tail}")

    def _default_service_account_exists(self) -> bool:
        return self.kubectl("get", "serviceaccount", "default", "-n", "default", check=False).returncode == 0

    # clients -----------------------------------------------------------------------------------

    def kubectl(
        self,
        *args: str,
        check: bool = True,
        input: str | None = None,
        kubeconfig: Path | None = None,
        timeout: float = 60.0,
    ) -> subprocess.CompletedProcess[str]:
        """Run kubectl against this plane (admin unless ``kubeconfig`` says otherwise); text in, text out."""
        bins = self._binaries or ensure_binaries()
        env = {k: v for k, v in os.environ.items() if k != "KUBECONFIG"}
        proc = subprocess.run(
            [str(bins.kubectl), f"--kubeconfig={kubeconfig or self.kubeconfig}", *args],
            input=input,
            capture_output=True,
            text=True,
            env=env,
            timeout=timeout,
            check=False,
        )
        if check and proc.returncode != 0:
            raise KubectlError(proc.returncode, proc.args, proc.stdout, proc.stderr)
        return proc

    def kubectl_json(self, *args: str, kubeconfig: Path | None = None) -> Any:
        return json.loads(self.kubectl(*args, "-o", "json", kubeconfig=kubeconfig).stdout)

    def apply(
        self,
        obj_or_yaml: Mapping[str, Any] | Sequence[Mapping[str, Any]] | str,
        *,
        namespace: str | None = None,
        kubeconfig: Path | None = None,
        check: bool = True,
    ) -> subprocess.CompletedProcess[str]:
        """``kubectl apply`` a dict, a list of dicts, or YAML text (into ``namespace`` when given)."""
        if isinstance(obj_or_yaml, str):
            text = obj_or_yaml
        elif isinstance(obj_or_yaml, Mapping):
            text = yaml.safe_dump(dict(obj_or_yaml), sort_keys=False)
        else:
            text = yaml.safe_dump_all([dict(o) for o in obj_or_yaml], sort_keys=False)
        ns = ["-n", namespace] if namespace else []
        return self.kubectl("apply", *ns, "-f", "-", input=text, kubeconfig=kubeconfig, check=check)

    def api_client(self, kubeconfig: Path | None = None) -> Any:
        """A ``kubernetes.client.ApiClient`` for this plane (admin unless ``kubeconfig`` is given)."""
        from kubernetes import config

        return config.new_client_from_config(config_file=str(kubeconfig or self.kubeconfig))

    def kubeconfig_for(self, user: str, groups: Sequence[str] = (), namespace: str | None = None) -> Path:
        """A client-cert kubeconfig for any user and groups: RBAC tests without ServiceAccounts."""
        if self._ca is None:
            raise ControlPlaneError("control plane not started")
        safe = "".join(c if c.isalnum() or c in "-_." else "_" for c in user)
        pair = pki.issue(self._ca, self.pki_dir, f"user-{safe}-{time.monotonic_ns()}", user, tuple(groups))
        doc = kc.kubeconfig(
            self.server, self._ca.cert, user, client_cert=pair.cert, client_key=pair.key, namespace=namespace
        )
        return kc.write(self.workdir / f"user-{safe}-{time.monotonic_ns()}.kubeconfig", doc)

    def serving_cert(self, name: str, common_name: str, sans: Sequence[str]) -> pki.KeyPair:
        """A serving certificate signed by the plane's CA (a real kubelet's, CoreDNS' ...)."""
        if self._ca is None:
            raise ControlPlaneError("control plane not started")
        return pki.issue(self._ca, self.pki_dir, name, common_name, (), tuple(sans))

    @property
    def ca_cert(self) -> Path:
        return self.pki_dir / "ca.crt"

    def service_account_kubeconfig(self, namespace: str, name: str, duration: str = "1h") -> Path:
        """A bearer-token kubeconfig for a ServiceAccount, token minted by ``kubectl create token``."""
        if self._ca is None:
            raise ControlPlaneError("control plane not started")
        token = self.kubectl("create", "token", name, "-n", namespace, f"--duration={duration}").stdout.strip()
        user = f"system:serviceaccount:{namespace}:{name}"
        doc = kc.kubeconfig(self.server, self._ca.cert, user, token=token, namespace=namespace)
        return kc.write(self.workdir / f"sa-{namespace}-{name}.kubeconfig", doc)

    def component_logs(self) -> dict[str, Path]:
        return {c.name: c.log_path for c in self._components}
