"""Pick the LoadTest to run and the ModelPack it targets out of the files a user passed."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from modelpack.api.loading import load_file
from modelpack.api.loadtest import LoadTest
from modelpack.api.modelpack import ModelPack


class ObjectsError(ValueError):
    """Files that do not hold what `modelpack run` needs; the message says what is missing."""


@dataclass(frozen=True)
class RunObjects:
    loadtest: LoadTest
    pack: ModelPack | None
    """None when running against an existing endpoint."""


def load_objects(paths: Sequence[str]) -> tuple[list[ModelPack], list[LoadTest]]:
    """Every object in every file; loading errors (``InvalidObjectError``) pass through unchanged."""
    packs: list[ModelPack] = []
    tests: list[LoadTest] = []
    for path in paths:
        for obj in load_file(path):
            (packs if isinstance(obj, ModelPack) else tests).append(obj)  # type: ignore[arg-type]
    return packs, tests


def select(packs: Sequence[ModelPack], tests: Sequence[LoadTest], *, need_pack: bool) -> RunObjects:
    if not tests:
        found = ", ".join(f"ModelPack {p.metadata.name!r}" for p in packs) or "nothing"
        raise ObjectsError(f"no LoadTest in the files given (found {found}): pass one with -f loadtest.yaml")
    if len(tests) > 1:
        names = ", ".join(repr(t.metadata.name) for t in tests)
        raise ObjectsError(f"{len(tests)} LoadTests in the files given ({names}): `modelpack run` runs one at a time")
    loadtest = tests[0]
    if not need_pack:
        return RunObjects(loadtest=loadtest, pack=None)
    target = loadtest.spec.target.model_pack
    matches = [p for p in packs if p.metadata.name == target]
    if not matches:
        found = ", ".join(repr(p.metadata.name) for p in packs) or "none"
        raise ObjectsError(
            f"LoadTest {loadtest.metadata.name!r}: spec.target.modelPack {target!r} is not in the files given "
            f"(ModelPacks found: {found}); add its file with -f, or use --endpoint URL for a pack already running"
        )
    if len(matches) > 1:
        raise ObjectsError(f"ModelPack {target!r} is defined {len(matches)} times in the files given")
    return RunObjects(loadtest=loadtest, pack=matches[0])
