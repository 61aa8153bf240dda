"""The documentation site builds with ``mkdocs build --strict`` (needs the ``docs`` extra).

Strict mode turns every warning into an error: broken links and anchors, pages missing from the
nav, unknown modules in ``::: bayesvc.x`` blocks and docstrings that mkdocstrings cannot render.
"""

from __future__ import annotations

import importlib.util
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DOCS_PACKAGES = ["mkdocs", "material", "mkdocstrings", "mkdocstrings_handlers.python", "pymdownx"]


def _missing() -> list[str]:
    out = []
    for name in DOCS_PACKAGES:
        try:
            if importlib.util.find_spec(name) is None:
                out.append(name)
        except ModuleNotFoundError:
            out.append(name)
    return out


def _modules() -> set[str]:
    """Every public module of the package, dotted (``bayesvc.kernel.criteria``)."""
    pkg = ROOT / "bayesvc"
    out = set()
    for p in pkg.rglob("*.py"):
        if p.stem.startswith("_"):
            continue
        out.add(".".join(("bayesvc",) + p.relative_to(pkg).with_suffix("").parts))
    return out


def test_every_module_has_an_api_page():
    """One page per layer or top-level module; every module appears in one ``::: bayesvc.x``
    block, and every page is in mkdocs.yml's nav."""
    documented = set()
    nav = (ROOT / "mkdocs.yml").read_text()
    for md in (ROOT / "docs" / "api").glob("*.md"):
        documented |= set(re.findall(r"^::: (bayesvc(?:\.\w+)+)", md.read_text(), re.MULTILINE))
        assert f"api/{md.name}" in nav, f"docs/api/{md.name} is not in mkdocs.yml's nav"
    assert documented == _modules(), (
        f"docs/api/ is out of step with bayesvc/: document {sorted(_modules() - documented)}, "
        f"remove {sorted(documented - _modules())}")


@pytest.mark.skipif(bool(_missing()), reason=f"the docs build needs the 'docs' extra "
                    f"(pip install -e '.[docs]'); missing: {', '.join(_missing())}")
def test_mkdocs_build_strict(tmp_path):
    site = tmp_path / "site"
    env = {**os.environ, "NO_MKDOCS_2_WARNING": "1"}  # mkdocs-material's banner, not a warning
    proc = subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(site)],
                          check=False, cwd=ROOT, capture_output=True, text=True, timeout=600, env=env)
    assert proc.returncode == 0, f"mkdocs build --strict failed:\n{proc.stdout}\n{proc.stderr}"
    assert (site / "index.html").is_file()
    for md in sorted((ROOT / "docs" / "api").glob("*.md")):
        page = (site / "api" / md.stem / "index.html").read_text()
        assert "doc-object" in page, f"api/{md.stem}: mkdocstrings rendered nothing"
