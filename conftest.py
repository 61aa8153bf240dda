"""Shared objects for the docstring examples (``--doctest-modules``).

Each example shows the call, not the setup: the objects below are built once per session and put
into every doctest's namespace (only those a docstring names, so a doctest of the design layer
does not pay for sampling).
"""

import re
import warnings

import numpy as np
import pandas as pd
import pytest


def _slopes_data():
    df = pd.DataFrame({"g": np.repeat(["a", "b", "c"], 4), "x": np.tile([0.0, 1, 2, 3], 3)})
    df["y"] = np.repeat([1.0, 4, 2], 4) + df.x + np.tile([0.0, 1, -1, 0.5], 3)
    return df


def _nested_data():
    rng = np.random.default_rng(0)
    df = pd.DataFrame({"a": np.repeat(np.arange(8), 12), "b": np.repeat(np.arange(24), 4)})
    df["y"] = 2 * rng.normal(size=8)[df.a] + rng.normal(size=24)[df.b] + rng.normal(size=96)
    return df


class _Objects:
    """Lazily built doctest objects, each at most once per session."""

    def __init__(self):
        import bayesvc as bvc

        self.bvc = bvc
        self._made = {}

    def get(self, name):
        if name not in self._made:
            self._made[name] = getattr(self, "_" + name)()
        return self._made[name]

    def _df(self):
        return self.bvc.datasets.example_data()

    def _model(self):
        return self.bvc.VCModel.from_formula("y ~ 1 + (1|g)", data=self.get("df"))

    def _reml(self):
        return self.get("model").fit_reml()

    def _mode(self):
        return self.get("model").fit_map()

    def _post(self):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return self.get("model").sample(draws=200, tune=200, chains=2, random_seed=1, progressbar=False)

    def _sweep(self):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return self.bvc.prior_sweep(self.get("model"), scales=(0.5, 1, 2), draws=200, tune=200,
                                        random_seed=1)

    def _slopes(self):
        return self.bvc.VCModel.from_formula("y ~ x + (1 + x|g)", data=_slopes_data())

    def _nested_fit(self):
        return self.bvc.VCModel.from_formula("y ~ 1 + (1|a/b)", data=_nested_data()).fit_reml()


    def _counts(self):
        """Poisson counts, 8 groups of 6 (the GLMM examples)."""
        rng = np.random.default_rng(2)
        g = np.repeat(np.arange(8), 6)
        return pd.DataFrame({"g": g, "y": rng.poisson(np.exp(1 + 0.5 * rng.normal(size=8))[g])})


NAMES = ("df", "model", "reml", "mode", "post", "sweep", "slopes", "nested_fit", "counts")


@pytest.fixture(scope="session")
def _doctest_objects():
    return _Objects()


@pytest.fixture(autouse=True)
def _doctest_setup(request):
    """Fill the doctest namespace with ``bvc, np, pd`` and the objects the docstring names."""
    from _pytest.doctest import DoctestItem

    if not isinstance(request.node, DoctestItem):
        return
    ns = request.getfixturevalue("doctest_namespace")
    objects = request.getfixturevalue("_doctest_objects")
    ns.update(bvc=objects.bvc, np=np, pd=pd)
    text = request.node.dtest.docstring or ""
    for name in NAMES:
        if re.search(rf"\b{name}\b", text):
            ns[name] = objects.get(name)
