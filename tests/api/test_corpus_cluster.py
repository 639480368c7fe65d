"""The hostile corpus on a real API server with the generated CRDs and the chart's admission policy installed:
the same verdict as ``modelpack validate`` for every case, and a refusal that names the same field."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import pytest
import yaml

from tests.api.corpus import CASES
from tests.api.test_apiserver import crds  # noqa: F401  (fixture)
from tests.helm.helmcli import of_kind, render

pytestmark = pytest.mark.cluster


@pytest.fixture(scope="module")
def admission(crds: Any) -> Iterator[Any]:  # noqa: F811
    """The chart's ValidatingAdmissionPolicy and binding, as `helm install` would create them."""
    docs = render()
    policy = [*of_kind(docs, "ValidatingAdmissionPolicy"), *of_kind(docs, "ValidatingAdmissionPolicyBinding")]
    assert len(policy) == 2
    text = yaml.safe_dump_all(policy)
    crds.kubectl("apply", "-f", "-", input=text)
    yield crds
    crds.kubectl("delete", "-f", "-", "--ignore-not-found", input=text, check=False)


def dry_run(cp: Any, namespace: str, doc: dict[str, Any]) -> Any:
    return cp.kubectl("apply", "--dry-run=server", "-n", namespace, "-f", "-", input=yaml.safe_dump(doc), check=False)


def test_the_api_server_agrees_with_validate_on_every_case(admission: Any, namespace: str) -> None:
    over = next(c for c in CASES if c.id == "over-model-limit")
    deadline = time.monotonic() + 30
    while dry_run(admission, namespace, over.doc).returncode == 0:  # the policy takes a moment to be enforced
        assert time.monotonic() < deadline, "the chart's ValidatingAdmissionPolicy was never enforced"
        time.sleep(0.5)
    wrong: list[str] = []
    for case in CASES:
        result = dry_run(admission, namespace, case.doc)
        if case.field is None and result.returncode != 0:
            wrong.append(f"{case.id}: refused, validate accepts it: {result.stderr.strip()}")
        elif case.field is not None and result.returncode == 0:
            wrong.append(f"{case.id}: accepted, validate refuses it naming {case.field}")
        elif case.field is not None and case.field not in result.stderr:
            wrong.append(f"{case.id}: refused without naming {case.field}: {result.stderr.strip()}")
    assert not wrong, "\n".join(wrong)
