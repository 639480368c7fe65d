"""Read ModelPack and LoadTest objects from YAML files, with errors that name the offending field.

The local runtime and the CLI use this; messages follow the API server's shape
(``spec.load.rate: Input should be greater than 0``) so a user sees the same complaint either way.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pydantic import ValidationError

from modelpack import userfiles
from modelpack.api.common import API_VERSION
from modelpack.api.loadtest import LoadTest
from modelpack.api.modelpack import ModelPack

KINDS: dict[str, type[ModelPack] | type[LoadTest]] = {"ModelPack": ModelPack, "LoadTest": LoadTest}


class InvalidObjectError(ValueError):
    """A YAML document that is not a valid modelpack object; the message names file and field."""


def _field_path(loc: tuple[int | str, ...]) -> str:
    parts: list[str] = []
    for item in loc:
        if isinstance(item, int):
            parts.append(f"[{item}]")
        elif item.startswith(("function-", "literal[")):
            continue
        else:
            parts.append(("." if parts else "") + item)
    return "".join(parts) or "<object>"


def format_validation_error(err: ValidationError) -> str:
    """One line per problem: `field.path: message`."""
    lines = []
    for e in err.errors():
        msg = e["msg"].removeprefix("Value error, ")
        lines.append(f"{_field_path(e['loc'])}: {msg}")
    return "\n".join(lines)


def parse_object(doc: Any, source: str = "<input>") -> ModelPack | LoadTest:
    """Validate one decoded YAML document as a ModelPack or LoadTest."""
    if not isinstance(doc, dict):
        raise InvalidObjectError(f"{source}: expected a mapping with apiVersion, kind, metadata and spec")
    kind = doc.get("kind")
    if kind not in KINDS:
        raise InvalidObjectError(f"{source}: kind: expected one of {sorted(KINDS)}, got {kind!r}")
    if doc.get("apiVersion") != API_VERSION:
        raise InvalidObjectError(f"{source}: apiVersion: expected {API_VERSION!r}, got {doc.get('apiVersion')!r}")
    try:
        return KINDS[kind].model_validate(doc)
    except ValidationError as err:
        name = (doc.get("metadata") or {}).get("name", "?") if isinstance(doc.get("metadata"), dict) else "?"
        raise InvalidObjectError(f"{source}: {kind} {name!r} is invalid:\n{format_validation_error(err)}") from None


def load_file(path: str | Path) -> list[ModelPack | LoadTest]:
    """Every object in a (multi-document) YAML file."""
    p = Path(path)
    docs = userfiles.yaml_documents(userfiles.read_text(p, InvalidObjectError), str(p), InvalidObjectError)
    if not docs:
        raise InvalidObjectError(f"{p}: no objects in file")
    # Documents count from 1, as a person counts them: two.yaml#2 is the second document.
    return [parse_object(d, f"{p}#{i}" if len(docs) > 1 else str(p)) for i, d in enumerate(docs, start=1)]
