"""The `operator/` folder is a source root, never the stdlib's `operator` module."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_operator_folder_does_not_shadow_stdlib() -> None:
    assert not (ROOT / "operator" / "__init__.py").exists()
    code = "import operator, sys; assert operator.__file__.startswith(sys.base_prefix), operator.__file__; print('ok')"
    result = subprocess.run(
        [sys.executable, "-c", code],
        cwd=ROOT,
        env={"PYTHONPATH": f"{ROOT}:{ROOT / 'operator'}"},
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "ok"


def test_operator_package_imports_under_its_own_name() -> None:
    result = subprocess.run(
        [sys.executable, "-c", "import modelpack_operator, operator; print(operator.add(1, 2))"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "3"
