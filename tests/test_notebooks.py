"""The notebooks in ``notebooks/`` execute without errors.

Each notebook runs top to bottom in a fresh kernel of *this* interpreter (a temporary kernel spec
that points at ``sys.executable``, so the kernel sees the same environment as the tests), with the
working directory ``notebooks/`` and ``BAYESVC_FAST=1``: the notebooks then use short NUTS runs
(their text describes the full settings). Notebooks are stored without outputs.
"""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path

import pytest

pytestmark = pytest.mark.notebooks

nbformat = pytest.importorskip("nbformat", reason="notebook tests need nbformat (the 'test' extra)")
nbclient = pytest.importorskip("nbclient", reason="notebook tests need nbclient (the 'test' extra)")
pytest.importorskip("ipykernel", reason="notebook tests need ipykernel (the 'test' extra)")

NB_DIR = Path(__file__).resolve().parents[1] / "notebooks"
EXPECTED = ["01_variance_components.ipynb", "02_posterior_diagnostics.ipynb", "03_prior_sensitivity.ipynb"]
KERNEL_NAME = "bayesvc-tests"
CELL_TIMEOUT = 600  # seconds, per cell


@pytest.fixture(scope="module")
def kernel_name(tmp_path_factory):
    """A kernel spec for the running interpreter, found first through ``JUPYTER_PATH``."""
    root = tmp_path_factory.mktemp("jupyter")
    spec_dir = root / "kernels" / KERNEL_NAME
    spec_dir.mkdir(parents=True)
    spec = {
        "argv": [sys.executable, "-Xfrozen_modules=off", "-m", "ipykernel_launcher", "-f", "{connection_file}"],
        "display_name": "bayesvc tests",
        "language": "python",
        "env": {
            "BAYESVC_FAST": "1",
            "IPYTHONDIR": str(root / "ipython"),  # no user profile or startup files
            "PYDEVD_DISABLE_FILE_VALIDATION": "1",
        },
    }
    (spec_dir / "kernel.json").write_text(json.dumps(spec))
    runtime = root / "runtime"  # connection files, away from a possibly read-only home
    runtime.mkdir()
    env = {"JUPYTER_PATH": os.pathsep.join([str(root)] + ([os.environ["JUPYTER_PATH"]]
                                                          if os.environ.get("JUPYTER_PATH") else [])),
           "JUPYTER_RUNTIME_DIR": str(runtime)}
    old = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    try:
        yield KERNEL_NAME
    finally:
        for k, v in old.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def test_notebooks_present_and_stored_without_outputs():
    found = sorted(p.name for p in NB_DIR.glob("*.ipynb"))
    assert found == EXPECTED
    for name in found:
        nb = nbformat.read(NB_DIR / name, as_version=4)
        nbformat.validate(nb)
        dirty = [i for i, c in enumerate(nb.cells)
                 if c.cell_type == "code" and (c.outputs or c.execution_count is not None)]
        assert not dirty, f"{name}: cells {dirty} have stored outputs; clear them before committing"


@pytest.mark.parametrize("name", EXPECTED)
def test_notebook_executes(name, kernel_name):
    nb = nbformat.read(NB_DIR / name, as_version=4)
    client = nbclient.NotebookClient(nb, timeout=CELL_TIMEOUT, kernel_name=kernel_name,
                                     resources={"metadata": {"path": str(NB_DIR)}})
    t0 = time.perf_counter()
    try:
        client.execute()
    except nbclient.exceptions.CellExecutionError as err:
        pytest.fail(f"{name}: a cell raised\n{err}", pytrace=False)
    print(f"{name}: executed in {time.perf_counter() - t0:.1f} s")
    code = [c for c in nb.cells if c.cell_type == "code"]
    assert all(c.execution_count is not None for c in code), f"{name}: not every code cell ran"
    errors = [o for c in code for o in c.get("outputs", []) if o.get("output_type") == "error"]
    assert not errors, f"{name}: error outputs {errors}"
