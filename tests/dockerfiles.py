"""What a `docker build` of this repository's Dockerfiles would see, reconstructed without a container engine.

``parse`` reads a Dockerfile into stages (line continuations, ``FROM ... AS``, JSON-form ``ENTRYPOINT`` /
``CMD``, ``ENV``, ``COPY``/``ADD`` flags); ``DockerIgnore`` applies ``.dockerignore`` the way
moby's patternmatcher does (root-relative patterns, ``**``, ``!`` exceptions, a matched directory
excludes what is below it); ``build_context`` copies exactly the files a stage's ``COPY`` instructions
take from the context into a directory laid out as the image's filesystem; ``image_site_packages``
makes a view of a venv's site-packages without what ``pip install '.[extra]'`` would not have installed.
"""

from __future__ import annotations

import importlib.metadata
import json
import re
import shlex
import shutil
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

from packaging.requirements import Requirement


class DockerfileError(ValueError):
    """A Dockerfile instruction this parser (or Docker) would refuse."""


@dataclass(frozen=True)
class Instruction:
    keyword: str  # upper case: "COPY", "RUN", ...
    flags: dict[str, str]  # leading --name=value flags (COPY --from=build, ...)
    args: str  # the rest, continuations joined
    line: int  # where the instruction starts (1-based)


@dataclass
class Stage:
    base: str
    name: str | None
    instructions: list[Instruction] = field(default_factory=list)

    def all(self, keyword: str) -> list[Instruction]:
        return [i for i in self.instructions if i.keyword == keyword]

    def last(self, keyword: str) -> Instruction | None:
        found = self.all(keyword)
        return found[-1] if found else None

    def exec_form(self, keyword: str) -> list[str]:
        """ENTRYPOINT / CMD as an argv; shell form is refused (it would run under /bin/sh, which eats SIGTERM)."""
        instruction = self.last(keyword)
        if instruction is None:
            return []
        try:
            argv = json.loads(instruction.args)
        except json.JSONDecodeError:
            argv = None
        if not isinstance(argv, list) or not all(isinstance(a, str) for a in argv):
            raise DockerfileError(f"line {instruction.line}: {keyword} must be a JSON array of strings")
        return argv

    def env(self) -> dict[str, str]:
        """Every ENV of the stage, later values winning (``K=V K2="V 2"`` and the legacy ``K V`` form)."""
        env: dict[str, str] = {}
        for instruction in self.all("ENV"):
            words = shlex.split(instruction.args)
            if words and "=" not in words[0]:
                env[words[0]] = instruction.args.split(None, 1)[1] if len(words) > 1 else ""
                continue
            for word in words:
                key, sep, value = word.partition("=")
                if not sep:
                    raise DockerfileError(f"line {instruction.line}: ENV {word!r} has no '='")
                env[key] = value
        return env

    def exposed_ports(self) -> list[int]:
        return [int(p.split("/")[0]) for i in self.all("EXPOSE") for p in i.args.split()]

    def copies(self) -> list[tuple[Instruction, list[str], str]]:
        """(instruction, sources, destination) of each COPY/ADD, JSON form included."""
        found = []
        for instruction in self.instructions:
            if instruction.keyword not in ("COPY", "ADD"):
                continue
            args = instruction.args
            words = json.loads(args) if args.startswith("[") else shlex.split(args)
            if len(words) < 2:
                raise DockerfileError(
                    f"line {instruction.line}: {instruction.keyword} needs a source and a destination"
                )
            found.append((instruction, words[:-1], words[-1]))
        return found


def _logical_lines(text: str) -> list[tuple[int, str]]:
    """(first line number, text) of each instruction: comments and blank lines dropped, ``\\`` joined."""
    lines: list[tuple[int, str]] = []
    pending: list[str] = []
    start = 0
    for number, raw in enumerate(text.splitlines(), 1):
        stripped = raw.strip()
        if not stripped or stripped.startswith("#"):
            continue  # Docker drops comment lines even inside a continuation
        if not pending:
            start = number
        if stripped.endswith("\\"):
            pending.append(stripped[:-1].strip())
            continue
        pending.append(stripped)
        lines.append((start, " ".join(p for p in pending if p)))
        pending = []
    if pending:
        raise DockerfileError(f"line {start}: continuation runs past the end of the file")
    return lines


