"""Compiled-model cache for prior sweeps: one PyMC model + nutpie compilation per design content
and prior structure; a grid point changes only the prior-scale data (``with_data``)."""

from __future__ import annotations

import threading
import time
import uuid
import weakref
from collections import OrderedDict

import numpy as np

from . import sampling as _sampling
from .priors import PriorSet, resolve_priors


def _structure(ps):
    from .sweep import _structure as f

    return f(ps)


def _prior_data(ps, model=None):
    from .sweep import _prior_data as f

    return f(ps, model)

# ----------------------------------------------------------------------------- compiled-model cache

_CACHE: OrderedDict = OrderedDict()
_CACHE_MAX = 8
_CACHE_LOCK = threading.Lock()
_KEY_LOCKS: dict = {}
_TOKENS: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def _token(vcmodel) -> str:
    """Content hash of the model's design (models of the same data and formula share compiled
    models); memoised per VCModel instance."""
    tok = _TOKENS.get(vcmodel)
    if tok is None:
        import hashlib
        import pickle
        from dataclasses import fields, is_dataclass

        import scipy.sparse as sp

        def feed(h, obj):  # dataclass fields only: cached properties must not change the hash
            if is_dataclass(obj):
                h.update(type(obj).__qualname__.encode())
                for f in fields(obj):
                    h.update(f.name.encode())
                    feed(h, getattr(obj, f.name))
            elif isinstance(obj, np.ndarray) and obj.dtype != object:
                h.update(f"{obj.dtype}{obj.shape}".encode())
                h.update(np.ascontiguousarray(obj).tobytes())
            elif sp.issparse(obj):
                m = sp.csc_matrix(obj)
                m.sum_duplicates()
                m.sort_indices()
                feed(h, (m.shape, m.data, m.indices, m.indptr))
            elif isinstance(obj, (tuple, list)):
                h.update(f"{type(obj).__name__}{len(obj)}".encode())
                for x in obj:
                    feed(h, x)
            else:
                h.update(pickle.dumps(obj, protocol=5))

        try:
            h = hashlib.sha1()
            feed(h, vcmodel.design)
            tok = h.hexdigest() if is_dataclass(vcmodel.design) else uuid.uuid4().hex
        except Exception:  # noqa: BLE001 - an unpicklable design: this instance only
            tok = uuid.uuid4().hex
        _TOKENS[vcmodel] = tok
    return tok


def clear_cache() -> None:
    """Forget every compiled model of this process."""
    with _CACHE_LOCK:
        _CACHE.clear()
        _KEY_LOCKS.clear()


def _compiled(vcmodel, token: str, ps: PriorSet):
    """(pymc model, nutpie compiled model, compile seconds) from this process's cache."""
    key = (token, _structure(ps))
    with _CACHE_LOCK:
        lock = _KEY_LOCKS.setdefault(key, threading.Lock())
    with lock:
        with _CACHE_LOCK:
            hit = _CACHE.get(key)
            if hit is not None:
                _CACHE.move_to_end(key)
                return hit[0], hit[1], 0.0
        t0 = time.perf_counter()
        model = vcmodel.build_pymc(priors=ps)
        compiled = _sampling.compile_nutpie(model)
        seconds = time.perf_counter() - t0
        with _CACHE_LOCK:
            _CACHE[key] = (model, compiled)
            while len(_CACHE) > _CACHE_MAX:
                old, _ = _CACHE.popitem(last=False)
                _KEY_LOCKS.pop(old, None)
        return model, compiled, seconds


def compiled_model(vcmodel, priors=None):
    """The PyMC model and its nutpie compilation for ``priors``, from the sweep cache.

    The compiled object holds the scales of ``priors``; a model with the same families but other
    scales is the same compiled object (use ``compiled.with_data``).
    """
    ps = resolve_priors(vcmodel.design, priors)
    model, compiled, _ = _compiled(vcmodel, _token(vcmodel), ps)
    return model, compiled.with_data(**_prior_data(ps, model))


def _kernel_for(vcmodel, model):
    mode = getattr(model, "_bayesvc", {}).get("marginalize", True)
    return vcmodel.kernel if mode in (True, "full", "auto") else None


def sample_cached(vcmodel, priors=None, **kw):
    """``vcmodel.sample(priors=priors, **kw)`` through the compiled-model cache (no recompilation
    for priors that differ from an earlier fit only in their scales)."""
    from threadpoolctl import threadpool_limits

    ps = resolve_priors(vcmodel.design, priors)
    model, compiled = compiled_model(vcmodel, ps)
    kw.setdefault("progressbar", False)
    with threadpool_limits(1):
        return _sampling.sample(vcmodel.design, priors=ps, model=model, compiled=compiled,
                                kernel=_kernel_for(vcmodel, model), **kw)


