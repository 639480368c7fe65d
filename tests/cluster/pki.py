"""Certificates for the test control plane, made with the openssl CLI.

One throw-away CA signs the apiserver's serving cert and every client cert (admin, controller-manager,
scheduler, and any user a test asks for), so RBAC sees real identities from real TLS handshakes.
ECDSA P-256 keys keep generation in the tens of milliseconds.
"""

from __future__ import annotations

import secrets
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

_EC = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]
_DAYS = "30"


@dataclass(frozen=True)
class KeyPair:
    cert: Path
    key: Path


def _openssl(*args: str, cwd: Path) -> None:
    if shutil.which("openssl") is None:
        raise RuntimeError("the openssl CLI is required to make the test control plane's certificates")
    proc = subprocess.run(["openssl", *args], cwd=cwd, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise RuntimeError(f"openssl {args[0]} failed: {proc.stderr.strip()}")


def make_ca(directory: Path, name: str = "ca", common_name: str = "modelpack-test-ca") -> KeyPair:
    """A self-signed CA; a second one (the aggregation layer's front proxy) needs its own ``common_name``, or
    chain building could not tell the two issuers apart."""
    pair = KeyPair(directory / f"{name}.crt", directory / f"{name}.key")
    _openssl(
        "req", "-x509", *_EC, "-keyout", str(pair.key), "-out", str(pair.cert), "-days", _DAYS,
        "-subj", f"/CN={common_name}",
        "-addext", "basicConstraints=critical,CA:TRUE",
        "-addext", "keyUsage=critical,keyCertSign,cRLSign,digitalSignature",
        cwd=directory,
    )  # fmt: skip
    return pair


def subject(common_name: str, groups: tuple[str, ...] = ()) -> str:
    """An openssl -subj string: Kubernetes reads the user from CN and groups from O."""
    for part in (common_name, *groups):
        if not part or "/" in part or "=" in part:
            raise ValueError(f"certificate subject part {part!r} must be non-empty and contain no '/' or '='")
    return "/" + "/".join([*(f"O={g}" for g in groups), f"CN={common_name}"])


def issue(
    ca: KeyPair,
    directory: Path,
    name: str,
    common_name: str,
    groups: tuple[str, ...] = (),
    sans: tuple[str, ...] = (),
) -> KeyPair:
    """Sign a key pair with the CA: a server cert when ``sans`` is given, a client cert otherwise."""
    pair = KeyPair(directory / f"{name}.crt", directory / f"{name}.key")
    csr = directory / f"{name}.csr"
    ext = directory / f"{name}.ext"
    _openssl("req", "-new", *_EC, "-keyout", str(pair.key), "-out", str(csr), "-subj", subject(common_name, groups),
             cwd=directory)  # fmt: skip
    lines = ["basicConstraints=critical,CA:FALSE", "keyUsage=critical,digitalSignature,keyEncipherment"]
    if sans:
        lines += ["extendedKeyUsage=serverAuth,clientAuth", "subjectAltName=" + ",".join(sans)]
    else:
        lines.append("extendedKeyUsage=clientAuth")
    ext.write_text("\n".join(lines) + "\n")
    _openssl(
        "x509", "-req", "-in", str(csr), "-CA", str(ca.cert), "-CAkey", str(ca.key),
        "-set_serial", str(secrets.randbits(63)),  # not -CAcreateserial: concurrent issues would race on ca.srl
        "-out", str(pair.cert), "-days", _DAYS, "-extfile", str(ext),
        cwd=directory,
    )  # fmt: skip
    csr.unlink()
    ext.unlink()
    return pair


def make_rsa_key(directory: Path, name: str) -> tuple[Path, Path]:
    """The service-account signing key (RSA: what every token verifier accepts) and its public half."""
    key, pub = directory / f"{name}.key", directory / f"{name}.pub"
    _openssl("genrsa", "-out", str(key), "2048", cwd=directory)
    _openssl("rsa", "-in", str(key), "-pubout", "-out", str(pub), cwd=directory)
    return key, pub
