"""An ``s3://`` store on the real node: server pods read their models from a real S3-compatible server.

moto's server mode (``python -m moto.server``, from the test venv) runs inside the node's network namespace,
bound to the node's own address: the pods reach it there (a local address of their node), the test fills the
bucket with boto3 over the veth from the host end, and nothing else can reach it. The pack says only
``s3://bucket/prefix`` and a region; the endpoint and the (throwaway) credentials go in through the pack's
``podTemplate`` env, where botocore reads ``AWS_ENDPOINT_URL_S3`` as it would on a cluster using any other
S3-compatible store. moto is an emulator: S3's HTTP API and botocore's client are real, AWS's IAM is not.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.cluster.realcluster import RealCluster
from tests.cluster.wait import wait_for
from tests.processes import die_with_parent
from tests.realnode.packs import (
    MODELS,
    PER_SERVER,
    SERVER_SELECTOR,
    condition,
    control_plane,
    pack,
    wait_pack,
)

pytestmark = [pytest.mark.cluster, pytest.mark.realnode, pytest.mark.slow]
PORT = 5055
BUCKET, PREFIX, REGION = "models", "fleet/bert", "us-east-1"
KEYS = {"AWS_ACCESS_KEY_ID": "modelpack-test", "AWS_SECRET_ACCESS_KEY": "modelpack-test-secret"}


@pytest.fixture
def s3_endpoint(real_cluster: RealCluster, store: Path, tmp_path: Path) -> Iterator[str]:
    """moto's S3 server in the node's network namespace, on the node IP, with the store uploaded under PREFIX."""
    net = real_cluster.network
    endpoint = f"http://{net.node_ip}:{PORT}"
    log = (tmp_path / "moto.log").open("w")
    argv = ["nsenter", f"--target={net.holder_pid}", "--net", "--", sys.executable, "-m", "moto.server",
            "-H", net.node_ip, "-p", str(PORT)]  # fmt: skip
    proc = subprocess.Popen(die_with_parent(argv), stdout=log, stderr=subprocess.STDOUT)
    try:
        import boto3

        s3 = boto3.client("s3", endpoint_url=endpoint, region_name=REGION, aws_access_key_id=KEYS["AWS_ACCESS_KEY_ID"],
                          aws_secret_access_key=KEYS["AWS_SECRET_ACCESS_KEY"])  # fmt: skip

        def up() -> bool:
            try:
                s3.list_buckets()
            except Exception:  # connection refused until moto listens
                assert proc.poll() is None, (tmp_path / "moto.log").read_text()
                return False
            return True

        wait_for(up, f"moto S3 server at {endpoint}", 60, 0.3)
        s3.create_bucket(Bucket=BUCKET)
        files = [p for p in store.rglob("*") if p.is_file() and p.relative_to(store).parts[0] in MODELS[:PER_SERVER]]
        for path in files:
            s3.upload_file(str(path), BUCKET, f"{PREFIX}/{path.relative_to(store).as_posix()}")
        print(f"[s3] {len(files)} files of {PER_SERVER} models uploaded to s3://{BUCKET}/{PREFIX} at {endpoint}")
        yield endpoint
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()


def s3_pack(ns: str, endpoint: str) -> dict[str, Any]:
    doc = pack(ns, MODELS[:PER_SERVER])
    env = [{"name": "AWS_ENDPOINT_URL_S3", "value": endpoint}, *({"name": k, "value": v} for k, v in KEYS.items())]
    doc["spec"]["store"] = {"uri": f"s3://{BUCKET}/{PREFIX}", "region": REGION}
    doc["spec"]["compute"]["podTemplate"] = {"spec": {"serverContainer": {"env": env}}}
    return doc


def test_server_pods_serve_models_read_from_an_s3_store(
    real_cluster: RealCluster, real_namespace: str, images: dict[str, str], operator: str, s3_endpoint: str
) -> None:
    cp, ns = control_plane(real_cluster), real_namespace
    cp.apply([s3_pack(ns, s3_endpoint)], namespace=ns)
    started = time.monotonic()
    st = wait_pack(cp, ns, "ModelPack Ready from the s3:// store", lambda s: s.get("phase") == "Ready" and s, 300)
    print(f"[s3] pack Ready in {time.monotonic() - started:.0f}s")
    assert st["readyModels"] == PER_SERVER and condition(st, "Degraded")["status"] == "False", st
    (pod,) = cp.kubectl_json("get", "pods", "-n", ns, "-l", SERVER_SELECTOR)["items"]
    port = pod["spec"]["containers"][0]["ports"][0]["containerPort"]
    # One V2 inference per model, from inside the server pod: each one is fetched from S3 into the cache first.
    body = {"inputs": [{"name": "text", "datatype": "BYTES", "shape": [1], "data": ["a short request"]}]}
    infer = (
        "import json, sys, urllib.request as u\n"
        f"for m in {MODELS[:PER_SERVER]!r}:\n"
        f"    r = u.Request('http://127.0.0.1:{port}/v2/models/' + m + '/infer', data={json.dumps(body)!r}.encode(),"
        " headers={'Content-Type': 'application/json'})\n"
        "    out = json.loads(u.urlopen(r, timeout=60).read())\n"
        "    print(m, out['model_name'], [o['name'] for o in out['outputs']])\n"
        "import os\n"
        "print('cached', sorted(d for _, ds, _ in os.walk('/var/cache/modelpack') for d in ds))\n"
    )
    got = cp.kubectl("exec", pod["metadata"]["name"], "-n", ns, "--", "python", "-c", infer, check=False)
    print(got.stdout, got.stderr)
    assert got.returncode == 0, got.stderr
    lines = got.stdout.splitlines()
    assert [ln.split()[:2] for ln in lines[:PER_SERVER]] == [[m, m] for m in MODELS[:PER_SERVER]], got.stdout
    assert all(m in lines[-1] for m in MODELS[:PER_SERVER]), got.stdout  # the models came from S3 into the cache
