import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

DATA = Path(__file__).parent / "data"


@pytest.fixture(scope="session")
def lme4_ref():
    return json.loads((DATA / "lme4_reference.json").read_text())["models"]


def load(name: str) -> pd.DataFrame:
    """Read an exported lme4 data set; factors stay strings (R's labels)."""
    df = pd.read_csv(DATA / name, dtype=str)
    for c in df.columns:
        try:
            df[c] = pd.to_numeric(df[c])
        except ValueError:
            pass
    return df


def load_factors(name: str, factors: list[str]) -> pd.DataFrame:
    df = pd.read_csv(DATA / name, dtype={f: str for f in factors})
    return df


@pytest.fixture(scope="session")
def seed_nested():
    from bayesvc.datasets import generate_nested

    np.random.seed(3123)
    return generate_nested()


@pytest.fixture(scope="session")
def seed_crossed():
    from bayesvc.datasets import generate_crossed, generate_nested

    np.random.seed(3123)
    generate_nested()  # the seed notebook draws the nested data first
    return generate_crossed()


# ----------------------------------------------------------------------------- information, dense

def dense_information(design, values, scale, reml):
    """Observed information (half the Hessian of -2 log-likelihood, beta profiled) in (the variance
    parameters of ``vc_parameters``, scale), in closed form with V dense: V is linear in them,
    V = sum_a x_a V_a, so ``H_ab = -tr(W V_a W V_b) + 2 y'P V_a P V_b P y`` with W = P (REML) or
    V^-1 (ML) and P = V^-1 - V^-1 X (X'V^-1 X)^-1 X'V^-1 (Searle, Casella & McCulloch 1992, 6.3)."""
    from bayesvc.design.covariance import vc_parameters

    Vs = []
    for _, k, i, j in vc_parameters(design.terms):
        t = design.terms[k]
        Zi, Zj = t.Z[:, i::t.p].toarray(), t.Z[:, j::t.p].toarray()
        Vs.append(Zi @ Zj.T + (Zj @ Zi.T if i != j else 0))
    Vs.append(np.eye(design.nobs))
    V = sum(v * M for v, M in zip([*values, scale], Vs))
    Vi = np.linalg.inv(V)
    X, y = design.X, design.y
    P = Vi - Vi @ X @ np.linalg.solve(X.T @ Vi @ X, X.T @ Vi)
    W = P if reml else Vi
    Py = P @ y
    WV = [W @ M for M in Vs]
    PVPy = [P @ (M @ Py) for M in Vs]
    k = len(Vs)
    H = np.array([[-np.sum(WV[a] * WV[b].T) + 2 * (Vs[a] @ Py) @ PVPy[b] for b in range(k)] for a in range(k)])
    return 0.5 * H


def parameter_values(res):
    """A REML result's variance parameters in ``vc_parameters`` order."""
    from bayesvc.design.covariance import covariances, vc_parameters

    mats = covariances(res.design.terms, res.theta, res.scale)
    return [mats[k][i, j] for _, k, i, j in vc_parameters(res.design.terms)]


def numerical_gradient(f, x, rel_step: float = 1e-3) -> np.ndarray:
    """Five-point central differences, step ``rel_step * max(|x|, 1)``: truncation O(h^4) (~1e-12
    here) and rounding noise ~eps |f| / h (~1e-10 for |f| ~ 1e3), so comparisons at 1e-6 hold on
    any CPU; the two-point rule at h = 1e-6 would leave noise near 1e-7 |f|."""
    x = np.asarray(x, dtype=float)
    out = np.empty(len(x))
    for i in range(len(x)):
        h = rel_step * max(abs(x[i]), 1.0)
        e = np.zeros(len(x))
        e[i] = h
        out[i] = (-f(x + 2 * e) + 8 * f(x + e) - 8 * f(x - e) + f(x - 2 * e)) / (12 * h)
    return out
