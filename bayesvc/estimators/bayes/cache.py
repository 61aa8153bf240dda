"""Compiled-model cache: one built PyMC model and nutpie compilation per model shape and prior
structure, per process.

Every SD prior's swept parameter is model data (``prior_<name>``), so two prior sets with the same
families (:meth:`bayesvc.PriorSet.structure`) share one compiled model; a fit with other scales
only swaps that data with ``compiled.with_data(...)``: it costs sampling, not compilation.

The partial collapse and the non-centered model read the response, the fixed-effect matrix, the
weights and the terms' codes as model data too (:func:`~.model.design_data`), so they are keyed by
the design's shape (:func:`~.model.shape_key`): a new response or a new data set with the same
terms, levels and columns reuses the compiled model (a simulation study compiles once). The data
of the fit at hand is always set (:func:`set_priors`), never left from the fit that built it. The
full collapse on the PyMC route holds its kernel in an Op and is keyed by the design's content;
the native full and partial collapses compile nothing (a cached entry only records the plan: the
header of the fit at hand is built from its own design and priors).

The design's content hash (:func:`design_token`) is memoised per :class:`~bayesvc.design.Design`
instance, so designs of the same data and formula share compiled models. Worker processes fill
their own cache on first use (the nutpie object does not pickle; designs and kernels do).
"""

from __future__ import annotations

import dataclasses
import hashlib
import pickle
import threading
import time
import uuid
import weakref
from collections import OrderedDict
from dataclasses import fields, is_dataclass

import numpy as np
import scipy.sparse as sp
from threadpoolctl import threadpool_limits

from ...errors import fail
from ...kernel import Kernel
from ...priors import PriorSet, resolve_priors
from ..plan import plan_marginalization
from .model import BuiltModel, build_pymc, design_data, shape_key
from .native import native_model, native_supported, with_priors
from .native_partial import native_partial_model, native_partial_supported
from .sample import compile_nutpie, sample

_CACHE: OrderedDict = OrderedDict()
_CACHE_MAX = 8
_CACHE_LOCK = threading.Lock()
_INIT_LOCK = threading.Lock()
_KEY_LOCKS: dict = {}
_TOKENS: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def _feed(h, obj) -> None:
    """Hash dataclass fields (cached properties must not change the hash), arrays, sparse matrices."""
    if is_dataclass(obj):
        h.update(type(obj).__qualname__.encode())
        for f in fields(obj):
            h.update(f.name.encode())
            _feed(h, getattr(obj, f.name))
    elif isinstance(obj, np.ndarray) and obj.dtype != object:
        h.update(f"{obj.dtype}{obj.shape}".encode())
        h.update(np.ascontiguousarray(obj).tobytes())
    elif sp.issparse(obj):
        m = sp.csc_matrix(obj)
        m.sum_duplicates()
        m.sort_indices()
        _feed(h, (m.shape, m.data, m.indices, m.indptr))
    elif isinstance(obj, (tuple, list)):
        h.update(f"{type(obj).__name__}{len(obj)}".encode())
        for x in obj:
            _feed(h, x)
    else:
        h.update(pickle.dumps(obj, protocol=5))


def design_token(design) -> str:
    """Content hash of ``design`` (memoised per instance)."""
    tok = _TOKENS.get(design)
    if tok is None:
        try:
            h = hashlib.sha1()
            _feed(h, design)
            tok = h.hexdigest()
        except Exception:  # noqa: BLE001 - an unpicklable design: this instance only
            tok = uuid.uuid4().hex
        _TOKENS[design] = tok
    return tok


def clear_cache() -> None:
    """Forget every compiled model of this process."""
    with _CACHE_LOCK:
        _CACHE.clear()
        _KEY_LOCKS.clear()


