"""Per-draw quantities after NUTS: exact conditional draws of the random effects, pointwise and
collapsed log-likelihoods, prior log-densities.

After NUTS on the collapsed model, each posterior draw of (beta, sigma, sd) is completed with an
exact draw of the random effects from their Gaussian conditional
``b | y, beta, sigma, sd ~ N(Lambda u_hat, sigma^2 Lambda A^{-1} Lambda')`` using the kernel's
blocked factor (compiled; one factorization per draw).
"""

from __future__ import annotations

import numpy as np
import xarray as xr

from ...kernel import Kernel, NotPositiveDefinite
from ...kernel.compiled import draw_effects as compiled_draw_effects
from ...kernel.compiled import kernel_arrays
from ...kernel.conditional import draw_effects


def _stack(post: xr.Dataset, name: str) -> np.ndarray:
    v = post[name]
    return v.values.reshape((-1,) + v.shape[2:])


def draw_random_effects(kernel: Kernel, post: xr.Dataset, rng: np.random.Generator, thin: int = 1):
    """Exact conditional draws of every term's random effects, per posterior draw (every
    ``thin``-th). Returns a list (design term order) of arrays (chain, draw, levels, p) and the
    kept draw indices."""
    beta, sigma, sd = _stack(post, "beta"), _stack(post, "sigma"), _stack(post, "sd")
    nchain, ndraw = post.sizes["chain"], post.sizes["draw"]
    keep = np.arange(0, ndraw, thin)
    terms = kernel.terms
    out = [np.empty((nchain, len(keep), t.n_levels, t.p)) for t in terms]
    q1 = terms[kernel.first].q if kernel.first is not None else 0
    arrays = kernel_arrays(kernel)
    for c in range(nchain):
        for j, d in enumerate(keep):
            i = c * ndraw + d
            z1 = rng.standard_normal((q1, 1)) if q1 else None
            zr = rng.standard_normal((kernel.rz, 1))
            if arrays is not None:
                # compiled path: one blocked factorization and two solves per draw
                b1, br = compiled_draw_effects(beta[i], float(sigma[i]), sd[i], z1[:, 0], zr[:, 0], arrays)
                out[kernel.first][c, j] = b1.reshape(-1, 1)
                for k in kernel.rest:
                    a, b = kernel.rest_offsets[k]
                    out[k][c, j] = br[a:b].reshape(-1, 1)
                continue
            f = kernel.factorize(sd[i] / sigma[i])
            for k, b in enumerate(draw_effects(kernel, f, beta[i], float(sigma[i]), z1, zr)):
                out[k][c, j] = b
    return out, keep


def pointwise_loglik(design, post: xr.Dataset, re_draws: dict[str, np.ndarray]) -> np.ndarray:
    """log N(y_i | x_i beta + z_i b, sigma^2 / w_i) for every draw and observation."""
    beta, sigma = post["beta"].values, post["sigma"].values
    mu = np.einsum("cdp,np->cdn", beta, design.X)
    for t in design.terms:
        b = re_draws[t.name]
        if b.ndim == 3:
            b = b[..., None]
        if t.codes is not None:
            mu += np.einsum("cdnp,np->cdn", b[:, :, t.codes, :], t.zvals)
        else:
            flat = b.reshape(b.shape[0], b.shape[1], -1)
            mu += np.asarray((t.Z @ flat.reshape(-1, flat.shape[-1]).T).T).reshape(flat.shape[:2] + (-1,))
    s = sigma[..., None] if design.weights is None else sigma[..., None] / np.sqrt(design.weights)
    return -0.5 * (np.log(2 * np.pi) + 2 * np.log(s) + ((design.y - mu) / s) ** 2)


def conditional_loglik_sum(design, post: xr.Dataset, max_cells: float = 2e6) -> np.ndarray:
    """Summed conditional log-likelihood per draw, recomputed from the ``re_*`` draws in chunks
    of at most ``max_cells`` (draws x observations)."""
    re = {t.name: post[f"re_{t.name}"].values for t in design.terms}
    step = max(1, int(max_cells // max(design.nobs, 1)))
    parts = []
    for lo in range(0, post.sizes["draw"], step):
        sub = post.isel(draw=slice(lo, lo + step))
        parts.append(pointwise_loglik(design, sub, {k: v[:, lo:lo + step] for k, v in re.items()}).sum(-1))
    return np.concatenate(parts, axis=1)


def marginal_loglik(kernel: Kernel, post: xr.Dataset) -> np.ndarray:
    """Collapsed log-likelihood ``log p(y | beta, sigma, SD)`` of every draw, shape (chain, draw)."""
    beta, sigma, sd = post["beta"].values, post["sigma"].values, post["sd"].values
    out = np.empty(sigma.shape)
    for c in range(sigma.shape[0]):
        for d in range(sigma.shape[1]):
            try:
                out[c, d] = kernel.loglik(beta[c, d], float(sigma[c, d]), sd[c, d])
            except NotPositiveDefinite:
                out[c, d] = -np.inf
    return out


def log_prior_dataset(ps, post: xr.Dataset, design) -> xr.Dataset:
    """Prior log-densities of every free parameter (the ``log_prior`` group), for power-scaling."""
    sd = post["sd"]
    lp_sd = np.stack([ps.sd[c].logpdf(sd.sel(component=c).values) for c in design.component_names], axis=-1)
    beta = post["beta"]
    lp_beta = np.stack([ps.fixed[n].logpdf(beta.sel(fixed=n).values) for n in design.fe_names], axis=-1)
    return xr.Dataset({
        "sd": (("chain", "draw", "component"), lp_sd),
        "sigma": (("chain", "draw"), ps.residual.logpdf(post["sigma"].values)),
        "beta": (("chain", "draw", "fixed"), lp_beta),
    }, coords={"chain": post.chain, "draw": post.draw, "component": design.component_names,
               "fixed": list(design.fe_names)})