def parse(text: str) -> list[Stage]:
    stages: list[Stage] = []
    for number, line in _logical_lines(text):
        keyword, _, rest = line.partition(" ")
        keyword = keyword.upper()
        flags: dict[str, str] = {}
        while rest.startswith("--"):
            flag, _, rest = rest.partition(" ")
            name, _, value = flag[2:].partition("=")
            flags[name] = value
            rest = rest.lstrip()
        if keyword == "FROM":
            words = rest.split()
            if len(words) == 3 and words[1].upper() == "AS":
                stages.append(Stage(words[0], words[2].lower()))
            elif len(words) == 1:
                stages.append(Stage(words[0], None))
            else:
                raise DockerfileError(f"line {number}: FROM IMAGE [AS NAME] expected, got {rest!r}")
        elif stages:
            stages[-1].instructions.append(Instruction(keyword, flags, rest, number))
        elif keyword != "ARG":  # an ARG before the first FROM is only usable in FROM lines
            raise DockerfileError(f"line {number}: {keyword} before the first FROM")
    if not stages:
        raise DockerfileError("no FROM instruction")
    return stages


def _pattern_regex(pattern: str) -> re.Pattern[str]:
    out = []
    i = 0
    while i < len(pattern):
        if pattern.startswith("**/", i):
            out.append("(?:.*/)?")
            i += 3
        elif pattern.startswith("**", i):
            out.append(".*")
            i += 2
        elif pattern[i] == "*":
            out.append("[^/]*")
            i += 1
        elif pattern[i] == "?":
            out.append("[^/]")
            i += 1
        else:
            out.append(re.escape(pattern[i]))
            i += 1
    return re.compile("".join(out))


class DockerIgnore:
    def __init__(self, text: str = "") -> None:
        self.rules: list[tuple[bool, re.Pattern[str]]] = []
        for raw in text.splitlines():
            line = raw.strip()
            if not line or line.startswith("#"):
                continue
            exclude = not line.startswith("!")
            cleaned = str(PurePosixPath("/", line.lstrip("!").strip())).lstrip("/")
            if cleaned:
                self.rules.append((exclude, _pattern_regex(cleaned)))

    @classmethod
    def of(cls, context: Path) -> DockerIgnore:
        path = context / ".dockerignore"
        return cls(path.read_text() if path.exists() else "")

    def ignored(self, relative: str) -> bool:
        """Whether the context path (``a/b/c.py``, relative to the context root) is left out of the context."""
        parts = PurePosixPath(relative).parts
        prefixes = ["/".join(parts[:n]) for n in range(1, len(parts) + 1)]
        result = False
        for exclude, regex in self.rules:
            if any(regex.fullmatch(p) for p in prefixes):
                result = exclude
        return result


def build_context(context: Path, stage: Stage, image_root: Path) -> Path:
    """Copy what the stage's context COPY/ADDs take (``--from`` ones are skipped) into ``image_root``.

    Paths land where the image would have them (``WORKDIR /src`` + ``COPY x ./x`` -> ``image_root/src/x``);
    ignored files are left out, as Docker leaves them out of the context. Returns the last WORKDIR there.
    A source that is missing, ignored or outside the context raises ``DockerfileError``.
    """
    ignore = DockerIgnore.of(context)
    workdir = PurePosixPath("/")
    for instruction in stage.instructions:
        if instruction.keyword == "WORKDIR":
            workdir = workdir / instruction.args
        if instruction.keyword not in ("COPY", "ADD") or "from" in instruction.flags:
            continue
        ((_, sources, dest),) = [c for c in stage.copies() if c[0] is instruction]
        target = workdir / dest
        for source in sources:
            relative = PurePosixPath(source)
            clean = PurePosixPath(*[p for p in relative.parts if p != "."])
            if relative.is_absolute() or ".." in relative.parts:
                raise DockerfileError(f"line {instruction.line}: {source!r} is outside the build context")
            if not (context / clean).exists():
                raise DockerfileError(f"line {instruction.line}: {source!r} does not exist in the build context")
            if ignore.ignored(str(clean)):
                raise DockerfileError(f"line {instruction.line}: {source!r} is excluded by .dockerignore")
            into = image_root / target.relative_to("/")
            if (context / clean).is_dir():
                _copy_tree(context, clean, into, ignore)
            else:
                if dest.endswith("/") or len(sources) > 1:
                    into = into / clean.name
                into.parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(context / clean, into)
    return image_root / workdir.relative_to("/")


def _copy_tree(context: Path, source: PurePosixPath, into: Path, ignore: DockerIgnore) -> None:
    """A directory source: its contents (not the directory itself) go into ``into``, as in Docker."""
    into.mkdir(parents=True, exist_ok=True)
    for path in sorted((context / source).rglob("*")):
        relative = path.relative_to(context)
        if ignore.ignored(relative.as_posix()) or not path.is_file():
            continue
        out = into / path.relative_to(context / source)
        out.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(path, out)


