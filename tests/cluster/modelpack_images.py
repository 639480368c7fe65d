"""The images the real node runs modelpack from: ``Dockerfile.server`` and ``Dockerfile.operator``, built with
buildah on a Debian base made here.

- The base: ``debootstrap --variant=minbase bookworm`` from the Debian mirror the host's apt uses, with
  python3 (3.11), its venv module and ``python-is-python3`` (the Dockerfiles call ``python``, as in
  ``python:3.11-slim``), tarred and ``ADD``-ed into a ``FROM scratch`` image. Its cache key is what
  debootstrap was asked for (suite, packages, architecture), not the bytes it produced, so it is made once.
- The Dockerfiles get ``BASE_IMAGE`` (that base) as a build argument, and pip inside the build reaches the
  package index as the host does: the host's effective pip settings and CA bundle are build secrets, mounted
  only while a ``RUN`` step runs (never a layer of the image).
- torch: the CPU index ``Dockerfile.server`` names by default is not reachable here, so the build takes torch
  from a local wheelhouse (``--build-context wheelhouse=DIR``), filled once by ``pip download`` from PyPI
  with the test venv's own pins (``hack/constraints.txt``). PyPI's x86_64 torch depends on the CUDA
  libraries, which is why the x86 server image is gigabytes; see docs/testing.md for the sizes.
- arm64 (Graviton): the same base, wheelhouse and Dockerfile for ``platform="linux/arm64"``, run under
  qemu-user-static (``hack/binfmt-arm64.sh``); the wheelhouse is ``wheelhouse-arm64``, fetched with pip's
  foreign-platform options (``tests/cluster/foreign_wheels.py``), and ``tests/arm64`` runs the image.
- Tags are content hashes of what goes into an image (``node_images.ImageSpec.tag``), so an unchanged tree
  reuses the cached archive without starting buildah.
"""

from __future__ import annotations

import configparser
import hashlib
import io
import os
import re
import shutil
import subprocess
import sys
import time
import tomllib
from pathlib import Path

from tests.cluster.foreign_wheels import build_sdists, download_sdists, pip_target_args, split_sdist_only
from tests.cluster.node_images import ImageBuildError, ImageSpec, build, buildah, images_dir

ROOT = Path(__file__).resolve().parents[2]
DEBIAN_SUITE = "bookworm"
BASE_PACKAGES = ("python3", "python3-venv", "python-is-python3", "ca-certificates")
BASE_NAME = "localhost/modelpack/debian-python"
SERVER_NAME = "localhost/modelpack/model-server"
OPERATOR_NAME = "localhost/modelpack/operator"
# Where the host CA bundle is mounted inside a RUN step (Debian's and python:3.11-slim's bundle path).
CA_TARGET = "/etc/ssl/certs/ca-certificates.crt"
# pip settings that mean the same inside the build as on the host; paths (find-links, cert) do not.
PIP_KEYS = ("index-url", "extra-index-url", "trusted-host", "timeout", "default-timeout", "retries", "proxy")
CONTEXT_DIRS = ("modelpack", "model_server", "operator")
CONTEXT_FILES = ("pyproject.toml", "README.md")


def _log(msg: str) -> None:
    print(f"[images] {msg}", file=sys.stderr, flush=True)


def debian_mirror(sources: Path = Path("/etc/apt/sources.list.d/debian.sources")) -> str:
    """The host's Debian mirror (the first ``URIs:`` of its deb822 sources, or of sources.list)."""
    if sources.exists():
        for line in sources.read_text().splitlines():
            if line.startswith("URIs:") and "security" not in line:
                return line.split()[1]
    legacy = Path("/etc/apt/sources.list")
    if legacy.exists():
        for line in legacy.read_text().splitlines():
            parts = line.split()
            if len(parts) >= 3 and parts[0] == "deb" and "security" not in parts[1]:
                return parts[1]
    raise ImageBuildError("no Debian mirror found in /etc/apt/sources.list.d/debian.sources or /etc/apt/sources.list")


def _arch(platform: str) -> str:
    return {"linux/amd64": "amd64", "linux/arm64": "arm64"}[platform]


def base_image(platform: str = "linux/amd64") -> ImageSpec:
    """The Debian bookworm + python3 base, debootstrapped once per (suite, packages, arch) into the cache."""
    arch = _arch(platform)
    key = hashlib.sha256(f"{DEBIAN_SUITE}\0{','.join(BASE_PACKAGES)}\0{arch}\0minbase".encode()).hexdigest()[:16]
    context = images_dir() / "contexts" / f"debian-python-{arch}-{key}"
    if not (context / "Containerfile").exists():
        _debootstrap(context, arch)
    return ImageSpec(
        name=BASE_NAME, context=context, containerfile=context / "Containerfile", platform=platform,
        files=(context / "Containerfile",), extra_hash=key,
    )  # fmt: skip


