"""Files users name (manifests, price tables, results): each failure is the caller's own error type, naming the
file and the problem, so `modelpack validate`, `run` and `plan` report a bad file the same way."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml


def read_text(path: Path, error: type[Exception]) -> str:
    try:
        return path.read_text()
    except FileNotFoundError:
        raise error(f"{path}: no such file") from None
    except OSError as err:
        raise error(f"{path}: cannot read: {err.strerror}") from None


def yaml_documents(text: str, origin: str, error: type[Exception], what: str = "YAML") -> list[Any]:
    """The non-empty documents of a (multi-document) YAML text; ``what`` says what the file should have been."""
    try:
        return [d for d in yaml.safe_load_all(text) if d is not None]
    except yaml.YAMLError as err:
        raise error(f"{origin}: not valid {what}: {yaml_problem(err)}") from None


def yaml_problem(err: yaml.YAMLError) -> str:
    """PyYAML's complaint at a 1-based line and column, without its ``in "<unicode string>"`` marks."""
    if not isinstance(err, yaml.MarkedYAMLError):
        return str(err)
    mark = err.problem_mark or err.context_mark
    where = f"line {mark.line + 1}, column {mark.column + 1}" if mark is not None else "unknown position"
    what = " ".join(x for x in (err.context, err.problem) if x)
    return f"{where}: {what or 'malformed'}"
