"""Karpenter's own CRDs, taken from its Go module (the only route to them here), cached by version.

The module zip from the Go module proxy carries ``pkg/apis/crds``; the NodePool and EC2NodeClass CRDs in
it are what a real cluster validates ``examples/eks/karpenter.yaml`` against.
"""

from __future__ import annotations

import json
import os
import subprocess
import zipfile
from pathlib import Path

from tests.cluster.binaries import cache_root

KARPENTER_MODULE = "github.com/aws/karpenter-provider-aws"
KARPENTER_VERSION = "v1.15.1"
CRD_FILES = ("karpenter.sh_nodepools.yaml", "karpenter.k8s.aws_ec2nodeclasses.yaml")


def karpenter_crds() -> list[Path]:
    """Paths of the NodePool and EC2NodeClass CRDs, downloading the module once."""
    target = cache_root() / f"karpenter-crds-{KARPENTER_VERSION}"
    paths = [target / name for name in CRD_FILES]
    if all(p.exists() for p in paths):
        return paths
    env = {**os.environ, "GOTOOLCHAIN": "local", "GOFLAGS": "-mod=mod"}
    proc = subprocess.run(
        ["go", "mod", "download", "-json", f"{KARPENTER_MODULE}@{KARPENTER_VERSION}"],
        capture_output=True,
        text=True,
        env=env,
        cwd=cache_root().parent if cache_root().parent.exists() else None,
        check=False,
        timeout=300,
    )
    # The zip is fetched even when the module wants a newer Go to build: only its YAML is needed.
    info = json.loads(proc.stdout or "{}")
    zip_path = info.get("Zip")
    if not zip_path or not Path(zip_path).exists():
        raise RuntimeError(f"go mod download {KARPENTER_MODULE}@{KARPENTER_VERSION} failed: {proc.stdout}{proc.stderr}")
    target.mkdir(parents=True, exist_ok=True)
    prefix = f"{KARPENTER_MODULE}@{KARPENTER_VERSION}/pkg/apis/crds/"
    with zipfile.ZipFile(zip_path) as zf:
        for p in paths:
            p.write_bytes(zf.read(prefix + p.name))
    return paths
