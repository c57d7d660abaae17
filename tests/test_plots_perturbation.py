import jax
import jax.numpy as jnp
import matplotlib
import numpy as np
import pytest

import resflow as rf
from resflow.plots import perturbation as pp


@pytest.fixture(scope="module")
def setup():
    p = rf.init_trunk(jax.random.key(0), 4, w_std=2.0, b_std=0.3)
    x0 = jax.random.normal(jax.random.key(1), (6, 4))
    return p, x0


def test_growth_figure(setup, tmp_path):
    p, x0 = setup
    g = {
        m: rf.perturbation_growth(p, x0, key=jax.random.key(2), num_draws=3, depth=5, model=m)
        for m in ("resnet", "mlp")
    }
    fig = pp.plot_perturbation_growth(g, save=tmp_path / "g.png")
    ax = fig.axes[0]
    assert ax.get_yscale() == "log"
    # Two models x (linear + nonlinear) medians + the reference line at 1; one band per model.
    assert len(ax.lines) == 5 and len(ax.collections) == 2
    np.testing.assert_allclose(ax.lines[0].get_ydata(), np.median(np.asarray(g["resnet"].linear).reshape(6, -1), 1))
    assert (tmp_path / "g.png").stat().st_size > 0
    fig = pp.plot_perturbation_growth({"raw": np.ones((6, 3))})
    assert len(fig.axes[0].lines) == 2
    matplotlib.pyplot.close("all")


def test_injection_figure(setup, tmp_path):
    p, x0 = setup
    r = rf.injection_response(p, x0, key=jax.random.key(2), num_draws=2, depth=5)
    fig = pp.plot_injection_response({"ResNet": r}, save=tmp_path / "i.png")
    ax = fig.axes[0]
    assert len(ax.lines) == 3
    np.testing.assert_array_equal(ax.lines[0].get_xdata(), np.arange(6))
    assert (tmp_path / "i.png").exists()
    matplotlib.pyplot.close("all")


def test_separability_and_noise_figures(setup, tmp_path):
    p, x0 = setup
    y = jnp.arange(6) % 2
    r = rf.residuals(p, rf.trajectory(p, x0, depth=5))
    sep = rf.class_separability(r, y, x0=x0)
    fig = pp.plot_separability({"a": sep, "b": sep}, save=tmp_path / "s.png")
    assert len(fig.axes) == 2 and len(fig.axes[0].lines) == 4 and len(fig.axes[1].lines) == 4
    np.testing.assert_allclose(fig.axes[0].lines[1].get_ydata(), np.asarray(sep.integral_accuracy))
    fn = lambda z: (z[:, 0] > 0).astype(jnp.int32)  # noqa: E731
    nr = rf.noise_accuracy(
        fn, x0, (x0[:, 0] > 0).astype(jnp.int32), jnp.array([0.0, 0.5, 1.0]), key=jax.random.key(0), num_draws=2
    )
    fig = pp.plot_noise_robustness({"threshold": nr}, chance=0.5, save=tmp_path / "n.png")
    ax = fig.axes[0]
    assert len(ax.lines) == 2 and ax.lines[0].get_ydata()[0] == 1.0
    assert (tmp_path / "s.png").exists() and (tmp_path / "n.png").exists()
    with pytest.raises(TypeError, match="mapping"):
        pp.plot_noise_robustness({})
    matplotlib.pyplot.close("all")
