import matplotlib
import numpy as np
import pytest
from conftest import legends_on_data

import resflow as rf
from resflow.plots import perturbation as pp

# The figures only read the result NamedTuples: build them from random numbers (no jit compiles).
RNG = np.random.default_rng(0)


def growth(T=5, draws=3, batch=4):
    return rf.analysis.PerturbationGrowth(
        np.exp(RNG.normal(size=(T + 1, draws, batch))), RNG.uniform(0.5, 2, (T + 1, draws, batch))
    )


def test_growth_figure(tmp_path):
    g = {"ResNet": growth(), "MLP": growth()}
    fig = pp.plot_perturbation_growth(g, save=tmp_path / "g.png")
    ax = fig.axes[0]
    assert ax.get_yscale() == "log"
    # Two models x (linear + nonlinear) medians + the reference line at 1; one band per model.
    assert len(ax.lines) == 5 and len(ax.collections) == 2
    np.testing.assert_allclose(ax.lines[0].get_ydata(), np.median(g["ResNet"].linear.reshape(6, -1), 1))
    assert (tmp_path / "g.png").stat().st_size > 0
    assert not legends_on_data(fig)
    fig = pp.plot_perturbation_growth({"raw": np.ones((6, 3))})
    assert len(fig.axes[0].lines) == 2
    matplotlib.pyplot.close("all")


def test_injection_figure(tmp_path):
    lin = RNG.uniform(1, 3, (6, 2, 4))
    r = rf.analysis.InjectionResponse(np.arange(6), lin, 1.1 * lin, 0.01 * lin)
    fig = pp.plot_injection_response({"ResNet": r}, save=tmp_path / "i.png")
    ax = fig.axes[0]
    assert len(ax.lines) == 3
    np.testing.assert_array_equal(ax.lines[0].get_xdata(), np.arange(6))
    np.testing.assert_allclose(ax.lines[1].get_ydata(), np.median(lin.reshape(6, -1), 1))
    assert (tmp_path / "i.png").exists()
    assert not legends_on_data(fig)
    matplotlib.pyplot.close("all")


def test_separability_and_noise_figures(tmp_path):
    sep = rf.analysis.Separability(
        RNG.uniform(size=5), RNG.uniform(size=6), RNG.uniform(size=5), np.r_[0.0, RNG.uniform(size=5)]
    )
    fig = pp.plot_separability({"a": sep, "b": sep}, save=tmp_path / "s.png")
    assert len(fig.axes) == 2 and len(fig.axes[0].lines) == 4 and len(fig.axes[1].lines) == 4
    np.testing.assert_allclose(fig.axes[0].lines[1].get_ydata(), sep.integral_accuracy)
    # A zero Fisher ratio is not drawn on the log axis.
    assert np.isnan(fig.axes[1].lines[1].get_ydata()[0])
    assert len(fig.legends) == 1 and not legends_on_data(fig)
    acc = RNG.uniform(size=(3, 2))
    nr = rf.analysis.NoiseRobustness(np.array([0.0, 0.5, 1.0]), acc, acc.mean(1), acc.std(1))
    fig = pp.plot_noise_robustness({"x": nr}, chance=0.5, save=tmp_path / "n.png")
    ax = fig.axes[0]
    assert len(ax.lines) == 2
    np.testing.assert_allclose(ax.lines[0].get_ydata(), acc.mean(1))
    # sigma = 0 is in the grid: a second panel with accuracy relative to the clean one.
    assert len(fig.axes) == 2
    np.testing.assert_allclose(fig.axes[1].lines[0].get_ydata(), acc.mean(1) / acc.mean(1)[0])
    assert len(fig.legends) == 1 and not legends_on_data(fig)
    assert len(pp.plot_noise_robustness(nr._replace(sigmas=np.array([0.1, 0.5, 1.0]))).axes) == 1
    assert (tmp_path / "s.png").exists() and (tmp_path / "n.png").exists()
    with pytest.raises(TypeError, match="mapping"):
        pp.plot_noise_robustness({})
    matplotlib.pyplot.close("all")
