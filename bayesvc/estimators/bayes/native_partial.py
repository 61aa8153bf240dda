"""The partial collapse sampled by nutpie through bayesvc's own compiled callbacks (no PyTensor graph).

:func:`native_partial_model` hands nutpie the :mod:`bayesvc.kernel.native_partial` callbacks
(compiled once, or loaded from Numba's disk cache) with a header pointing at this design's arrays
(:func:`partial_header`) and this prior set's parameters: a new response, new prior scales or a
new data set only builds a new header. The draws are named as the PyMC partial model's (``beta``
when sampled, ``sigma``, ``sd``, ``var``, ``scale``, ``re_<term>`` for the sampled terms), so the
exact draws of the integrated terms (:func:`~.partial.draw_integrated`) follow unchanged.

Supported: the plan's sampled terms are scalar and every prior has a native form
(:func:`~.native._prior_tables`); otherwise the PyMC route is used.

Chains start from a cheap moment guess (least squares for the fixed effects, half the residual SD
for every SD), dispersed by ``Uniform(-1, 1)`` on the unconstrained SDs and ``log sigma``, so R-hat
still compares dispersed starts.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import scipy.sparse as sp

from ...kernel import native_partial as kn
from ...kernel.native_partial_draws import draw_effects
from ...priors import PriorSet
from .native import _prior_tables, nutpie_model, softplus_coordinate
from .partial import _block, _z, partial_arrays

__all__ = ["native_partial_supported", "native_partial_model", "partial_header", "draw_integrated_native"]


def native_partial_supported(design, plan, ps: PriorSet) -> bool:
    """Whether the partial collapse ``plan`` of ``design`` with priors ``ps`` can run natively."""
    if plan.kind != "partial" or design.weights is not None or _prior_tables(design, ps) is None:
        return False
    return all(t.scalar and t.codes is not None for t in design.terms)


def _fixed_integrated(plan, tables) -> bool:
    return bool(plan.fixed) and tables[2] == 1


def _layout(design, plan, tables):
    """``(offset of the first effect, [(term index, x offset)] of the sampled terms)``."""
    p, nk = design.k_fe, len(design.component_names)
    o = (0 if _fixed_integrated(plan, tables) else p) + 1 + nk
    out = []
    for i, t in enumerate(design.terms):
        if i not in plan.integrated:
            out.append((i, o))
            o += t.n_levels
    return o, out


def partial_header(design, plan, ps: PriorSet):
    """``(header, keep_alive, sampled-term layout, x size)`` for the callbacks."""
    tables = _prior_tables(design, ps)
    codes, params, fcode, fpar = tables
    fint = _fixed_integrated(plan, tables)
    comp = {c: j for j, c in enumerate(design.component_names)}
    n, p = design.nobs, design.k_fe
    k = design.terms[plan.integrated_term]
    small = [design.terms[j] for j in plan.joint]
    mS = sum(t.n_levels for t in small)
    m = mS + (p if fint else 0)
    arr = partial_arrays(design, plan)
    n_x, layout = _layout(design, plan, tables)
    e0 = layout[0][1] if layout else n_x
    data = {
        "fixed_params": fpar, "sd_codes": codes, "sd_params": params, "a_k": arr[f"data_zz_{k.name}"],
        "N": arr["data_joint_N"][:, :m] if m else np.zeros((0, 0)),
        "G0": arr["data_joint_G0"][:m, :m] if m else np.zeros((0, 0)),
        "group_a": arr.get("data_joint_a", np.zeros(0)) if m else np.zeros(0),
        "group_P": (arr["data_joint_P"][:, :m, :m].reshape(-1, m * m) if m and "data_joint_P" in arr
                    else np.zeros((0, 0))),
        "T_info": np.array([(comp[design.terms[i].component_names[0]], design.terms[i].n_levels,
                             int(i in plan.centered), o, p + o - e0) for i, o in layout]).reshape(len(layout), 5),
        "col_comp": np.array([comp[t.component_names[0]] for t in small for _ in range(t.n_levels)]
                             + [-1] * (p if fint else 0)),
    }
    data.update(_cross_products(design, plan, [i for i, _ in layout], m, fpar[:, 0] if fint else None))
    ng = data["group_a"].size if m and "data_joint_P" in arr else 0
    data["dims"] = np.array([n, p, len(comp), int(fint), fcode, len(layout), m, mS, k.n_levels, ng, len(small),
                             comp[k.component_names[0]], n_x, data["gamma0"].size])
    header, keep = kn.pack(data)
    return header, keep, layout, n_x


def _csr(name, M) -> dict:
    M = sp.csr_matrix(M)
    M.sum_duplicates()
    return {f"{name}_data": M.data, f"{name}_ind": M.indices, f"{name}_ptr": M.indptr}


def _cross_products(design, plan, sampled, m, mu0) -> dict:
    """What the callbacks read of the data: the cross-products of the mean's columns ``C = [X,
    Z_t ...]`` with themselves, ``Z_k`` and ``W``, and of the residual ``r0 = y - X gamma0`` at the
    reference point ``gamma0`` (least squares, or the prior means ``mu0`` when the fixed effects are
    integrated out) with each (:func:`bayesvc.kernel.native_partial._sufficient`)."""
    n = design.nobs
    X = np.asarray(design.X, dtype=float).reshape(n, -1)
    C = sp.hstack([sp.csc_matrix(X)] + ([_z(design, sampled)] if sampled else []), format="csc")
    beta0 = np.asarray(mu0, dtype=float) if mu0 is not None else (
        np.linalg.lstsq(X, design.y, rcond=None)[0] if X.shape[1] else np.zeros(0))
    r0 = design.y - X @ beta0
    Zk = _z(design, [plan.integrated_term])
    W = _block(design, plan)[:, :m] if m else sp.csc_matrix((n, 0))
    return {"gamma0": np.concatenate((beta0, np.zeros(C.shape[1] - beta0.size))), "Cr0": C.T @ r0,
            "Kr0": Zk.T @ r0, "Wr0": W.T @ r0, "r0r0": np.array([r0 @ r0]),
            **_csr("CC", C.T @ C), **_csr("KC", Zk.T @ C), **_csr("CK", C.T @ Zk),
            "WC": np.asarray((W.T @ C).todense()).reshape(m, C.shape[1])}


def _start(design, plan, tables, layout, n_x):
    """``(centre, jitter half-widths)`` of the unconstrained coordinates (module docstring)."""
    p, nk = design.k_fe, len(design.component_names)
    X = np.asarray(design.X, dtype=float).reshape(design.nobs, p)
    beta = np.linalg.lstsq(X, design.y, rcond=None)[0] if p else np.zeros(0)
    s0 = float(np.std(design.y - X @ beta)) or 1.0
    codes, params = tables[0], tables[1]
    u = [softplus_coordinate(0.5 * s0, codes[i], *params[i]) for i in range(1, nk + 1)]
    head = ([] if _fixed_integrated(plan, tables) else list(beta)) + [np.log(s0)] + u
    centre = np.concatenate((head, np.zeros(n_x - len(head))))
    width = np.concatenate(([0.1 * s0] * (len(head) - 1 - nk), np.ones(1 + nk), np.zeros(n_x - len(head))))
    for i, o in layout:
        q = design.terms[i].n_levels
        width[o:o + q] = 0.1 * s0 if i in plan.centered else 0.5
    return centre, width


def native_partial_model(design, plan, ps: PriorSet):
    """A nutpie compiled model of the partial collapse ``plan`` for ``design`` and the priors ``ps``
    (:func:`native_partial_supported` must hold)."""
    tables = _prior_tables(design, ps)
    header, keep, layout, n_x = partial_header(design, plan, ps)
    centre, width = _start(design, plan, tables, layout, n_x)

    def initial_point(seed=None):
        rng = np.random.default_rng(seed)
        return np.ascontiguousarray(centre + rng.uniform(-1.0, 1.0, centre.size) * width)

    p, nk = design.k_fe, len(design.component_names)
    fint = _fixed_integrated(plan, tables)
    names, shapes, dims = [] if fint else ["beta"], [] if fint else [(p,)], {"sd": ("component",),
                                                                              "var": ("component",)}
    if not fint:
        dims["beta"] = ("fixed",)
    names += ["sigma", "sd", "var", "scale"]
    shapes += [(), (nk,), (nk,), ()]
    coords = {"fixed": pd.Index(list(design.fe_names)), "component": pd.Index(design.component_names)}
    unconstrained = ([] if fint else [f"beta_{j}" for j in range(p)]) + ["sigma_log__"] + [
        f"sd_{c}_scaled_softplus__" for c in design.component_names]
    for i, _ in layout:
        t = design.terms[i]
        names.append(f"re_{t.name}")
        shapes.append((t.n_levels,))
        dims[f"re_{t.name}"] = (f"{t.name}_level",)
        coords[f"{t.name}_level"] = pd.Index([str(x) for x in t.levels])
        unconstrained += [f"{'re' if i in plan.centered else 'z'}_{t.name}[{j}]" for j in range(t.n_levels)]
    coords["unconstrained_parameter"] = pd.Index(unconstrained)
    return nutpie_model(names, shapes, dims, coords, kn.callbacks(), header, keep, initial_point)


def draw_integrated_native(design, plan, ps: PriorSet, post, re_draws: dict, rng: np.random.Generator,
                           fixed_prior=None) -> dict:
    """:func:`~.partial.draw_integrated` compiled (:mod:`bayesvc.kernel.native_partial_draws`):
    the same law and outputs, the same draws for the same ``rng``."""
    header, keep, layout, _ = partial_header(design, plan, ps)
    k = design.terms[plan.integrated_term]
    small = [design.terms[j] for j in plan.joint]
    sizes = [t.n_levels for t in small] + ([design.k_fe] if fixed_prior is not None else [])
    m = sum(sizes)
    sigma = post["sigma"].values
    shape, nd = sigma.shape, sigma.size
    beta = (np.broadcast_to(np.asarray(fixed_prior[0], dtype=float), shape + (design.k_fe,))
            if fixed_prior is not None else post["beta"].values)
    sds = post["sd"].transpose(*post["sigma"].dims, "component").values.reshape(nd, -1)
    bT = np.concatenate([np.asarray(re_draws[design.terms[i].name]).reshape(nd, -1) for i, _ in layout]
                        + [np.zeros((nd, 0))], axis=1)
    Z = np.stack([rng.standard_normal(m + k.n_levels) for _ in range(nd)]) if nd else np.zeros((0, m + k.n_levels))
    bk, x = draw_effects(header, np.ascontiguousarray(beta.reshape(nd, -1), dtype=float),
                         np.ascontiguousarray(sigma.reshape(nd), dtype=float), np.ascontiguousarray(sds),
                         np.ascontiguousarray(bT), Z)
    names = [t.name for t in small] + (["beta"] if fixed_prior is not None else [])
    out = {k.name: bk.reshape(shape + (k.n_levels,))}
    for name, piece, q in zip(names, np.split(x, np.cumsum(sizes)[:-1], axis=1), sizes):
        out[name] = piece.reshape(shape + (q,))
    if fixed_prior is not None:
        out["beta"] = out["beta"] + np.asarray(fixed_prior[0], dtype=float)
    return out
