"""Read the examples/eks manifests as Kubernetes objects, placeholders rendered as docs/eks.md renders them."""

from __future__ import annotations

import string
from pathlib import Path
from typing import Any

import yaml

EKS_DIR = Path(__file__).resolve().parents[2] / "examples" / "eks"
PLACEHOLDERS = {
    "CLUSTER_NAME": "modelpack",
    "AWS_PARTITION": "aws",
    "AWS_ACCOUNT_ID": "111122223333",
    "KARPENTER_NAMESPACE": "kube-system",
}


def rendered(name: str) -> str:
    """The file with ${VAR} placeholders filled (what `envsubst` does); an unknown placeholder fails.

    Comment lines are left alone: they show shell commands with their own ``$`` syntax.
    """
    lines = (EKS_DIR / name).read_text().splitlines(keepends=True)
    return "".join(
        line if line.lstrip().startswith("#") else string.Template(line).substitute(PLACEHOLDERS) for line in lines
    )


def objects(name: str) -> list[dict[str, Any]]:
    return [d for d in yaml.safe_load_all(rendered(name)) if d is not None]


def of_kind(name: str, kind: str) -> list[dict[str, Any]]:
    return [o for o in objects(name) if o.get("kind") == kind]
