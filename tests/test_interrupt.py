"""Ctrl-C during nutpie's sampling (issue 11): the CLI exits 130 with one line, the API raises
``KeyboardInterrupt`` or, with ``on_interrupt="keep"``, returns only complete draws.

Each test runs a real long sampling run in a subprocess and sends it SIGINT once sampling has
started (a wrapper around ``nutpie.sample`` prints a marker when the background sampler runs)."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

import bayesvc as bvc
from bayesvc.estimators.bayes.interrupt import complete_draws

ROOT = Path(__file__).resolve().parents[1]
DYESTUFF = ROOT / "tests" / "data" / "Dyestuff.csv"
MARKER = "SAMPLING-STARTED"

PRELUDE = f"""
import sys, time, nutpie
_orig = nutpie.sample
def _sample(*a, **k):
    out = _orig(*a, **k)
    print({MARKER!r}, file=sys.stderr, flush=True)
    return out
nutpie.sample = _sample
"""

CLI = PRELUDE + f"""
from bayesvc.cli import main
sys.exit(main(["fit", {str(DYESTUFF)!r}, "Yield ~ 1 + (1|Batch)", "--method", "nuts",
               "--draws", "1000000", "--chains", "2", "--seed", "1", "--quiet"]))
"""

KEEP = PRELUDE + f"""
import json, warnings
import numpy as np, pandas as pd, bayesvc as bvc
m = bvc.VCModel.from_formula("Yield ~ 1 + (1|Batch)", data=pd.read_csv({str(DYESTUFF)!r}))
with warnings.catch_warnings(record=True) as caught:
    warnings.simplefilter("always")
    p = m.sample(draws=1000000, tune=200, chains=2, random_seed=1, progressbar=False,
                 on_interrupt="keep", log_likelihood=False)
post = p.idata["posterior"]
print(json.dumps({{"draws": p.draws, "sizes": [post.sizes["chain"], post.sizes["draw"]],
                  "nan": int(sum(int(np.isnan(post[v].values).sum()) for v in post.data_vars
                                 if post[v].dtype.kind == "f")),
                  "warnings": [str(w.message) for w in caught if "interrupted" in str(w.message)],
                  "rhat": float(p.param_summary()["r_hat"].max())}}))
"""


def _interrupt(script: str, after: float = 2.0, timeout: float = 240):
    env = dict(os.environ, PYTHONPATH=str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    proc = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, env=env, cwd=str(ROOT))
    t0 = time.monotonic()
    lines = []
    for line in proc.stderr:  # wait for the marker: sampling has begun
        lines.append(line)
        if MARKER in line or time.monotonic() - t0 > timeout:
            break
    assert any(MARKER in x for x in lines), "".join(lines)
    time.sleep(after)
    assert proc.poll() is None, "sampling ended before the interrupt: use more draws"
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=timeout)
    return proc.returncode, out, "".join(lines[lines.index(next(x for x in lines if MARKER in x)) + 1:]) + err


def test_cli_ctrl_c_during_sampling_exits_130():
    rc, out, err = _interrupt(CLI)
    assert rc == 130, (rc, out, err)
    assert err.strip().splitlines() == ["bayesvc: interrupted"], err
    assert "Traceback" not in err and "1000000" not in out


def test_api_keep_returns_complete_draws_only():
    rc, out, err = _interrupt(KEEP, after=3.0)
    assert rc == 0, err
    res = json.loads(out.strip().splitlines()[-1])
    assert 0 < res["draws"] < 1000000
    assert res["sizes"] == [2, res["draws"]]          # trimmed to equal length, draws truthful
    assert res["nan"] == 0                              # never NaN padding
    assert len(res["warnings"]) == 1 and f"kept the first {res['draws']} of 1000000" in res["warnings"][0]
    assert np.isfinite(res["rhat"])


def test_complete_draws_counts_leading_finite_draws():
    import xarray as xr

    a = np.arange(10.0).reshape(2, 5)
    a[0, 3:] = np.nan
    a[1, 4] = np.nan
    ds = xr.Dataset({"s": (("chain", "draw"), a), "v": (("chain", "draw", "k"), np.ones((2, 5, 2)))})
    assert complete_draws(ds) == 3
    assert complete_draws(ds.isel(draw=slice(0, 0))) == 0


def test_on_interrupt_validated():
    import pandas as pd

    m = bvc.VCModel.from_formula("Yield ~ 1 + (1|Batch)", data=pd.read_csv(DYESTUFF))
    with pytest.raises(bvc.SpecificationError, match="on_interrupt must be one of 'raise', 'keep'"):
        m.sample(draws=10, tune=10, chains=1, on_interrupt="ignore")
