"""Leave-one-out cross-validation of a NUTS fit with Pareto-smoothed importance sampling
(arviz-stats' ``loo``): by observation, on the pointwise log-likelihood stored with the draws, or by
group, on the *marginal* likelihood of each group's data with the random effects integrated out.

For leave-one-group-out the groups are the levels of the outermost grouping factor: the term whose
levels every other term's levels nest in, so that the groups' data are independent given
``(beta, sigma, Sigma)`` and ``log p(y | theta) = sum_g log p(y_g | theta)``. Each group's term
``log N(y_g | X_g beta, sigma^2 I + Z_g G Z_g')`` is computed per draw with a dense Cholesky of the
group's covariance (groups are small). The conditional form (random effects held at their draws)
is unstable for whole groups, because one group's effect is informed by that group alone.
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp
import xarray as xr

from ..errors import fail
from ..results.posterior_predict import term_covariances
from ..validate import validate_choice

BY = ("obs", "group")


def outer_term(design, group: str | None = None) -> int:
    """Index of the outermost grouping term (or of the term named ``group``): one level per row,
    and every other term's levels within one of its levels."""
    names = [t.name for t in design.terms]
    if group is not None and group not in names:
        fail(f"group must name a random-effect term, one of {names}; got {group!r}")
    cands = [i for i, t in enumerate(design.terms) if t.codes is not None and (group is None or t.name == group)]
    for i in sorted(cands, key=lambda i: design.terms[i].n_levels):
        t = design.terms[i]
        onehot = sp.csr_matrix((np.ones(design.nobs), (np.arange(design.nobs), t.codes)),
                               shape=(design.nobs, t.n_levels))
        nested = all(np.all(np.diff((abs(u.Z).T @ onehot).tocsr().indptr) <= 1)
                     for j, u in enumerate(design.terms) if j != i)
        if nested:
            return i
    fail("leave-one-group-out needs an outermost grouping factor within whose levels every other "
         f"term is nested (terms {names} are crossed): use by='obs'")


def group_loglik(result, group: str | None = None, max_cells: float = 2e7) -> xr.DataArray:
    """``log p(y_g | beta, sigma, Sigma)`` per draw and group of the outermost factor, with the
    random effects integrated out: a DataArray (chain, draw, group)."""
    design = result.design
    k = outer_term(design, group)
    outer = design.terms[k]
    post = result.posterior
    nc, nd = post.sizes["chain"], post.sizes["draw"]
    beta = post["beta"].values.reshape(nc * nd, -1)
    s2 = post["scale"].values.reshape(-1)
    covs = [term_covariances(result, t).reshape((nc * nd, t.p, t.p)) for t in design.terms]
    out = np.empty((nc * nd, outer.n_levels))
    for g in range(outer.n_levels):
        rows = np.flatnonzero(outer.codes == g)
        n = len(rows)
        r = design.y[rows][None, :] - beta @ design.X[rows].T  # (S, n)
        blocks = []
        for t, S in zip(design.terms, covs):
            Zg = t.Z[rows].tocsc()
            used = np.flatnonzero(np.diff(Zg.indptr) > 0)
            levels = np.unique(used // t.p)
            cols = (levels[:, None] * t.p + np.arange(t.p)[None, :]).ravel()
            blocks.append((Zg[:, cols].toarray().reshape(n, len(levels), t.p), S))
        step = max(1, int(max_cells // max(n * n, 1)))
        for lo in range(0, nc * nd, step):
            sl = slice(lo, lo + step)
            V = s2[sl, None, None] * np.eye(n)[None]
            for Zr, S in blocks:
                V = V + np.einsum("nlp,dpq,mlq->dnm", Zr, S[sl], Zr, optimize=True)
            L = np.linalg.cholesky(V)
            w = np.linalg.solve(L, r[sl][..., None])[..., 0]
            logdet = 2 * np.log(np.diagonal(L, axis1=1, axis2=2)).sum(-1)
            out[sl, g] = -0.5 * (n * np.log(2 * np.pi) + logdet + (w * w).sum(-1))
    return xr.DataArray(out.reshape(nc, nd, -1), dims=("chain", "draw", "group"),
                        coords={"chain": post.chain, "draw": post.draw,
                                "group": [str(v) for v in outer.levels]}, name="y")


def loo(result, by: str = "obs", group: str | None = None):
    """PSIS-LOO of a :class:`~bayesvc.PosteriorResult`: arviz-stats' ``ELPDData`` (``elpd``,
    ``se``, ``p``, ``pareto_k`` per observation or group, ``elpd_i``).

    ``by="obs"`` leaves out one observation (the pointwise log-likelihood stored with the draws,
    conditional on the random effects); ``by="group"`` leaves out each level of the outermost
    grouping factor (or of the term ``group``), on the marginal likelihood of its data.

    Examples
    --------
    >>> r = bvc.loo(post, by="group")
    >>> r.pareto_k.dims, r.pareto_k.sizes["group"], bool(np.isfinite(r.elpd))
    (('group',), 8, True)
    """
    from arviz_stats import loo as az_loo

    validate_choice(by, "by", BY)
    if not hasattr(result, "posterior") or not hasattr(result, "idata"):
        fail(f"loo needs a NUTS fit (PosteriorResult), got {type(result).__name__}")
    if by == "obs":
        if "log_likelihood" not in result.idata.children:
            fail("the fit holds no pointwise log-likelihood: sample with log_likelihood=True")
        return az_loo(result.idata, pointwise=True)
    ll = group_loglik(result, group)
    tree = xr.DataTree.from_dict({"posterior": xr.DataTree(result.posterior[["beta", "sigma"]]),
                                  "log_likelihood": xr.DataTree(xr.Dataset({"y": ll}))})
    return az_loo(tree, pointwise=True)


def compare_loo(fits: dict, by: str = "obs"):
    """arviz-stats' ``compare`` of several fits (``{name: PosteriorResult}``) on :func:`loo`
    ``by`` observation or group: a DataFrame ranked by ELPD, with differences, their SEs and
    stacking weights."""
    from arviz_stats import compare

    if not isinstance(fits, dict) or len(fits) < 2:
        fail("fits must be a dict of at least two named PosteriorResults")
    return compare({name: loo(r, by=by) for name, r in fits.items()})