def cached_build(design, priors: PriorSet, kernel=None, token: str | None = None, marginalize=True):
    """``(BuiltModel, nutpie compiled model, compile seconds)`` for ``priors``' structure and the
    marginalization ``marginalize`` resolves to (:func:`~bayesvc.estimators.plan.plan_marginalization`),
    from this process's cache (0 seconds on a hit). The compiled object holds the scales it was
    built with."""
    plan = plan_marginalization(design, marginalize, kernel)
    shape = shape_key(design, plan)
    key = (shape or token or design_token(design), priors.structure(), plan.kind, plan.integrated_term,
           plan.centered, plan.joint)
    with _CACHE_LOCK:
        lock = _KEY_LOCKS.setdefault(key, threading.Lock())
    with lock:
        with _CACHE_LOCK:
            hit = _CACHE.get(key)
            if hit is not None:
                _CACHE.move_to_end(key)
                return hit[0], hit[1], 0.0
        t0 = time.perf_counter()
        built, compiled = _build(design, priors, plan, kernel)
        seconds = time.perf_counter() - t0
        with _CACHE_LOCK:
            _CACHE[key] = (built, compiled)
            while len(_CACHE) > _CACHE_MAX:
                old, _ = _CACHE.popitem(last=False)
                _KEY_LOCKS.pop(old, None)
        return built, compiled, seconds


def _build(design, priors: PriorSet, plan, kernel=None):
    """``(BuiltModel, nutpie model)``: the full or partial collapse through the native callbacks
    where it can (:mod:`.native`, :mod:`.native_partial`: no compilation), else a PyMC model
    compiled by nutpie."""
    if plan.kind == "full":
        kernel = kernel or Kernel(design)
        if native_supported(design, kernel, priors):
            return BuiltModel(None, priors, plan, kernel), native_model(design, kernel, priors)
    if native_partial_supported(design, plan, priors):
        return BuiltModel(None, priors, plan, None), native_partial_model(design, plan, priors)
    built = build_pymc(design, priors, marginalize=plan, kernel=kernel if plan.needs_kernel else None)
    return built, compile_nutpie(built.model)


def set_priors(built: BuiltModel, compiled, priors: PriorSet, design=None):
    """``compiled`` (from :func:`cached_build`) with ``priors``' scales and ``design``'s data: new
    model data for a PyMC model, a new header for a native one."""
    if built.model is None and built.plan.kind == "partial":
        if design is None:
            fail("set_priors: a natively sampled partial collapse is rebuilt from the design: pass design=")
        return native_partial_model(design, built.plan, priors)
    if built.model is None:
        return with_priors(compiled, built.kernel.design, built.kernel, priors)
    names = built.model.named_vars
    values = {**priors.data(names), **((design_data(design, built.plan) or {}) if design is not None else {})}
    return _initial_point_with(built.model, compiled.with_data(**values), values)


def _initial_point_with(model, compiled, values: dict):
    """``compiled`` whose initial-point function sees ``values`` as the model's data.

    nutpie's ``with_data`` swaps the data of the log density only; its initial points (PyMC's
    support points, jittered per chain) come from a PyTensor function that reads the model's own
    shared variables, which hold the data of the fit that built the cached model. Setting them,
    under a lock, just before each call makes a cached model start where a fresh one would. (The
    SDs' transform scale stays the one the model was built with: any scale gives the same
    posterior, but draws for one seed are identical to a fresh model's only for equal prior
    scales.)"""
    shared = {k: model.named_vars[k] for k in values}
    arrays = {k: np.asarray(v, dtype=shared[k].dtype) for k, v in values.items()}
    first = compiled.initial_point_func

    def initial_point(seed=None):
        with _INIT_LOCK:
            for k, v in arrays.items():
                shared[k].set_value(v)
            return first(seed)

    return dataclasses.replace(compiled, initial_point_func=initial_point)


def compiled_model(design, priors=None, kernel=None, token: str | None = None,
                   marginalize=True) -> tuple[BuiltModel, object]:
    """The built model and its nutpie compilation set to ``priors``' scales."""
    ps = resolve_priors(design, priors)
    built, compiled, _ = cached_build(design, ps, kernel, token, marginalize)
    return built, set_priors(built, compiled, ps, design)


def sample_cached(design, priors=None, kernel=None, marginalize=True, **kw):
    """:func:`~bayesvc.estimators.bayes.sample` through the cache (no recompilation for priors that
    differ from an earlier fit only in their scales); ``marginalize`` as there."""
    ps = resolve_priors(design, priors)
    built, compiled = compiled_model(design, ps, kernel, marginalize=marginalize)
    kw.setdefault("progressbar", False)
    with threadpool_limits(1):
        return sample(design, priors=ps, built=built, compiled=compiled, **kw)
