"""Write TOML from dicts (containerd's config format); the stdlib reads TOML but cannot write it.

Covers what containerd's config needs: nested tables, strings, bools, ints and lists of strings. Tables are
emitted after a table's plain keys, with dotted names, so ``tomllib.loads(dumps(d)) == d``.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any


def _key(key: str) -> str:
    return key if key.replace("_", "").replace("-", "").isalnum() else json.dumps(key)


def _value(value: Any, where: str) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, str):
        return json.dumps(value)  # a JSON string is a valid TOML basic string
    if isinstance(value, list):
        return "[" + ", ".join(_value(v, where) for v in value) + "]"
    raise TypeError(f"{where}: cannot write a {type(value).__name__} as TOML")


def dumps(doc: Mapping[str, Any], prefix: str = "") -> str:
    """TOML text for ``doc``; a value that TOML cannot hold raises TypeError naming its key."""
    lines: list[str] = []
    tables: list[tuple[str, Mapping[str, Any]]] = []
    for key, value in doc.items():
        name = f"{prefix}.{_key(key)}" if prefix else _key(key)
        if isinstance(value, Mapping):
            tables.append((name, value))
        else:
            lines.append(f"{_key(key)} = {_value(value, name)}")
    text = "\n".join(lines) + ("\n" if lines else "")
    for name, table in tables:
        text += f"\n[{name}]\n" + dumps(table, name)
    return text
