"""Container images for the real node, built here with buildah and cached as archives by content hash.

No registry is reachable, so every image a pod runs is built on this machine: the pause image and CoreDNS from
the binaries built from Go modules, a busybox image (Debian's busybox-static) for probe pods, and, from the real
Dockerfiles, the operator and server images. An image's tag is the hash of everything that goes into it (build
context files, Containerfile, build args, platform), so an unchanged tree reuses ``<cache>/images/<tag>.tar``
without starting buildah, and a changed one cannot be mistaken for the old one.

buildah keeps its layer store in ``<cache>/buildah`` (a deliberate cache: a rebuild reuses unchanged layers).
Each buildah call runs in its own private mount namespace, so a killed build cannot leave an overlay mount on
the host.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from tests.cluster.binaries import cache_root


class ImageBuildError(RuntimeError):
    """buildah or the import failed; the message carries the tail of its output."""


def _log(msg: str) -> None:
    print(f"[images] {msg}", file=sys.stderr, flush=True)


def images_dir() -> Path:
    return cache_root().parent / "images"


def buildah_root() -> Path:
    return cache_root().parent / "buildah"


@dataclass(frozen=True)
class ImageSpec:
    """One image: ``name`` (e.g. ``localhost/modelpack/pause``) built from ``containerfile`` in ``context``."""

    name: str
    context: Path
    containerfile: Path
    build_args: Mapping[str, str] = field(default_factory=dict)
    platform: str = "linux/amd64"
    files: tuple[Path, ...] = ()  # the context files that go into the image; all of the context when empty
    secrets: Mapping[str, Path] = field(default_factory=dict)  # --secret id=...,src=... (not hashed, not baked)
    volumes: tuple[str, ...] = ()  # -v host:container[:opts] for RUN steps (not baked)
    build_contexts: Mapping[str, Path] = field(default_factory=dict)  # --build-context NAME=DIR (a wheelhouse)
    extra_hash: str = ""  # anything else the build depends on (e.g. a base image's tag)

    def tag(self) -> str:
        digest = hashlib.sha256()
        files = self.files or tuple(sorted(p for p in self.context.rglob("*") if p.is_file()))
        for path in sorted(files):
            digest.update(str(path.relative_to(self.context)).encode() + b"\0" + path.read_bytes() + b"\0")
        digest.update(self.containerfile.read_bytes())
        for key, value in sorted(self.build_args.items()):
            digest.update(f"{key}={value}\0".encode())
        digest.update(f"{self.platform}\0{self.extra_hash}".encode())
        return digest.hexdigest()[:16]

    def ref(self) -> str:
        return f"{self.name}:{self.tag()}"

    def archive(self) -> Path:
        return images_dir() / f"{self.name.rsplit('/', 1)[-1]}-{self.platform.replace('/', '-')}-{self.tag()}.tar"


def buildah(*args: str, timeout: float = 3600, quiet: bool = True) -> str:
    """Run buildah on the cache's store, in a private mount namespace; raise with its output on failure."""
    root = buildah_root()
    argv = [
        "unshare", "--mount", "--propagation", "private", "--",
        "buildah", "--root", str(root / "storage"), "--runroot", str(root / "run"), "--storage-driver", "overlay",
        *args,
    ]  # fmt: skip
    proc = subprocess.run(argv, capture_output=quiet, text=True, timeout=timeout, check=False)
    if proc.returncode != 0:
        out = ((proc.stdout or "") + (proc.stderr or ""))[-6000:]
        raise ImageBuildError(f"buildah {args[0]} failed ({proc.returncode}):\n{out}")
    return proc.stdout or ""


