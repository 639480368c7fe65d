"""``python -m tests.cluster``: bad input is named; ``up`` serves a usable plane and tears it down on Ctrl-C."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from tests.cluster.binaries import ensure_binaries
from tests.processes import die_with_parent

ROOT = Path(__file__).resolve().parents[2]


def run_cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "tests.cluster", *args], cwd=ROOT, capture_output=True, text=True, timeout=60
    )


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("up", "--pools", "tpu=2"), "unknown pool 'tpu'"),
        (("up", "--pools", "x86"), "pool entry 'x86' must look like NAME=COUNT"),
        (("up", "--pools", "gpu=many"), "node count 'many' for pool 'gpu' is not an integer"),
        (("up", "--metrics-server"), "--metrics-server needs --real-node"),
        (("down",), "invalid choice: 'down'"),
        ((), "the following arguments are required: command"),
    ],
)
def test_bad_arguments_exit_2_naming_the_problem(args: tuple[str, ...], message: str) -> None:
    got = run_cli(*args)
    assert got.returncode == 2
    assert message in got.stderr, got.stderr


def test_up_refuses_a_non_empty_workdir(tmp_path: Path) -> None:
    (tmp_path / "something").write_text("x")
    got = run_cli("up", "--workdir", str(tmp_path))
    assert got.returncode == 2
    assert f"--workdir {tmp_path} is not empty" in got.stderr


def test_build_prints_cached_binary_paths() -> None:
    got = run_cli("build")
    assert got.returncode == 0, got.stderr
    assert f"kube_apiserver: {ensure_binaries().kube_apiserver}" in got.stdout


@pytest.mark.cluster
def test_up_serves_a_plane_until_interrupted(tmp_path: Path) -> None:
    workdir = tmp_path / "plane"
    up = [sys.executable, "-m", "tests.cluster", "up", "--pools", "graviton=1,inferentia=1", "--workdir", str(workdir)]
    proc = subprocess.Popen(
        die_with_parent(up),
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        lines: list[str] = []
        for line in proc.stdout:  # bounded: the CLI exits on failure, closing stdout
            lines.append(line.strip())
            if line.startswith("export KUBECONFIG="):
                break
        kubeconfig = lines[-1].removeprefix("export KUBECONFIG=")
        assert kubeconfig == str(workdir / "admin.kubeconfig"), lines
        env = {**os.environ, "KUBECONFIG": kubeconfig}
        nodes = subprocess.run(
            [str(ensure_binaries().kubectl), "get", "nodes", "-o", "name"],
            env=env, capture_output=True, text=True, timeout=30, check=True,
        ).stdout.split()  # fmt: skip
        assert sorted(nodes) == ["node/graviton-0", "node/inferentia-0"]
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=30) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert not workdir.exists(), "the work dir should be removed when logs are not kept"
