"""s3:// stores against a real S3-protocol server (moto's, over HTTP on localhost): listing, on-demand
download into the cache, reuse of cached files, and a server process serving straight from a bucket."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore.config import Config
from moto.server import ThreadedMotoServer

from model_server.store import S3Store, StoreError, open_store
from modelpack.serving import STORE_UNAVAILABLE_EXIT
from tests.model_server.conftest import StartServer, free_port
from tests.model_server.helpers import tensor_body

MODELPACK = str(Path(sys.executable).with_name("modelpack"))
CREDENTIALS = {"AWS_ACCESS_KEY_ID": "test", "AWS_SECRET_ACCESS_KEY": "test", "AWS_DEFAULT_REGION": "us-east-1"}


@pytest.fixture(scope="module")
def s3_endpoint() -> Iterator[str]:
    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    yield f"http://127.0.0.1:{port}"
    server.stop()


@pytest.fixture(scope="module")
def bucket(s3_endpoint: str, fleet: Path) -> str:
    client = s3_client(s3_endpoint)
    client.create_bucket(Bucket="models")
    for name in ("m-a", "m-b", "corrupt"):
        for path in (fleet / name).iterdir():
            client.upload_file(str(path), "models", f"fleet/v1/{name}/{path.name}")
    return "models"


def s3_client(endpoint: str) -> Any:
    return boto3.client(
        "s3",
        endpoint_url=endpoint,
        aws_access_key_id="test",
        aws_secret_access_key="test",
        region_name="us-east-1",
    )


def test_lists_and_downloads_on_demand(s3_endpoint: str, bucket: str, tmp_path: Path) -> None:
    store = S3Store(bucket, "/fleet/v1/", tmp_path, client=s3_client(s3_endpoint))
    assert store.uri == "s3://models/fleet/v1"
    assert store.list_models() == ["corrupt", "m-a", "m-b"]
    assert not (tmp_path / "models").exists()  # nothing downloaded by listing
    local = store.model_dir("m-a")
    assert sorted(p.name for p in local.iterdir()) == ["config.json", "model.pt", "tokenizer.json"]
    stamp = (local / "model.pt").stat().st_mtime_ns
    assert store.model_dir("m-a") == local
    assert (local / "model.pt").stat().st_mtime_ns == stamp  # cached, not fetched again
    with pytest.raises(FileNotFoundError, match="no objects under s3://models/fleet/v1/zzz/"):
        store.model_dir("zzz")


def test_bad_s3_uris(tmp_path: Path) -> None:
    with pytest.raises(StoreError, match="no bucket"):
        open_store("s3:///prefix", tmp_path)
    assert isinstance(open_store("s3://bucket", tmp_path), S3Store)


def test_server_serves_from_a_bucket(s3_endpoint: str, bucket: str, tmp_path: Path, start_server: StartServer) -> None:
    env = {**CREDENTIALS, "AWS_ENDPOINT_URL": s3_endpoint}
    server = start_server("--store", "s3://models/fleet/v1", "--cache-dir", str(tmp_path / "cache"), env=env)
    rows = {r["name"]: r["state"] for r in server.client.get("/v2/repository/index").json()}
    assert rows == {"m-a": "UNAVAILABLE", "m-b": "UNAVAILABLE", "corrupt": "UNAVAILABLE"}
    assert server.client.post("/v2/models/m-b/infer", json=tensor_body()).status_code == 200
    assert (tmp_path / "cache" / "models" / "fleet" / "v1" / "m-b" / "model.pt").is_file()
    bad = server.client.post("/v2/models/corrupt/infer", json=tensor_body())
    assert bad.status_code == 503 and "TorchScript" in bad.json()["error"]


def test_check_names_a_missing_bucket_an_empty_prefix_and_an_unreachable_endpoint(
    s3_endpoint: str, bucket: str, tmp_path: Path
) -> None:
    client = s3_client(s3_endpoint)
    S3Store(bucket, "fleet/v1", tmp_path, client=client).check()  # readable and not empty: no error
    with pytest.raises(StoreError, match=r"cannot read s3://no-such-bucket/fleet: .*NoSuchBucket"):
        S3Store("no-such-bucket", "fleet", tmp_path, client=client).check()
    with pytest.raises(StoreError, match=r"s3://models/typo holds no objects: nothing to serve"):
        S3Store(bucket, "typo", tmp_path, client=client).check()
    closed = boto3.client(
        "s3",
        endpoint_url=f"http://127.0.0.1:{free_port()}",
        aws_access_key_id="test",
        aws_secret_access_key="test",
        region_name="us-east-1",
        config=Config(retries={"max_attempts": 1}, connect_timeout=2),
    )
    with pytest.raises(StoreError, match=r"cannot read s3://models/fleet/v1: Could not connect"):
        S3Store(bucket, "fleet/v1", tmp_path, client=closed).check()


def test_server_exits_with_the_store_status_naming_the_store(s3_endpoint: str, bucket: str, tmp_path: Path) -> None:
    env = {**os.environ, **CREDENTIALS, "AWS_ENDPOINT_URL": s3_endpoint, "HOME": str(tmp_path)}
    cmd = [MODELPACK, "serve", "--store", "s3://no-such-bucket/fleet", "--models", "m-a", "--port", "0"]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=60)
    assert proc.returncode == STORE_UNAVAILABLE_EXIT, proc.stderr
    last = proc.stderr.strip().splitlines()[-1]  # what Kubernetes keeps as the pod's termination message
    assert last.startswith("modelpack serve: error: store unavailable: cannot read s3://no-such-bucket/fleet:")
