"""Memory on large crossed designs (issue 11): the pair products of the kernel are counted before
they are listed, built a chunk at a time, and replaced by the dense block when there are too many;
a crossed design's kernel build stays within a bound on peak RSS (measured in a subprocess)."""

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import scipy.sparse as sp

from bayesvc.kernel import pairs as pairs_mod

ROOT = Path(__file__).resolve().parents[1]


def _random_c1(rng, m=40, q1=300, density=0.2):
    return sp.random(m, q1, density=density, random_state=rng, format="csc")


@pytest.mark.parametrize("chunk", [1, 7, 10_000_000])
def test_chunked_pairs_equal_the_dense_product(monkeypatch, chunk):
    rng = np.random.default_rng(4)
    C1 = _random_c1(rng)
    m, rz = C1.shape[0], 30
    monkeypatch.setattr(pairs_mod, "CHUNK_PAIRS", chunk)
    monkeypatch.setattr(pairs_mod, "use_dense", lambda *a: False)
    pp = pairs_mod.pair_products(C1, m, rz)
    assert pp.dense is None
    w = rng.uniform(0.1, 2.0, C1.shape[1])
    D = C1.toarray()
    np.testing.assert_allclose(pp.inner(w, m), (D * w) @ D.T, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(pp.inner_z(w, rz), ((D * w) @ D.T)[:rz, :rz], rtol=1e-12, atol=1e-12)
    assert pp.P.nnz == pairs_mod.count_pairs(C1)


def test_dense_path_keeps_offdiag_flag():
    rng = np.random.default_rng(5)
    C1 = _random_c1(rng)
    sparse = pairs_mod.pair_products(C1, C1.shape[0], 30) if not pairs_mod.use_dense(
        C1.shape[0], C1.shape[1], pairs_mod.count_pairs(C1)) else None
    dense = pairs_mod._dense_products(C1.tocsc(), 30)
    assert dense.dense is not None and dense.P.shape[0] == 0
    if sparse is not None:
        assert dense.offdiag_z == sparse.offdiag_z
    diag = sp.csc_matrix(np.vstack([np.eye(5), np.ones((3, 5))]))  # one rest row per column
    assert not pairs_mod._dense_products(diag, 5).offdiag_z
    assert pairs_mod._dense_products(diag, 6).offdiag_z


def test_too_many_pairs_go_dense():
    assert pairs_mod.use_dense(2000, 5000, pairs_mod.MAX_PAIRS + 1)
    assert not pairs_mod.use_dense(2000, 5000, 10_000)


@pytest.mark.slow
def test_crossed_million_rows_reml_under_1_5_gb():
    """The issue's design: 1000 x 1000 crossed levels, 10^6 rows (17.3 GB peak before)."""
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    out = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "memory.py"), "--rows", "1e6",
                          "--design", "crossed", "--json", os.devnull], capture_output=True, text=True,
                         env=env, cwd=str(ROOT))
    assert out.returncode == 0, out.stderr
    row = [r for r in out.stdout.splitlines() if r.startswith("| crossed")][-1]
    peak = float(row.split("|")[4])
    assert peak < 1.5, row


def test_crossed_kernel_build_memory_bounded():
    """10^5 crossed rows (0.68 GB and 6.6 s to build before): the child's peak RSS minus its RSS
    after importing and simulating stays small."""
    child = r"""
import json, resource, numpy as np, pandas as pd, bayesvc as bvc
rng = np.random.default_rng(1); n = 100_000
a, b = rng.integers(0, 1000, n), rng.integers(0, 1000, n)
df = pd.DataFrame({"a": a, "b": b, "y": rng.normal(size=1000)[a] + rng.normal(size=1000)[b] + rng.normal(size=n)})
base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
k = bvc.VCModel.from_formula("y ~ 1 + (1|a) + (1|b)", data=df).kernel
print(json.dumps({"growth_mb": (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - base) / 1024}))
"""
    out = subprocess.run([sys.executable, "-c", child], capture_output=True, text=True,
                         env=dict(os.environ, PYTHONPATH=str(ROOT)), cwd=str(ROOT))
    assert out.returncode == 0, out.stderr
    growth = json.loads(out.stdout.strip().splitlines()[-1])["growth_mb"]
    # listing all ~5e6 pairs at once took ~400 MB of temporaries; chunks of 2e6 pairs bound them
    assert growth < 300, growth