def pip_extras(stage: Stage) -> set[str]:
    """The extras of the stage's ``pip install '.[a,b]'`` (empty when it installs plain ``.``)."""
    for instruction in stage.all("RUN"):
        words = shlex.split(instruction.args)
        for i, word in enumerate(words[:-1]):
            if word.endswith("pip") and words[i + 1] == "install":
                for target in words[i + 2 :]:
                    match = re.fullmatch(r"\.(?:\[([\w,-]+)\])?", target)
                    if match:
                        return set(filter(None, (match.group(1) or "").split(",")))
    raise DockerfileError("no `pip install .` in the stage")


def _canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _entries(dist: importlib.metadata.Distribution) -> set[str]:
    """The names in site-packages a distribution installed: packages, modules, ``*.libs``, its dist-info."""
    return {f.parts[0] for f in dist.files or [] if f.parts[0] != ".."}


def image_site_packages(site_packages: str, requires: list[str], extras: set[str], project: str, into: Path) -> None:
    """``into`` becomes a view of ``site_packages`` with only what ``pip install 'project[extras]'`` installs.

    Every entry of ``site_packages`` is symlinked into ``into`` except those of distributions outside the
    project's dependency closure, the project's own (editable) install and ``.pth`` files, so a missing
    dependency is as absent as in the image (``importlib.util.find_spec`` returns None, metadata is gone).
    The closure follows ``Requires-Dist`` with markers evaluated here (Linux, this Python) and extras
    propagated; pip and setuptools count as needed (``python -m venv`` puts them in the image).
    """
    dists = {_canonical(d.metadata["Name"]): d for d in importlib.metadata.distributions(path=[site_packages])}
    needed = {"pip", "setuptools"}
    seen: set[tuple[str, frozenset[str]]] = set()
    todo = [(r, frozenset(extras)) for r in requires]
    while todo:
        raw, active = todo.pop()
        req = Requirement(raw)
        if req.marker and not any(req.marker.evaluate({"extra": e}) for e in active | {""}):
            continue
        key = (_canonical(req.name), frozenset(req.extras))
        if key in seen:
            continue
        seen.add(key)
        needed.add(key[0])
        if key[0] in dists:
            todo.extend((r, key[1]) for r in dists[key[0]].requires or [])
    needed.discard(_canonical(project))
    kept = {e for name in needed if name in dists for e in _entries(dists[name])}
    hidden = {e for name, dist in dists.items() if name not in needed for e in _entries(dist)} - kept
    into.mkdir(parents=True)
    for entry in Path(site_packages).iterdir():
        if entry.name not in hidden and entry.suffix != ".pth" and not entry.name.startswith("__editable__"):
            (into / entry.name).symlink_to(entry)


RUN_IN_IMAGE = r"""
import ast, importlib, json, sys

cfg = json.loads(sys.argv[1])
sys.path.extend(cfg["path"])
report = {"errors": []}
module_name, _, attr = cfg["entry_point"].partition(":")
sys.argv = cfg["argv"]
try:
    report["exit"] = getattr(importlib.import_module(module_name), attr)()
except SystemExit as exc:
    report["exit"] = exc.code


def load(name, attrs=()):
    try:
        module = importlib.import_module(name)
        for a in attrs:
            if not hasattr(module, a):
                importlib.import_module(f"{name}.{a}")
    except Exception as exc:
        report["errors"].append(f"import {name} {list(attrs)}: {exc!r}")


for name in cfg["lazy"]:
    load(name)
    module = sys.modules.get(name)
    if module is None:
        continue
    for node in ast.walk(ast.parse(open(module.__file__).read())):
        if isinstance(node, ast.Import):
            for alias in node.names:
                load(alias.name)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            load(node.module, [a.name for a in node.names])
report["modules"] = {
    n: getattr(m, "__file__", None) for n, m in sys.modules.items() if n.partition(".")[0] in cfg["first_party"]
}
report["torch"] = "torch" in sys.modules
with open(cfg["report"], "w") as out:
    json.dump(report, out)
"""
"""Run by ``python -I -S -c``: only the stdlib plus ``cfg["path"]`` are importable. Calls the console
script's function with ``cfg["argv"]``, then imports everything the ``cfg["lazy"]`` modules import
(including imports inside functions, e.g. a subcommand's ``run``), and writes the exit status, import
errors and where each first-party module came from to ``cfg["report"]``."""
