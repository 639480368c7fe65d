"""Kubeconfig documents, built as dicts and dumped with PyYAML."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml


def kubeconfig(
    server: str,
    ca_cert: Path,
    user: str,
    *,
    client_cert: Path | None = None,
    client_key: Path | None = None,
    token: str | None = None,
    namespace: str | None = None,
) -> dict[str, Any]:
    """One cluster, one user, one context: a cert user or a bearer-token user (exactly one of them)."""
    if (client_cert is None) == (token is None):
        raise ValueError("a kubeconfig user needs either a client cert/key pair or a token, not both or neither")
    creds: dict[str, str] = (
        {"token": token}
        if token is not None
        else {"client-certificate": str(client_cert), "client-key": str(client_key)}
    )
    context: dict[str, str] = {"cluster": "modelpack-test", "user": user}
    if namespace:
        context["namespace"] = namespace
    return {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": "modelpack-test", "cluster": {"server": server, "certificate-authority": str(ca_cert)}}],
        "users": [{"name": user, "user": creds}],
        "contexts": [{"name": user, "context": context}],
        "current-context": user,
    }


def write(path: Path, doc: dict[str, Any]) -> Path:
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    path.chmod(0o600)
    return path