def build(spec: ImageSpec, *, network: str = "host") -> Path:
    """The image's archive (docker-archive, tagged ``spec.ref()``), built with buildah only if not cached."""
    archive = spec.archive()
    if archive.exists():
        return archive
    if shutil.which("buildah") is None:
        raise ImageBuildError("buildah is required to build the real node's images (hack/system-deps.sh installs it)")
    archive.parent.mkdir(parents=True, exist_ok=True)
    started = time.monotonic()
    _log(f"building {spec.ref()} ({spec.platform}) from {spec.containerfile.name}")
    args = ["build", "--layers", "--network", network, "--platform", spec.platform, "-f", str(spec.containerfile),
            "-t", spec.ref()]  # fmt: skip
    for key, value in spec.build_args.items():
        args += ["--build-arg", f"{key}={value}"]
    for sid, src in spec.secrets.items():
        args += ["--secret", f"id={sid},src={src}"]
    for volume in spec.volumes:
        args += ["-v", volume]
    for cname, cdir in spec.build_contexts.items():
        args += ["--build-context", f"{cname}={cdir}"]
    buildah(*args, str(spec.context), quiet=os.environ.get("MODELPACK_BUILD_VERBOSE", "") in ("", "0"))
    tmp = archive.with_suffix(".partial")
    tmp.unlink(missing_ok=True)
    buildah("push", spec.ref(), f"docker-archive:{tmp}:{spec.ref()}")
    tmp.rename(archive)
    _log(f"built {spec.ref()} in {time.monotonic() - started:.0f}s: {archive.stat().st_size / 2**20:.0f} MiB")
    prune(spec, archive)
    return archive


def prune(spec: ImageSpec, archive: Path) -> None:
    """Drop older trees' builds of the same image (archives and tags in buildah's store): the server image is
    gigabytes, and every source change makes a new tag. Untagged layers stay: they are buildah's build cache."""
    for old in prune_archives([archive]):
        _log(f"removed {old.name}")
    names = buildah("images", "--format", "{{.Name}}:{{.Tag}}").split()
    # A tag whose archive is still cached is another platform's current build (the arm64 base next to the amd64
    # one, possibly in use by a build running now), and another platform's build of the same name (the amd64 and
    # arm64 server images) is not an older tree's: only this platform's tags no archive holds are removed.
    short = spec.name.rsplit("/", 1)[-1]
    current = {a.stem.rsplit("-", 1)[1] for a in images_dir().glob(f"{short}-*.tar")}
    arch = spec.platform.split("/")[1]
    stale = [
        ref for ref in names
        if ref.rsplit(":", 1)[0] == spec.name and ref != spec.ref() and ref.rsplit(":", 1)[1] not in current
        and image_arch(ref) in (arch, "")
    ]  # fmt: skip
    if stale:
        buildah("rmi", *stale)


def image_arch(ref: str) -> str:
    """The architecture recorded in an image's config (``amd64``, ``arm64``); empty if buildah cannot tell."""
    try:
        return buildah("inspect", "--type", "image", "--format", "{{.OCIv1.Architecture}}", ref).strip()
    except ImageBuildError:
        return ""


def scratch_image(name: str, binaries: Iterable[Path], entrypoint: str, user: str = "65532:65532") -> ImageSpec:
    """An image of static binaries only (``FROM scratch``): the pause image, CoreDNS, busybox."""
    bins = list(binaries)
    digest = hashlib.sha256(b"".join(p.read_bytes() for p in bins)).hexdigest()[:16]
    context = images_dir() / "contexts" / f"{name.rsplit('/', 1)[-1]}-{digest}"
    if not (context / "Containerfile").exists():
        tmp = context.with_name(context.name + ".partial")
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir(parents=True)
        lines = ["FROM scratch"]
        for path in bins:
            shutil.copy2(path, tmp / path.name)
            lines.append(f"COPY {path.name} /{path.name}")
        lines += [f"USER {user}", f'ENTRYPOINT ["/{entrypoint}"]']
        (tmp / "Containerfile").write_text("\n".join(lines) + "\n")
        shutil.rmtree(context, ignore_errors=True)
        tmp.rename(context)
    return ImageSpec(name=name, context=context, containerfile=context / "Containerfile")


def prune_archives(keep: Iterable[Path]) -> list[Path]:
    """Delete cached archives of the same images at other tags (older trees); returns what was removed."""
    keep = {Path(p) for p in keep}
    prefixes = {p.name.rsplit("-", 1)[0] for p in keep}
    removed = []
    for path in images_dir().glob("*.tar"):
        if path not in keep and path.name.rsplit("-", 1)[0] in prefixes:
            path.unlink(missing_ok=True)
            removed.append(path)
    return removed
