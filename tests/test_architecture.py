"""The package's layers: every import points down (import-linter), the size rules of the layered
package, and the docstring examples' shared setup."""

import ast
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PKG = ROOT / "bayesvc"


def test_import_contracts_are_kept():
    exe = shutil.which("lint-imports", path=str(Path(sys.executable).parent)) or shutil.which("lint-imports")
    if exe is None:
        pytest.fail("lint-imports (import-linter) is not installed: it is a test dependency")
    out = subprocess.run([exe, "--config", str(ROOT / "pyproject.toml")], cwd=ROOT, capture_output=True,
                         text=True, timeout=300)
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-2000:]
    assert "0 broken" in out.stdout


def _modules():
    return sorted(p for p in PKG.rglob("*.py"))


def test_no_module_over_500_lines():
    big = {str(p.relative_to(ROOT)): n for p in _modules() if (n := len(p.read_text().splitlines())) > 500}
    assert not big, big


def _code_lines(fn: ast.FunctionDef) -> int:
    body = fn.body
    if body and isinstance(body[0], ast.Expr) and isinstance(getattr(body[0], "value", None), ast.Constant):
        body = body[1:]  # the docstring
    if not body:
        return 0
    return body[-1].end_lineno - body[0].lineno + 1


#: the hand-written Numba kernels are allowed to be long (one compiled function each)
LONG_OK = {"compiled.py"}


def test_no_function_over_80_lines():
    long = {}
    for p in _modules():
        if p.name in LONG_OK:
            continue
        for node in ast.walk(ast.parse(p.read_text())):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and _code_lines(node) > 80:
                long[f"{p.relative_to(ROOT)}:{node.lineno} {node.name}"] = _code_lines(node)
    assert not long, long


def test_no_skipped_doctests():
    skipped = [str(p.relative_to(ROOT)) for p in _modules() if "doctest: +SKIP" in p.read_text()]
    assert not skipped, skipped