def _debootstrap(context: Path, arch: str) -> None:
    if shutil.which("debootstrap") is None:
        raise ImageBuildError("debootstrap is required to make the base image (hack/system-deps.sh installs it)")
    tmp = context.with_name(context.name + ".partial")
    shutil.rmtree(tmp, ignore_errors=True)
    rootfs = tmp / "rootfs"
    rootfs.mkdir(parents=True)
    started = time.monotonic()
    _log(f"debootstrap --variant=minbase {DEBIAN_SUITE} ({arch}, {', '.join(BASE_PACKAGES)})")
    # A private mount namespace: debootstrap mounts /proc and /sys in the target; a killed run leaves none.
    argv = ["unshare", "--mount", "--propagation", "private", "--", "debootstrap", "--variant=minbase",
            f"--arch={arch}", f"--include={','.join(BASE_PACKAGES)}", DEBIAN_SUITE, str(rootfs),
            debian_mirror()]  # fmt: skip
    proc = subprocess.run(argv, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        log = rootfs / "debootstrap" / "debootstrap.log"
        tail = log.read_text()[-3000:] if log.exists() else ""
        raise ImageBuildError(f"debootstrap exited {proc.returncode}:\n{proc.stderr[-3000:]}\n{tail}")
    for junk in ("var/cache/apt/archives", "var/lib/apt/lists"):
        for entry in (rootfs / junk).glob("*"):
            if entry.is_file():
                entry.unlink()
    subprocess.run(["tar", "-C", str(rootfs), "--numeric-owner", "-cf", str(tmp / "rootfs.tar"), "."], check=True)
    shutil.rmtree(rootfs)
    (tmp / "Containerfile").write_text('FROM scratch\nADD rootfs.tar /\nCMD ["python3"]\n')
    shutil.rmtree(context, ignore_errors=True)
    tmp.rename(context)
    _log(f"debootstrap done in {time.monotonic() - started:.0f}s: {(context / 'rootfs.tar').stat().st_size >> 20} MiB")


def host_pip_conf(pip: list[str] | None = None) -> str:
    """The host's effective pip settings (files and ``PIP_*`` variables) as one pip.conf for the build.

    Only settings that mean the same inside the build are kept (index URLs, trusted hosts, timeouts, proxy);
    the CA bundle is passed separately and ``cert`` points at where it is mounted.
    """
    argv = pip or [sys.executable, "-m", "pip"]
    out = subprocess.run([*argv, "config", "list"], capture_output=True, text=True, check=False).stdout
    conf = configparser.ConfigParser()
    conf["global"] = {}
    for line in out.splitlines():
        match = re.fullmatch(r"[^.]*\.([a-z-]+)='(.*)'", line.strip())
        if match and match.group(1) in PIP_KEYS:
            conf["global"][match.group(1)] = match.group(2)
    conf["global"]["cert"] = CA_TARGET
    buf = io.StringIO()
    conf.write(buf)
    return buf.getvalue()


def host_ca_bundle() -> Path:
    for candidate in (os.environ.get("PIP_CERT"), os.environ.get("SSL_CERT_FILE"), CA_TARGET):
        if candidate and Path(candidate).is_file():
            return Path(candidate)
    raise ImageBuildError(f"no CA bundle for pip in the build (PIP_CERT, SSL_CERT_FILE, {CA_TARGET})")


def build_secrets() -> dict[str, Path]:
    """``pip.conf`` and ``ca-bundle`` secrets (the ids both Dockerfiles mount), written under the cache."""
    secrets_dir = images_dir() / "secrets"
    secrets_dir.mkdir(parents=True, exist_ok=True)
    pip_conf = secrets_dir / "pip.conf"
    pip_conf.write_text(host_pip_conf())
    return {"pip.conf": pip_conf, "ca-bundle": host_ca_bundle()}


def wheelhouse_dir(platform: str = "linux/amd64") -> Path:
    """``~/.cache/modelpack/wheelhouse`` for amd64 (the name it always had), ``wheelhouse-<arch>`` for the others."""
    root = images_dir().parent / "wheelhouse"
    return root if platform == "linux/amd64" else root.with_name(f"{root.name}-{_arch(platform)}")


def server_requirements(pyproject: Path = ROOT / "pyproject.toml") -> tuple[str, ...]:
    """What ``pip install '.[server]'`` needs, build backend included: the wheelhouse's contents."""
    doc = tomllib.loads(pyproject.read_text())
    return (
        *doc["build-system"]["requires"],
        *doc["project"]["dependencies"],
        *doc["project"]["optional-dependencies"]["server"],
    )


def ensure_wheelhouse(requirements: tuple[str, ...] | None = None, platform: str = "linux/amd64") -> Path:
    """The server image's dependencies as wheels for ``platform``, at the test venv's pinned versions
    (``hack/constraints.txt``), downloaded once from PyPI; the image build then installs from it with ``--no-index``."""
    requirements = requirements or server_requirements()
    dest = wheelhouse_dir(platform)
    stamp = dest / ".complete"
    target = pip_target_args(platform)
    want = "\n".join([*requirements, *target]) + "\n" + (ROOT / "hack" / "constraints.txt").read_text()
    if stamp.exists() and stamp.read_text() == want:
        return dest
    tmp = dest.with_name(dest.name + ".partial")
    if dest.exists() and not tmp.exists():
        dest.rename(tmp)  # pip skips the wheels it already has
    tmp.mkdir(parents=True, exist_ok=True)
    started = time.monotonic()
    wheels, sdists = split_sdist_only(requirements) if target else (requirements, ())
    constraints = ROOT / "hack" / "constraints.txt"
    _log(f"pip download {len(requirements)} requirements for {platform} (with hack/constraints.txt) into {dest}")
    argv = [sys.executable, "-m", "pip", "download", "-q", "-c", str(constraints), "-d", str(tmp), *target,
            *wheels]  # fmt: skip
    proc = subprocess.run(argv, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise ImageBuildError(f"pip download for the {platform} wheelhouse failed:\n{proc.stderr[-3000:]}")
    if sdists:
        sdist_dir = tmp.with_name(tmp.name + "-sdists")
        try:
            found = download_sdists(sdists, constraints, sdist_dir, sys.executable)
            _log(f"building {', '.join(p.name for p in found)} for {platform} in its base image (emulated)")
            build_sdists(ensure_in_store(base_image(platform)), found, tmp)
        finally:
            shutil.rmtree(sdist_dir, ignore_errors=True)
    (tmp / ".complete").write_text(want)
    shutil.rmtree(dest, ignore_errors=True)
    tmp.rename(dest)
    size = sum(p.stat().st_size for p in dest.iterdir()) >> 20
    _log(f"{platform} wheelhouse ready in {time.monotonic() - started:.0f}s: {size} MiB")
    return dest


def context_files(root: Path = ROOT) -> tuple[Path, ...]:
    """What the Dockerfiles COPY from the checkout (less bytecode), the files an image's tag hashes."""
    files = [root / f for f in CONTEXT_FILES]
    for top in CONTEXT_DIRS:
        files += [
            p for p in (root / top).rglob("*")
            if p.is_file() and "__pycache__" not in p.parts and p.suffix not in (".pyc", ".pyo")
            and not any(part.endswith(".egg-info") for part in p.parts)
        ]  # fmt: skip
    return tuple(sorted(files))


def ensure_in_store(spec: ImageSpec) -> str:
    """``spec`` built and present in buildah's store (a base for a later ``FROM``); returns its reference."""
    archive = build(spec)
    try:
        buildah("inspect", "--type", "image", spec.ref())
    except ImageBuildError:  # the archive is cached but the store was emptied: load it back
        buildah("pull", f"docker-archive:{archive}")
    return spec.ref()


def app_image(kind: str, platform: str = "linux/amd64") -> ImageSpec:
    """The server (``kind="server"``) or operator image from its Dockerfile, on the local Debian base."""
    base = ensure_in_store(base_image(platform))
    name = {"server": SERVER_NAME, "operator": OPERATOR_NAME}[kind]
    wheelhouse = ensure_wheelhouse(platform=platform) if kind == "server" else None
    listing = "" if wheelhouse is None else "\n".join(sorted(p.name for p in wheelhouse.glob("*.whl")))
    return ImageSpec(
        name=name,
        context=ROOT,
        containerfile=ROOT / f"Dockerfile.{kind}",
        build_args={"BASE_IMAGE": base},
        platform=platform,
        files=context_files(),
        secrets=build_secrets(),
        build_contexts={} if wheelhouse is None else {"wheelhouse": wheelhouse},
        extra_hash=listing,
    )


if __name__ == "__main__":
    # `make test` builds the images before pytest (as it does the binaries), so the first session's fixture does
    # not spend minutes in a build; with an unchanged tree this is a few hashes and two file checks.
    began = time.monotonic()
    for kind in ("operator", "server"):
        spec = app_image(kind)
        print(f"{kind}: {spec.ref()} {build(spec)}")
    print(f"total: {time.monotonic() - began:.1f}s")
