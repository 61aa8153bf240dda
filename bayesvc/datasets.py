"""The seed notebook's data generators (statsmodels' variance-components example), verbatim in
behaviour: they draw from NumPy's global random state so that ``np.random.seed(3123)`` followed by
``generate_nested()`` then ``generate_crossed()`` reproduces the notebook's data sets."""

from __future__ import annotations

import numpy as np
import pandas as pd

from .spec import VCSpec


def generate_nested(n_group1=200, n_group2=20, n_rep=10, group1_sd=2, group2_sd=3, unexplained_sd=4):
    """Two-level nested design: ``group2`` labels nested within ``group1``."""
    group1 = np.kron(np.arange(n_group1), np.ones(n_group2 * n_rep))
    u = group1_sd * np.random.normal(size=n_group1)
    effects1 = np.kron(u, np.ones(n_group2 * n_rep))
    group2 = np.kron(np.ones(n_group1), np.kron(np.arange(n_group2), np.ones(n_rep)))
    u = group2_sd * np.random.normal(size=n_group1 * n_group2)
    effects2 = np.kron(u, np.ones(n_rep))
    e = unexplained_sd * np.random.normal(size=n_group1 * n_group2 * n_rep)
    y = effects1 + effects2 + e
    return pd.DataFrame({"y": y, "group1": group1, "group2": group2})


def generate_crossed(n_group1=100, n_group2=100, n_rep=4, group1_sd=2, group2_sd=3, unexplained_sd=4):
    """Two crossed grouping factors."""
    group1 = np.kron(np.arange(n_group1, dtype=int), np.ones(n_group2 * n_rep, dtype=int))
    group1 = group1[np.random.permutation(len(group1))]
    u = group1_sd * np.random.normal(size=n_group1)
    effects1 = u[group1]
    group2 = np.kron(np.arange(n_group2, dtype=int), np.ones(n_group2 * n_rep, dtype=int))
    group2 = group2[np.random.permutation(len(group2))]
    u = group2_sd * np.random.normal(size=n_group2)
    effects2 = u[group2]
    e = unexplained_sd * np.random.normal(size=n_group1 * n_group2 * n_rep)
    y = effects1 + effects2 + e
    return pd.DataFrame({"y": y, "group1": group1, "group2": group2})


def seed_data(seed: int = 3123) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The seed notebook's nested and crossed data sets, in the notebook's order."""
    np.random.seed(seed)
    nested = generate_nested()
    crossed = generate_crossed()
    return nested, crossed


def nested_vcspec(df: pd.DataFrame):
    """The seed's hand-built VCSpec for the nested design (one indicator block per group1)."""
    mats, colnames = [], []
    for _, x in df.groupby("group1", sort=True):
        u = np.sort(x.group2.unique())
        mats.append((x.group2.to_numpy()[:, None] == u[None, :]).astype(float))
        colnames.append(["%d" % z for z in u])
    return VCSpec(["group2"], [colnames], [mats])


def crossed_vcspec(df: pd.DataFrame):
    """The seed's hand-built VCSpec for the crossed design (one group holding everything)."""
    def f(g):
        u = np.sort(g.unique())
        return [(g.to_numpy()[:, None] == u[None, :]).astype(float)], [["%d" % z for z in u]]

    vcm = [f(df.group1), f(df.group2)]
    return VCSpec(["group1", "group2"], [x[1] for x in vcm], [x[0] for x in vcm])


def example_data(n_groups: int = 8, per_group: int = 6, group_sd: float = 2.0, seed: int = 0) -> pd.DataFrame:
    """A small one-way data set (columns ``g``, ``y``) for the documentation's examples.

    Examples
    --------
    >>> df = example_data()
    >>> df.shape, df.g.nunique()
    ((48, 2), 8)
    """
    rng = np.random.default_rng(seed)
    df = pd.DataFrame({"g": np.repeat(np.arange(n_groups), per_group)})
    df["y"] = rng.normal(0, group_sd, n_groups)[df.g] + rng.normal(size=n_groups * per_group)
    return df
