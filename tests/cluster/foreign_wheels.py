"""Wheels for another architecture's image (arm64 on this x86 host): pip's options for them, and the wheels PyPI
does not have, built from their sdists inside the foreign base image under qemu.

``pip download --platform`` can only take binary wheels (pip cannot build an sdist for a machine it is not on),
and one dependency has none for linux/aarch64: hdrhistogram (its ``pyhdrh`` C codec) ships manylinux wheels for
x86_64 only. Its sdist is built into a wheel in a throwaway container of the arm64 Debian base with gcc and
python3-dev, once per wheelhouse; the server image itself never gets a compiler.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

from tests.cluster.node_images import ImageBuildError, buildah

# The base's python3 and glibc (bookworm): the tags a foreign-architecture wheel may carry.
BASE_PYTHON = "3.11"
BASE_GLIBC_MINOR = 36
# Dependencies PyPI has only as an sdist for linux/aarch64 (checked against PyPI's file list for the pinned
# versions), with what they need, at run time or to build, that pip then no longer finds through them; built by
# build_sdists().
SDIST_ONLY: dict[str, tuple[str, ...]] = {"hdrhistogram": ("pbr", "setuptools", "wheel")}
BUILD_PACKAGES = ("gcc", "libc6-dev", "python3-dev")
_MACHINES = {"x86_64": "linux/amd64", "aarch64": "linux/arm64", "arm64": "linux/arm64"}


def is_foreign(platform: str, machine: str | None = None) -> bool:
    return platform != _MACHINES.get(machine or os.uname().machine)


def pip_target_args(platform: str, machine: str | None = None) -> list[str]:
    """``pip download`` options that fetch wheels for ``platform`` from a host of another architecture.

    Empty for the host's own platform (pip picks its own tags, as it always did for amd64). For another one: binary
    wheels only, for the base's CPython 3.11 and every manylinux tag its glibc accepts (aarch64 torch is
    ``manylinux_2_28``)."""
    if not is_foreign(platform, machine):
        return []
    cpu = {"linux/amd64": "x86_64", "linux/arm64": "aarch64"}[platform]
    tags = [f"manylinux_2_{minor}_{cpu}" for minor in range(BASE_GLIBC_MINOR, 16, -1)] + [f"manylinux2014_{cpu}"]
    return [*(f"--platform={tag}" for tag in tags), "--only-binary=:all:", f"--python-version={BASE_PYTHON}",
            "--implementation=cp", f"--abi=cp{BASE_PYTHON.replace('.', '')}"]  # fmt: skip


def split_sdist_only(requirements: tuple[str, ...]) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """(requirements pip can download as wheels, with the SDIST_ONLY ones' dependencies; the SDIST_ONLY ones)."""

    def name(req: str) -> str:
        return req.split(">")[0].split("=")[0].split("[")[0].split("<")[0].strip().lower()

    sdists = tuple(r for r in requirements if name(r) in SDIST_ONLY)
    extra = tuple(dep for r in sdists for dep in SDIST_ONLY[name(r)])
    return tuple(r for r in requirements if r not in sdists) + extra, sdists


def download_sdists(requirements: tuple[str, ...], constraints: Path, dest: Path, python: str) -> list[Path]:
    """The SDIST_ONLY requirements' sdists (pinned by ``constraints``), into ``dest``."""
    dest.mkdir(parents=True, exist_ok=True)
    argv = [python, "-m", "pip", "download", "-q", "--no-deps", "--no-binary=:all:", "-c", str(constraints),
            "-d", str(dest), *requirements]  # fmt: skip
    proc = subprocess.run(argv, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise ImageBuildError(f"pip download of the sdists {', '.join(requirements)} failed:\n{proc.stderr[-3000:]}")
    return sorted(dest.glob("*.tar.gz"))


def build_sdists(base_ref: str, sdists: list[Path], wheelhouse: Path) -> list[Path]:
    """Build ``sdists`` into wheels in ``wheelhouse`` inside a container of ``base_ref`` (the foreign base; its
    binaries run under qemu), installing the compiler there with apt; build requirements come from the wheelhouse
    (``--no-index``), so the wheels it already holds must include them. The container is removed afterwards."""
    if not sdists:
        return []
    container = buildah("from", "--pull=never", base_ref).strip().splitlines()[-1]
    try:
        run = ["run", "--network", "host", "-v", f"{wheelhouse}:/wheelhouse", "-v", f"{sdists[0].parent}:/sdists:ro",
               container, "--"]  # fmt: skip
        buildah(*run, "sh", "-c", "apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "
                f"--no-install-recommends {' '.join(BUILD_PACKAGES)} >/dev/null")  # fmt: skip
        names = " ".join(f"/sdists/{p.name}" for p in sdists)
        deps = " ".join(sorted({d for p in sdists for d in SDIST_ONLY[p.name.split("-")[0].lower()]}))
        # No build isolation, and PIP_* in the environment: a legacy setup.py's setup_requires (hdrhistogram's
        # pbr) is fetched by a nested pip that sees neither command-line flag, and no index is reachable here.
        offline = "PIP_NO_INDEX=1 PIP_FIND_LINKS=/wheelhouse PIP_DISABLE_PIP_VERSION_CHECK=1"
        buildah(*run, "sh", "-c", f"python -m venv /tmp/b && {offline} /tmp/b/bin/pip install -q wheel {deps} && "
                f"{offline} /tmp/b/bin/pip wheel -q --no-build-isolation --no-deps -w /wheelhouse {names}")  # fmt: skip
    finally:
        buildah("rm", container)
    built = [w for p in sdists for w in wheelhouse.glob(f"{p.name.split('-')[0]}-*.whl")]
    if len(built) != len(sdists):
        raise ImageBuildError(f"building {', '.join(p.name for p in sdists)} left only {built} in {wheelhouse}")
    return built
