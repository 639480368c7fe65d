"""CustomResourceDefinitions generated from the pydantic types.

The types are the only hand-edited schema. This module turns pydantic's JSON Schema into a
Kubernetes structural schema: ``$ref`` inlined, ``Optional`` collapsed, ``title`` dropped,
descriptions kept (``kubectl explain`` must explain), cross-field :class:`Rule` s emitted as CEL
``x-kubernetes-validations``.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any, cast

import yaml
from pydantic import BaseModel

from modelpack.api.base import ApiModel
from modelpack.api.common import GROUP, VERSION
from modelpack.api.loadtest import LoadTest
from modelpack.api.modelpack import ModelPack

_DROP = {"title", "examples", "$defs", "discriminator"}


def _all_models(root: type[BaseModel]) -> dict[str, type[ApiModel]]:
    """Every ApiModel reachable from root, by the name pydantic uses in $defs."""
    found: dict[str, type[ApiModel]] = {}
    stack: list[Any] = [root]
    while stack:
        tp = stack.pop()
        if isinstance(tp, type) and issubclass(tp, ApiModel):
            if tp.__name__ in found:
                continue
            found[tp.__name__] = tp
            for field in tp.model_fields.values():
                stack.append(field.annotation)
        for arg in getattr(tp, "__args__", ()) or ():
            stack.append(arg)
    return found


def _validations(model: type[ApiModel]) -> list[dict[str, str]]:
    """A model's rules as CEL ``x-kubernetes-validations`` (with the field they are about, when one is named)."""
    return [
        {"rule": r.cel, "message": r.message, **({"fieldPath": r.field_path} if r.field_path else {})}
        for r in model.rules
    ]


def _convert(node: Any, defs: dict[str, Any], models: dict[str, type[ApiModel]]) -> Any:
    if isinstance(node, list):
        return [_convert(n, defs, models) for n in node]
    if not isinstance(node, dict):
        return node
    if "$ref" in node:
        name = node["$ref"].rsplit("/", 1)[-1]
        target = copy.deepcopy(defs[name])
        target.update({k: v for k, v in node.items() if k != "$ref"})
        model = models.get(name)
        if model is not None and target.get("default") == {}:
            # The API server checks a default against the rules without applying nested defaults: spell it out.
            target["default"] = model().to_dict()
        if model is not None and model.rules:
            target["x-kubernetes-validations"] = [*target.get("x-kubernetes-validations", []), *_validations(model)]
        return _convert(target, defs, models)
    if "anyOf" in node:
        branches = [b for b in node["anyOf"] if b.get("type") != "null"]
        rest = {k: v for k, v in node.items() if k != "anyOf"}
        if len(branches) == 1:
            merged = {**branches[0], **rest}
            if merged.get("default", 0) is None:
                merged.pop("default")
            return _convert(merged, defs, models)
        types = {b.get("type") for b in branches}
        if types <= {"integer", "number", "string"}:
            return _convert({**rest, "x-kubernetes-int-or-string": True}, defs, models)
        raise ValueError(f"cannot express union {node} in a structural schema")
    if "patternProperties" in node:
        node = _keys_as_cel(node)
    out: dict[str, Any] = {}
    for key, value in node.items():
        if key in _DROP:
            continue
        if key == "const":
            out["enum"] = [value]
            continue
        if key == "default" and value is None:
            continue
        if key in ("exclusiveMinimum", "exclusiveMaximum"):
            # JSON Schema 2020 puts the bound here; OpenAPI v3.0 (what Kubernetes speaks) wants a boolean.
            out["minimum" if key == "exclusiveMinimum" else "maximum"] = value
            out[key] = True
            continue
        if key == "properties":
            out[key] = {k: _convert(v, defs, models) for k, v in value.items()}
        elif key in ("items", "additionalProperties") and isinstance(value, dict):
            out[key] = _convert(value, defs, models)
        else:
            out[key] = value
    if out.get("type") == "object" and "maxLength" in out:
        out["maxProperties"] = out.pop("maxLength")  # pydantic spells a dict's max_length like a string's
    if "enum" in out and "type" not in out:
        out["type"] = "string"
    if out.get("x-kubernetes-preserve-unknown-fields") and "type" not in out:
        out["type"] = "object"
    if "additionalProperties" in out and out["additionalProperties"] is False:
        del out["additionalProperties"]
    if out.get("additionalProperties") is True:
        del out["additionalProperties"]
        out["x-kubernetes-preserve-unknown-fields"] = True
    return out


def _keys_as_cel(node: dict[str, Any]) -> dict[str, Any]:
    """A map with constrained keys (JSON Schema patternProperties / propertyNames, which a structural schema
    cannot hold) as additionalProperties plus a CEL rule on the keys, with the same bounds."""
    rest = {k: v for k, v in node.items() if k not in ("patternProperties", "propertyNames")}
    ((pattern, values),) = node["patternProperties"].items()
    names = node.get("propertyNames") or {}
    checks = [f"k.matches('{pattern}')"]
    if "maxLength" in names:
        checks.insert(0, f"size(k) <= {names['maxLength']}")
    rule = {
        "rule": f"self.all(k, {' && '.join(checks)})",
        "message": f"every key must match {pattern}" + (f", at most {names['maxLength']} characters" if names else ""),
    }
    return {
        **rest,
        "additionalProperties": values,
        "x-kubernetes-validations": [*rest.get("x-kubernetes-validations", []), rule],
    }


