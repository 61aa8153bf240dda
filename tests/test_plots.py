"""Every plot renders (Agg backend) and returns a figure or an ArviZ PlotCollection."""

import warnings
from pathlib import Path

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import pandas as pd  # noqa: E402
import pytest  # noqa: E402

import bayesvc as bvc  # noqa: E402
from bayesvc.views import plots  # noqa: E402
from bayesvc.views.decomposition import variance_shares  # noqa: E402

DATA = Path(__file__).parent / "data"


@pytest.fixture(scope="module")
def fits():
    df = pd.read_csv(DATA / "Penicillin.csv", dtype={"plate": str, "sample": str})
    m = bvc.VCModel.from_formula("diameter ~ 1 + (1|plate) + (1|sample)", data=df)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return m.fit_reml(), m.fit_map(), m.sample(draws=200, tune=200, chains=2, random_seed=31,
                                                   progressbar=False)


@pytest.fixture(autouse=True)
def _close():
    yield
    plt.close("all")


def _saved(obj, path: Path) -> int:
    obj.savefig(str(path))
    return path.stat().st_size


def test_plot_components(fits, tmp_path):
    r, mo, p = fits
    fig = plots.plot_components(p, reml=r, mode=mo)
    assert isinstance(fig, matplotlib.figure.Figure)
    ax = fig.axes[0]
    assert [t.get_text() for t in ax.get_yticklabels()] == ["plate Var", "sample Var", "Residual Var"]
    labels = ax.get_legend_handles_labels()[1]
    assert "REML" in labels and "posterior mode" in labels
    assert _saved(fig, tmp_path / "components.png") > 0
    fig2 = plots.plot_components(p, log=True, residual=False)
    assert len(fig2.axes[0].get_yticks()) == 2
    assert _saved(fig2, tmp_path / "components_log.png") > 0


def test_plot_posteriors(fits, tmp_path):
    r, mo, p = fits
    fig = plots.plot_posteriors(p, reml=r, mode=mo)
    visible = [ax for ax in fig.axes if ax.get_visible()]
    assert [ax.get_title() for ax in visible] == ["plate Var", "sample Var", "Residual Var"]
    # one REML line per panel, at the REML estimate
    xs = [line.get_xdata()[0] for line in visible[0].lines if line.get_linestyle() == "--"]
    assert xs == [pytest.approx(r.vcomp["plate"])]
    assert _saved(fig, tmp_path / "posteriors.png") > 0


@pytest.mark.parametrize("name", ["plot_trace", "plot_rank", "plot_energy"])
def test_arviz_diagnostics(fits, tmp_path, name):
    from arviz_plots import PlotCollection

    pc = getattr(plots, name)(fits[2])
    assert isinstance(pc, PlotCollection)
    assert _saved(pc, tmp_path / f"{name}.png") > 0


def test_plot_shares(fits, tmp_path):
    r, mo, p = fits
    fig = plots.plot_shares(r)
    assert isinstance(fig, matplotlib.figure.Figure)
    assert [t.get_text() for t in fig.axes[0].get_xticklabels()] == ["plate", "sample", "Residual"]
    assert _saved(fig, tmp_path / "shares.png") > 0
    fig = plots.plot_shares([r, mo, p, variance_shares(r, ci_prob=0.5)])
    assert len(fig.axes[0].patches) == 4 * 3
    assert fig.axes[0].get_legend_handles_labels()[1] == ["REML", "MAP", "NUTS", "REML"]
    assert _saved(fig, tmp_path / "shares_all.png") > 0
