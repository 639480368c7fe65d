"""What a model name may be: one definition for the API (CRD pattern), the operator and the model server's store.

A model name is a folder in the store, part of a URL path (``/v2/models/<name>``), one item of the server's
comma-separated ``--models`` flag and a Prometheus label value, so it may hold none of ``/``, ``,``, ``..``,
whitespace or a leading dot. The store checks it again (defence in depth): a name that reached a server by
any other way still cannot step out of the store's folder.
"""

from __future__ import annotations

import re

MODEL_NAME_PATTERN = r"^[A-Za-z0-9](\.?[A-Za-z0-9_-])*$"
"""Letters, digits, ``_``, ``-`` and single dots between them; starts with a letter or digit, never ends with a dot."""
MODEL_NAME_MAX = 128
MODEL_NAME_RULE = (
    f"a model name is 1 to {MODEL_NAME_MAX} letters, digits, '_', '-' or single '.' between them, starting "
    "with a letter or digit (no '/', ',', '..' or spaces)"
)

_MODEL_NAME = re.compile(MODEL_NAME_PATTERN)


def model_name_problem(name: str) -> str | None:
    """Why ``name`` is not a model name, or ``None`` when it is one."""
    if not isinstance(name, str) or not name or len(name) > MODEL_NAME_MAX or not _MODEL_NAME.match(name):
        return f"bad model name {name!r}: {MODEL_NAME_RULE}"
    return None