def openapi_schema(model: type[ApiModel]) -> dict[str, Any]:
    """The structural openAPIV3Schema of one kind."""
    raw = model.model_json_schema(by_alias=True, mode="validation")
    defs = raw.pop("$defs", {})
    schema = _convert(raw, defs, _all_models(model))
    props = schema["properties"]
    # apiVersion, kind and metadata are the API server's business, not the schema's.
    props["apiVersion"] = {"type": "string", "description": "modelpack.dev/v1alpha1"}
    props["kind"] = {"type": "string", "description": model.__name__}
    props["metadata"] = {"type": "object"}
    schema["required"] = ["spec"]
    schema["description"] = (model.__doc__ or "").strip()
    if model.rules:
        # Root rules may read metadata.name (the only metadata CEL sees), e.g. to bound what child names derive from.
        schema["x-kubernetes-validations"] = _validations(model)
    return cast(dict[str, Any], schema)


_PRINTER_COLUMNS: dict[str, list[dict[str, str]]] = {
    "ModelPack": [
        {"name": "Compute", "type": "string", "jsonPath": ".spec.compute.type"},
        {"name": "Models", "type": "integer", "jsonPath": ".status.models"},
        {"name": "Servers", "type": "integer", "jsonPath": ".status.servers"},
        {"name": "Ready", "type": "string", "jsonPath": '.status.conditions[?(@.type=="Ready")].status'},
        {"name": "Phase", "type": "string", "jsonPath": ".status.phase"},
        {"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp"},
    ],
    "LoadTest": [
        {"name": "Phase", "type": "string", "jsonPath": ".status.phase"},
        {"name": "RPS", "type": "number", "jsonPath": ".status.results.throughput"},
        {"name": "P50(ms)", "type": "number", "jsonPath": ".status.results.latencyMs.p50"},
        {"name": "P99(ms)", "type": "number", "jsonPath": ".status.results.latencyMs.p99"},
        {"name": "Errors", "type": "integer", "jsonPath": ".status.results.errors"},
        {"name": "Dropped", "type": "integer", "jsonPath": ".status.results.errorsByClass.dropped", "priority": "1"},
        {"name": "SLO", "type": "string", "jsonPath": ".status.sloVerdict"},
        {"name": "Cost/1M", "type": "string", "jsonPath": ".status.cost.perMillion", "priority": "1"},
        {"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp"},
    ],
}
_NAMES = {"ModelPack": ("modelpacks", "modelpack", "mp"), "LoadTest": ("loadtests", "loadtest", "lt")}


def crd(model: type[ApiModel]) -> dict[str, Any]:
    """The CustomResourceDefinition of one kind."""
    kind = model.__name__
    plural, singular, short = _NAMES[kind]
    columns = [
        {
            **{k: v for k, v in c.items() if k != "priority"},
            **({"priority": int(c["priority"])} if "priority" in c else {}),
        }
        for c in _PRINTER_COLUMNS[kind]
    ]
    return {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": f"{plural}.{GROUP}", "labels": {"app.kubernetes.io/part-of": "modelpack"}},
        "spec": {
            "group": GROUP,
            "scope": "Namespaced",
            "names": {
                "kind": kind,
                "listKind": f"{kind}List",
                "plural": plural,
                "singular": singular,
                "shortNames": [short],
                # Not "modelpack": kubectl expands a category before a singular name, so `kubectl get modelpack`
                # would list LoadTests too.
                "categories": ["modelpack-all"],
            },
            "versions": [
                {
                    "name": VERSION,
                    "served": True,
                    "storage": True,
                    "subresources": {"status": {}},
                    "additionalPrinterColumns": columns,
                    "schema": {"openAPIV3Schema": openapi_schema(model)},
                }
            ],
        },
    }


KINDS: tuple[type[ApiModel], ...] = (ModelPack, LoadTest)
CRD_FILES: dict[type[ApiModel], str] = {
    ModelPack: "modelpack.dev_modelpacks.yaml",
    LoadTest: "modelpack.dev_loadtests.yaml",
}
HEADER = "# Generated by `modelpack crds generate` from modelpack/api; do not edit.\n"


def render(model: type[ApiModel]) -> str:
    return HEADER + yaml.safe_dump(crd(model), sort_keys=False, width=120)


CHART_CRD_DIR = Path("helm") / "modelpack" / "templates" / "crds"


def chart_template(model: type[ApiModel]) -> str:
    """The chart's copy of a CRD: a template, not a file in ``crds/``, because Helm installs ``crds/`` once and
    never upgrades it. ``crds.install`` renders it at all; ``crds.keep`` adds ``helm.sh/resource-policy: keep``
    so ``helm uninstall`` (or turning ``crds.install`` off) never deletes the CRD and with it every pack.
    Only the metadata is template text; apiVersion, kind and spec are the same dump as ``crds/``."""
    doc = crd(model)
    labels = "".join(f"    {k}: {v}\n" for k, v in doc["metadata"]["labels"].items())
    head = yaml.safe_dump({"apiVersion": doc["apiVersion"], "kind": doc["kind"]}, sort_keys=False)
    return (
        HEADER
        + "{{- if .Values.crds.install }}\n"
        + head
        + "metadata:\n"
        + f"  name: {doc['metadata']['name']}\n"
        + "  labels:\n"
        + labels
        + '    {{- include "modelpack.crdLabels" . | nindent 4 }}\n'
        + "  {{- if .Values.crds.keep }}\n"
        + "  annotations:\n"
        + "    helm.sh/resource-policy: keep\n"
        + "  {{- end }}\n"
        + yaml.safe_dump({"spec": doc["spec"]}, sort_keys=False, width=120)
        + "{{- end }}\n"
    )


def expected_files(repo_root: Path) -> dict[Path, str]:
    """Every generated CRD file (crds/ for kubectl, the chart's templated copy) and its content."""
    out = {}
    for model, name in CRD_FILES.items():
        out[repo_root / "crds" / name] = render(model)
        out[repo_root / CHART_CRD_DIR / name] = chart_template(model)
    return out
