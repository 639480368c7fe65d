"""pip's options for another architecture's wheelhouse, and which requirements must be built from sdists."""

from __future__ import annotations

from tests.cluster.foreign_wheels import is_foreign, pip_target_args, split_sdist_only
from tests.cluster.modelpack_images import wheelhouse_dir


def test_the_hosts_own_platform_gets_plain_pip() -> None:
    assert pip_target_args("linux/amd64", machine="x86_64") == []
    assert pip_target_args("linux/arm64", machine="aarch64") == []
    assert not is_foreign("linux/arm64", machine="aarch64")


def test_arm64_from_x86_takes_binary_wheels_for_the_bases_python_and_glibc() -> None:
    args = pip_target_args("linux/arm64", machine="x86_64")
    platforms = [a.split("=", 1)[1] for a in args if a.startswith("--platform=")]
    assert "manylinux_2_28_aarch64" in platforms  # PyPI's aarch64 torch
    assert "manylinux2014_aarch64" in platforms and "manylinux_2_36_aarch64" in platforms
    assert "manylinux_2_37_aarch64" not in platforms  # newer than bookworm's glibc 2.36
    assert not any("x86_64" in p for p in platforms)
    assert {"--only-binary=:all:", "--python-version=3.11", "--implementation=cp", "--abi=cp311"} <= set(args)


def test_sdist_only_requirements_are_split_off_with_their_dependencies() -> None:
    wheels, sdists = split_sdist_only(("torch>=2.3", "hdrhistogram>=0.10.3", "rich>=13.7"))
    assert sdists == ("hdrhistogram>=0.10.3",)
    assert wheels == ("torch>=2.3", "rich>=13.7", "pbr", "setuptools", "wheel")


def test_each_architecture_has_its_own_wheelhouse() -> None:
    assert wheelhouse_dir("linux/amd64").name == "wheelhouse"  # unchanged: existing caches stay valid
    assert wheelhouse_dir("linux/arm64").name == "wheelhouse-arm64"
