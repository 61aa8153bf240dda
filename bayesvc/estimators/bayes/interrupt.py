"""Ctrl-C during NUTS: never a result that looks finished.

nutpie's blocking ``sample`` answers a ``KeyboardInterrupt`` by returning the trace so far, every
chain padded with NaN to the requested length. bayesvc runs nutpie's background sampler instead
(``blocking=False``, then ``wait()``) and decides itself what an interrupt means:

* ``on_interrupt="raise"`` (default): sampling is cancelled and ``KeyboardInterrupt`` propagates
  (the CLI exits 130 with ``bayesvc: interrupted``);
* ``on_interrupt="keep"``: the trace so far is taken (``abort()``), and only the draws that every
  chain completed are kept (:func:`trim_complete`); ``draws`` of the result says how many, and a
  :class:`~bayesvc.SamplingWarning` says so. With no complete draw (an interrupt during tuning)
  the ``KeyboardInterrupt`` propagates.
"""

from __future__ import annotations

import numpy as np

#: the values ``on_interrupt`` takes
ON_INTERRUPT = ("raise", "keep")


class Interrupted:
    """The trace of an interrupted run: ``tree`` with NaN padding removed, ``kept`` draws per
    chain, ``requested`` draws asked for."""

    def __init__(self, tree, kept: int, requested: int):
        self.tree, self.kept, self.requested = tree, kept, requested


def sample_nutpie(compiled, on_interrupt: str, draws: int, **kw):
    """nutpie's background sampler, waited on: the DataTree of a finished run, or
    :class:`Interrupted` (``on_interrupt="keep"``) after a Ctrl-C."""
    import nutpie

    sampler = nutpie.sample(compiled, draws=draws, blocking=False, **kw)
    try:
        return sampler.wait()
    except KeyboardInterrupt:
        if on_interrupt != "keep":
            sampler.cancel()
            raise
        tree, kept = trim_complete(sampler.abort())
        if kept == 0:
            raise
        return Interrupted(tree, kept, draws)
    except BaseException:
        sampler.cancel()
        raise


def complete_draws(posterior) -> int:
    """Number of leading draws that every chain completed (finite in every variable)."""
    ok = None
    for v in posterior.data_vars.values():
        if v.dtype.kind != "f":
            continue
        arr = v.values.reshape(v.shape[0], v.shape[1], int(np.prod(v.shape[2:])))
        fin = np.isfinite(arr).all(axis=2)
        ok = fin if ok is None else ok & fin
    if ok is None or ok.shape[1] == 0:
        return 0
    # a chain's draws are complete up to its first padded (non-finite) draw
    first_bad = np.where(ok.all(axis=1), ok.shape[1], np.argmin(ok, axis=1))
    return int(first_bad.min())


def trim_complete(tree):
    """``tree`` restricted to the draws complete in every chain, and their number.

    >>> import xarray as xr
    >>> post = xr.Dataset({"s": (("chain", "draw"), [[1.0, 2, 3, np.nan], [1.0, 2, np.nan, np.nan]])})
    >>> tree, kept = trim_complete(xr.DataTree.from_dict({"posterior": xr.DataTree(post)}))
    >>> kept, tree["posterior"]["s"].shape
    (2, (2, 2))
    """
    import xarray as xr

    kept = complete_draws(tree["posterior"].to_dataset())
    groups = {}
    for name, node in tree.children.items():
        ds = node.to_dataset()
        groups[name] = xr.DataTree(ds.isel(draw=slice(0, kept)) if "draw" in ds.dims else ds)
    return xr.DataTree.from_dict(groups), kept


def interrupt_message(kept: int, requested: int, chains: int) -> str:
    """The warning of a kept interrupted run."""
    return (f"sampling was interrupted: kept the first {kept} of {requested} draws of each of "
            f"{chains} chains (the draws every chain completed); the result's draws is {kept}")
