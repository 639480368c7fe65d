"""The committed CRDs and docs/api.md are exactly what the types generate, and are structural."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from modelpack.api import crd
from modelpack.api.loadtest import LoadTest
from modelpack.api.modelpack import ModelPack
from modelpack.cli.crds import generated_files
from modelpack.cli.main import main

ROOT = Path(__file__).resolve().parents[2]


def test_committed_files_match_the_types() -> None:
    expected = generated_files(ROOT)
    stale = [str(p.relative_to(ROOT)) for p, text in expected.items() if not p.exists() or p.read_text() != text]
    assert stale == [], f"regenerate with `modelpack crds generate`: {stale}"


def test_crds_check_command_detects_drift(tmp_path: Path, capsys: Any) -> None:
    (tmp_path / "pyproject.toml").write_text("")
    assert main(["crds", "generate", "--root", str(tmp_path)]) == 0
    assert main(["crds", "check", "--root", str(tmp_path)]) == 0
    target = tmp_path / "crds" / "modelpack.dev_loadtests.yaml"
    target.write_text(target.read_text().replace("Requests per second", "Requests"))
    assert main(["crds", "check", "--root", str(tmp_path)]) == 1
    assert "crds/modelpack.dev_loadtests.yaml" in capsys.readouterr().err


def _walk(node: Any, path: str, problems: list[str]) -> None:
    if not isinstance(node, dict):
        return
    if "type" not in node and not node.get("x-kubernetes-int-or-string"):
        problems.append(f"{path}: no type")
    for banned in ("$ref", "anyOf", "allOf", "oneOf", "title", "const"):
        if banned in node:
            problems.append(f"{path}: {banned}")
    for name, child in node.get("properties", {}).items():
        _walk(child, f"{path}.{name}", problems)
    if isinstance(node.get("items"), dict):
        _walk(node["items"], f"{path}[]", problems)
    if isinstance(node.get("additionalProperties"), dict):
        _walk(node["additionalProperties"], f"{path}{{}}", problems)


def test_schemas_are_structural_and_keep_descriptions() -> None:
    for model in (ModelPack, LoadTest):
        schema = crd.openapi_schema(model)
        problems: list[str] = []
        _walk(schema, model.__name__, problems)
        assert problems == []
        spec = schema["properties"]["spec"]
        assert all("description" in child for child in spec["properties"].values())


def test_cross_field_rules_become_cel() -> None:
    schema = crd.openapi_schema(LoadTest)
    load = schema["properties"]["spec"]["properties"]["load"]
    messages = [r["message"] for r in load["x-kubernetes-validations"]]
    assert "load.rate cannot be set in concurrency mode: use load.concurrency" in messages


def test_names_and_columns() -> None:
    mp = crd.crd(ModelPack)["spec"]
    assert mp["names"]["shortNames"] == ["mp"]
    assert mp["names"]["categories"] == ["modelpack-all"]
    assert [c["name"] for c in mp["versions"][0]["additionalPrinterColumns"]][:4] == [
        "Compute",
        "Models",
        "Servers",
        "Ready",
    ]
    lt = crd.crd(LoadTest)["spec"]
    cols = [c["name"] for c in lt["versions"][0]["additionalPrinterColumns"]]
    assert cols[:7] == ["Phase", "RPS", "P50(ms)", "P99(ms)", "Errors", "Dropped", "SLO"]
