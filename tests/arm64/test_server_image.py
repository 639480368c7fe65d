"""The Graviton build: ``Dockerfile.server`` built for linux/arm64 under qemu-user-static, and run.

Inside the arm64 image (every binary in it is aarch64, run by qemu through binfmt_misc), ``in_image.py`` builds
and traces one tiny BERT with the project's fleet builder, serves it with ``modelpack serve`` on the container's
loopback (``buildah run --network none``: nothing leaves the container), answers one V2 inference request and
runs the same TorchScript with plain torch. Emulated: this proves the image and the code are correct on arm64,
not how fast they are (no latency is asserted).
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import pytest

from tests.cluster.modelpack_images import app_image, ensure_in_store
from tests.cluster.node_images import buildah

pytestmark = [pytest.mark.arm64, pytest.mark.slow]
HERE = Path(__file__).resolve().parent
BINFMT = Path("/proc/sys/fs/binfmt_misc/qemu-aarch64")


def _require_binfmt() -> None:
    entry = BINFMT.read_text() if BINFMT.exists() else ""
    assert entry.startswith("enabled") and any(
        line.startswith("flags:") and "F" in line for line in entry.splitlines()
    ), f"aarch64 binaries cannot run here: {BINFMT} is {entry or 'missing'!r}; run hack/binfmt-arm64.sh (as root)"


@pytest.fixture(scope="module")
def arm64_server() -> str:
    """The arm64 server image in buildah's store (built on first use, then cached by content hash)."""
    _require_binfmt()
    began = time.monotonic()
    ref = ensure_in_store(app_image("server", "linux/arm64"))
    print(f"[arm64] image {ref} ready in {time.monotonic() - began:.0f}s")
    return ref


def fake_cpu_sysfs(root: Path, cpus: int = 2) -> Path:
    """A ``/sys/devices/system/cpu`` with the ``midr_el1`` ID register files an arm64 kernel exposes (Neoverse-N1's
    value, Graviton2's core). qemu-user runs on the x86 kernel's sysfs, which has none: torch's oneDNN
    (xbyak_aarch64) then prints "Can't open MIDR_EL1 sysfs entry" and ``import torch`` segfaults under qemu 7.2.
    An emulation artifact only: a real arm64 kernel has these files."""
    for cpu in range(cpus):
        ident = root / f"cpu{cpu}" / "regs" / "identification"
        ident.mkdir(parents=True)
        (ident / "midr_el1").write_text("0x00000000413fd0c1\n")
    for name in ("online", "possible", "present"):
        (root / name).write_text(f"0-{cpus - 1}\n")
    return root


QEMU_CPU = "max,sve-default-vector-length=32"
"""The emulated CPU: every feature qemu models, with 256-bit SVE vectors like Graviton3's Neoverse-V1. qemu's
default (``max`` with 512-bit SVE, a width no Graviton has) made torch 2.15's SVE kernels compute wrong values:
the tiny BERT's logits differed from x86's for the same weights, in plain torch and in the server alike. With
256-bit vectors, with SVE off, or as ``neoverse-n1`` (Graviton2, no SVE) they agree with x86 to 1e-8 (measured
2026-12-05, docs/testing.md). An emulation artifact: real Graviton hardware was not used."""


def run_in_image(ref: str, tmp: Path) -> dict[str, Any]:
    cpu = fake_cpu_sysfs(tmp / "cpu")
    container = buildah("from", "--pull=never", ref).strip().splitlines()[-1]
    try:
        began = time.monotonic()
        out = buildah("run", "--network", "none", "--env", f"QEMU_CPU={QEMU_CPU}", "-v", f"{HERE}:/probe:ro",
                      "-v", f"{cpu}:/sys/devices/system/cpu:ro", container, "--",
                      "/opt/venv/bin/python", "/probe/in_image.py", timeout=900)  # fmt: skip
        print(f"[arm64] in-image run took {time.monotonic() - began:.0f}s")
    finally:
        buildah("rm", container)
    doc: dict[str, Any] = json.loads(out.strip().splitlines()[-1])
    return doc


def x86_logits(tmp: Path, ids: list[int], mask: list[int]) -> list[float]:
    """The same model (name, so seed, and shape as ``in_image.py``) built and run by plain torch on this x86
    host: what the emulated arm64 must agree with."""
    import torch

    from model_server.fleet import build_fleet, shape_for
    from tests.arm64 import in_image

    build_fleet(tmp, [in_image.MODEL], shape_for("tiny", **in_image.SHAPE))  # type: ignore[arg-type]
    module = torch.jit.load(str(tmp / in_image.MODEL / "model.pt"))
    with torch.no_grad():
        out = module(torch.tensor([ids], dtype=torch.int64), torch.tensor([mask], dtype=torch.int64))
    return [float(x) for x in out[0].tolist()]


def test_arm64_image_traces_a_bert_and_answers_a_v2_request(arm64_server: str, tmp_path: Path) -> None:
    report = run_in_image(arm64_server, tmp_path)
    print(f"[arm64] torch {report['torch']} build {report['build_s']}s ready {report['ready_s']}s "
          f"latency_ms {report['latency_ms']}")  # fmt: skip
    tensor_out = report["tensor_response"]["outputs"][0]["data"]
    print(f"[arm64] text {report['response']['outputs'][0]['data']} tensor {tensor_out} torch {report['torch_logits']}"
          f" ids {report['ids']} mask {report['mask']}")  # fmt: skip
    assert report["machine"] == report["uname_m"] == "aarch64"
    assert report["built"] == ["graviton-bert"]
    assert report["config"]["platform"] == "torchscript"
    response = report["response"]
    assert response["model_name"] == "graviton-bert" and response["id"] == "arm64-1"
    (out,) = response["outputs"]
    assert (out["name"], out["datatype"], out["shape"]) == ("logits", "FP32", [1, 2])
    (expected,) = report["torch_logits"]
    assert out["data"] == pytest.approx(expected, abs=1e-5)
    # Across architectures: the same seeded weights give the same logits on x86 (float kernels differ in order
    # only; a wrong emulated kernel differed by 1e-2, the size of the logits themselves).
    assert expected == pytest.approx(x86_logits(tmp_path / "x86", report["ids"], report["mask"]), abs=1e-5)
    assert report["server_exit"] == 0, "modelpack serve did not stop cleanly on SIGTERM"
