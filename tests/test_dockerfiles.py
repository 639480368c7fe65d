"""Dockerfile.server and Dockerfile.operator, checked for what a first `docker build` and `docker run` would reveal.

No container engine here: each image's build context is rebuilt from its COPY lines, a wheel is built
from exactly those files, and the ENTRYPOINT runs from that wheel alone (the checkout is not importable,
and the venv's packages the image's ``pip install '.[extra]'`` would not install are hidden). The ports,
UID and commands the operator's builders and the Helm chart use are held to the Dockerfiles.
"""

from __future__ import annotations

import argparse
import configparser
import importlib.metadata
import json
import subprocess
import sys
import sysconfig
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

from modelpack.cli import operator as operator_cli
from modelpack.cli.main import COMMANDS
from modelpack.placement import place
from modelpack_operator.builders.loadtest_job import loadtest_job
from modelpack_operator.builders.server import server_deployment
from modelpack_operator.settings import OperatorSettings, WorkerSettings
from tests.dockerfiles import (
    RUN_IN_IMAGE,
    DockerfileError,
    DockerIgnore,
    Stage,
    build_context,
    image_site_packages,
    parse,
    pip_extras,
)
from tests.operator.factories import make_loadtest, make_pack

ROOT = Path(__file__).resolve().parents[1]
PROJECT = "modelpack"
VENV_SITE = sysconfig.get_paths()["purelib"]


@dataclass
class Image:
    stages: list[Stage]
    tmp: Path
    site: Path
    entry_points: configparser.ConfigParser

    @property
    def final(self) -> Stage:
        return self.stages[-1]

    def run(self, argv: list[str]) -> tuple[subprocess.CompletedProcess[str], dict[str, Any]]:
        """``argv`` (console script + arguments) as the image would run it; returns the process and its report."""
        command = next(a for a in argv[1:] if not a.startswith("-"))
        with tempfile.TemporaryDirectory(dir=self.tmp) as scratch:
            report = Path(scratch, "report.json")
            cfg = {
                "path": [str(self.site), str(self.tmp / "venv-site")],
                "entry_point": self.entry_points["console_scripts"][argv[0]],
                "argv": argv,
                "lazy": [COMMANDS[command][0]],
                "first_party": sorted(p.name for p in self.site.iterdir() if not p.name.endswith(".dist-info")),
                "report": str(report),
            }
            result = subprocess.run(
                [sys.executable, "-I", "-S", "-c", RUN_IN_IMAGE, json.dumps(cfg)],
                cwd=scratch,
                env={"PATH": "/usr/bin:/bin", "HOME": scratch},
                capture_output=True,
                text=True,
                timeout=120,
                check=False,
            )
            assert result.returncode == 0, result.stderr
            return result, json.loads(report.read_text())


def _wheel(site: Path) -> importlib.metadata.Distribution:
    (dist_info,) = site.glob("*.dist-info")
    return importlib.metadata.Distribution.at(dist_info)


def _pip(*args: str, cwd: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "pip", *args, "--no-index", "--disable-pip-version-check", "-q"],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, f"pip {args[0]} failed:\n{result.stdout}\n{result.stderr}"


def _build_stage(stages: list[Stage]) -> Stage:
    """The stage that installs the package (``AS build``); Dockerfile.server has a wheelhouse stage before it."""
    return next(stage for stage in stages if stage.name == "build")


@pytest.fixture(scope="module", params=["server", "operator"])
def image(request: pytest.FixtureRequest) -> Iterator[Image]:
    stages = parse((ROOT / f"Dockerfile.{request.param}").read_text())
    with tempfile.TemporaryDirectory(prefix=f"modelpack-dockerfile-{request.param}-") as tmp:
        base = Path(tmp)
        workdir = build_context(ROOT, _build_stage(stages), base / "image")
        _pip("wheel", "--no-deps", "--no-build-isolation", "-w", str(base / "wheel"), str(workdir), cwd=base)
        (wheel,) = (base / "wheel").glob("*.whl")
        _pip("install", "--no-deps", "--target", str(base / "site"), str(wheel), cwd=base)
        entry_points = configparser.ConfigParser()
        entry_points.read_string(_wheel(base / "site").read_text("entry_points.txt") or "")
        requires = _wheel(base / "site").requires or []
        image_site_packages(VENV_SITE, requires, pip_extras(_build_stage(stages)), PROJECT, base / "venv-site")
        yield Image(stages, base, base / "site", entry_points)


def _assert_ran_from_the_wheel(image: Image, argv: list[str]) -> dict[str, Any]:
    result, report = image.run(argv)
    assert report["exit"] in (0, None), result.stderr
    assert result.stdout.startswith(f"usage: {argv[0]} {argv[1]}"), result.stdout
    assert not report["errors"], "imports that fail in the image:\n" + "\n".join(report["errors"])
    assert report["modules"][PROJECT].startswith(f"{image.site}/"), "the checkout leaked onto sys.path"
    outside = {name: path for name, path in report["modules"].items() if path and not path.startswith(str(image.site))}
    assert outside == {}
    return report


def test_context_copies_exist_are_not_ignored_and_from_names_an_earlier_stage(image: Image) -> None:
    # Missing, ignored or outside-the-context COPY sources already fail the fixture's build_context.
    names: set[str] = set()
    for stage in image.stages:
        for instruction, _, _ in stage.copies():
            if "from" in instruction.flags:
                assert instruction.flags["from"] in names, f"line {instruction.line}: no earlier stage by that name"
        if stage.name:
            names.add(stage.name)
    assert pip_extras(_build_stage(image.stages)) <= set(_wheel(image.site).metadata.get_all("Provides-Extra") or [])


