"""Write N-row Parquet data sets with known truth for the out-of-core benchmark (dask_scaling.py).

Two designs, each as files of ``--rows-per-file`` rows (one dask partition each), written chunk by
chunk so that memory stays bounded whatever N is:

* ``nested``:  ``y ~ x + f + (1|g1/g2)``, g1 with ``--g1`` levels, g2 with 100 levels inside each;
* ``crossed``: ``y ~ x + f + (1|a) + (1|b)``, a with ``--a`` levels crossed with b's ``--b``.

Truth: intercept 1, slope of x 0.5, f = p/q/r effects 0 / 0.3 / -0.2; SDs 1 (g1, a), 0.5 (g2, b);
residual SD 1. The level effects are drawn once from ``--seed`` and written to ``OUT/<design>.truth.json``.

    python benchmarks/dask_generate.py OUT --rows 10000000 [--design nested crossed]
"""

from __future__ import annotations

import argparse
import json
import os
import time

import numpy as np
import pandas as pd

TRUTH = {"beta": {"Intercept": 1.0, "x": 0.5, "f[q]": 0.3, "f[r]": -0.2}, "sigma": 1.0}
F_EFFECT = np.array([0.0, 0.3, -0.2])


def _chunk(design: str, n: int, rng, effects: dict, args) -> pd.DataFrame:
    x = rng.normal(size=n)
    f = rng.integers(0, 3, n)
    if design == "nested":
        g1 = rng.integers(0, args.g1, n).astype(np.int32)
        g2 = (g1 * 100 + rng.integers(0, 100, n)).astype(np.int32)
        re = effects["u1"][g1] + effects["u2"][g2]
        cols = {"g1": g1, "g2": g2}
    else:
        a = rng.integers(0, args.a, n).astype(np.int32)
        b = rng.integers(0, args.b, n).astype(np.int32)
        re = effects["u1"][a] + effects["u2"][b]
        cols = {"a": a, "b": b}
    y = 1.0 + 0.5 * x + F_EFFECT[f] + re + rng.normal(size=n)
    return pd.DataFrame({**cols, "x": x, "f": pd.Categorical.from_codes(f, ["p", "q", "r"]).astype(str), "y": y})


def write(design: str, out: str, rows: int, args) -> dict:
    """Write one design's files into ``out/design``; returns the truth and the time taken."""
    rng = np.random.default_rng(args.seed)
    sizes = (args.g1, args.g1 * 100) if design == "nested" else (args.a, args.b)
    effects = {"u1": rng.normal(scale=1.0, size=sizes[0]), "u2": rng.normal(scale=0.5, size=sizes[1])}
    folder = os.path.join(out, design)
    os.makedirs(folder, exist_ok=True)
    t0 = time.perf_counter()
    done, k = 0, 0
    while done < rows:
        n = min(args.rows_per_file, rows - done)
        _chunk(design, n, rng, effects, args).to_parquet(os.path.join(folder, f"part-{k:05d}.parquet"),
                                                         index=False)
        done, k = done + n, k + 1
    truth = {**TRUTH, "sd": dict(zip(("g1", "g1:g2") if design == "nested" else ("a", "b"), (1.0, 0.5))),
             "rows": rows, "files": k, "levels": sizes, "seconds": time.perf_counter() - t0}
    with open(folder + ".truth.json", "w") as fh:
        json.dump(truth, fh, indent=1)
    return truth


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("out")
    p.add_argument("--rows", type=int, default=1_000_000)
    p.add_argument("--rows-per-file", type=int, default=1_000_000, dest="rows_per_file")
    p.add_argument("--design", nargs="+", default=["nested", "crossed"], choices=("nested", "crossed"))
    p.add_argument("--g1", type=int, default=1000, help="nested: top-level groups (x 100 inner)")
    p.add_argument("--a", type=int, default=10000, help="crossed: levels of a")
    p.add_argument("--b", type=int, default=200, help="crossed: levels of b")
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args(argv)
    for d in args.design:
        t = write(d, args.out, args.rows, args)
        print(f"{d}: {t['rows']} rows in {t['files']} files, {t['seconds']:.1f} s")


if __name__ == "__main__":
    main()