def test_entrypoint_is_a_console_script_of_the_wheel(image: Image) -> None:
    entrypoint = image.final.exec_form("ENTRYPOINT")
    assert entrypoint and entrypoint[0] in image.entry_points["console_scripts"]
    assert image.final.env()["PATH"].startswith("/opt/venv/bin:")


def test_entrypoint_and_cmd_run_from_the_wheel_alone(image: Image) -> None:
    argv = [*image.final.exec_form("ENTRYPOINT"), *image.final.exec_form("CMD"), "--help"]
    report = _assert_ran_from_the_wheel(image, argv)
    if "server" not in pip_extras(_build_stage(image.stages)):
        assert report["torch"] is False, "the operator image has no torch, but its CLI imported it"


@pytest.mark.parametrize("image", ["operator"], indirect=True)
def test_operator_image_runs_the_loadtest_workers(image: Image) -> None:
    job = loadtest_job(make_loadtest(), ["bert-routes"], 0.0, WorkerSettings())
    command = job["spec"]["template"]["spec"]["containers"][0]["command"]
    report = _assert_ran_from_the_wheel(image, [*command, "--help"])
    assert report["torch"] is False


def _final(name: str) -> Stage:
    return parse((ROOT / f"Dockerfile.{name}").read_text())[-1]


def _user(stage: Stage) -> int:
    user = stage.last("USER")
    assert user is not None and user.args.isdigit(), "USER must be a numeric UID (runAsNonRoot checks it)"
    assert any(f"--uid {user.args}" in run.args for run in stage.all("RUN")), "USER's UID is never created"
    return int(user.args)


def test_server_image_matches_the_server_pods_the_operator_builds() -> None:
    stage = _final("server")
    pack = make_pack()
    deployment = server_deployment(pack, place(pack.spec.models.expand(), 2).servers[0], OperatorSettings().server)
    pod = deployment["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    assert container["command"] == stage.exec_form("ENTRYPOINT")
    assert [p["containerPort"] for p in container["ports"]] == stage.exposed_ports()
    assert stage.env()["MODELPACK_PORT"] == str(pack.spec.server.port)
    assert pod["securityContext"]["runAsUser"] == _user(stage)


def test_operator_image_matches_the_operator_and_worker_pods() -> None:
    stage = _final("operator")
    parser = argparse.ArgumentParser()
    operator_cli.register(parser)
    defaults = parser.parse_args([])
    liveness_port = int(defaults.liveness.split(":")[2].split("/")[0])
    assert stage.exposed_ports() == [defaults.metrics_port, liveness_port]
    values = yaml.safe_load((ROOT / "helm/modelpack/values.yaml").read_text())
    assert values["metrics"]["port"] == defaults.metrics_port
    job = loadtest_job(make_loadtest(), ["bert-routes"], 0.0, WorkerSettings())
    uid = _user(stage)
    assert job["spec"]["template"]["spec"]["securityContext"]["runAsUser"] == uid
    assert values["podSecurityContext"]["runAsUser"] == uid
    assert job["spec"]["template"]["spec"]["containers"][0]["command"][0] == stage.exec_form("ENTRYPOINT")[0]


def test_parser_joins_continuations_and_reads_stages_env_and_exec_forms() -> None:
    stages = parse(
        "# comment\nFROM python:3.11 AS Build\nWORKDIR /src\nCOPY a b ./\nRUN pip install \\\n"
        "  # dropped\n  '.[x,y]'\n\nFROM scratch\nCOPY --from=build --chown=1:1 /opt /opt\n"
        'ENV A=1 B="two words" \\\n    C=3\nENV LEGACY some value\nENTRYPOINT ["run", "it"]\nCMD --shell\n'
    )
    assert [(s.base, s.name) for s in stages] == [("python:3.11", "build"), ("scratch", None)]
    assert pip_extras(stages[0]) == {"x", "y"}
    ((copy, sources, dest),) = stages[1].copies()
    assert (copy.flags, sources, dest, copy.line) == ({"from": "build", "chown": "1:1"}, ["/opt"], "/opt", 10)
    assert stages[1].env() == {"A": "1", "B": "two words", "C": "3", "LEGACY": "some value"}
    assert stages[1].exec_form("ENTRYPOINT") == ["run", "it"]
    with pytest.raises(DockerfileError, match="JSON array"):
        stages[1].exec_form("CMD")


def test_dockerignore_follows_docker_semantics() -> None:
    ignore = DockerIgnore("# c\n**/__pycache__\n/build\n*.md\n!README.md\ndocs/*\n")
    assert ignore.ignored("modelpack/cli/__pycache__/main.cpython-311.pyc")
    assert ignore.ignored("build/lib/x.py") and not ignore.ignored("modelpack/build/x.py")
    assert ignore.ignored("NOTES.md") and not ignore.ignored("README.md") and not ignore.ignored("a/NOTES.md")
    assert ignore.ignored("docs/perf/server.md") and not ignore.ignored("docs")


def test_build_context_refuses_missing_ignored_and_outside_sources(tmp_path: Path) -> None:
    (tmp_path / "pkg").mkdir()
    (tmp_path / "pkg" / "a.py").write_text("")
    (tmp_path / ".dockerignore").write_text("secret\n")
    (tmp_path / "secret").write_text("")
    root = tmp_path / "out"
    workdir = build_context(tmp_path, parse("FROM x\nWORKDIR /src\nCOPY pkg ./pkg\n")[0], root)
    assert workdir == root / "src" and (root / "src" / "pkg" / "a.py").is_file()
    for source, message in (("missing", "does not exist"), ("secret", "excluded"), ("../x", "outside")):
        with pytest.raises(DockerfileError, match=message):
            build_context(tmp_path, parse(f"FROM x\nCOPY {source} /x\n")[0], root)
