"""The training figures: labelled, integer ticks where counts are drawn, the depth rule's
threshold in view, and no legend on the data."""

import jax
import jax.numpy as jnp
import matplotlib
import numpy as np
import pytest
from conftest import legends_on_data

import resflow as rf
from resflow.plots import plot_depth_history, plot_training_curves
from resflow.plots.training import plot_residuals_by_class
from resflow.trunk._network import Affine, Network

TOL = 0.01


def ticks_in_view(ax, axis):
    """The major tick values of `axis` ("x"/"y") inside the view limits, after a draw."""
    ax.figure.canvas.draw()
    lo, hi = sorted(getattr(ax, f"get_{axis}lim")())
    ticks = np.asarray(getattr(ax, f"get_{axis}ticks")())
    return ticks[(ticks >= lo) & (ticks <= hi)]


def is_integer(values):
    return values.size > 0 and np.allclose(values, np.round(values))


@pytest.fixture
def history():
    # 3 epochs, a cut 5 -> 4 after epoch 2 (its change 0.003 < TOL), epoch 1 in the warm-up.
    recs = [(1, 5, 0.02), (2, 5, 0.003), (3, 4, 0.05)]
    hist = [
        {"epoch": e, "loss": 1 / e, "test_loss": 1.2 / e, "train_accuracy": 0.5 + 0.1 * e, "test_accuracy": 0.4}
        | {"depth": d, "residual_change": c}
        for e, d, c in recs
    ]
    hist[1]["depth_after_cut"] = 4
    yield hist
    matplotlib.pyplot.close("all")


def test_overlap_check_catches_a_legend_on_the_data():
    fig, ax = matplotlib.pyplot.subplots()
    ax.plot([0, 1], [0, 1], label="line")
    ax.legend(loc="center")
    assert legends_on_data(fig, expect_legend=False)
    matplotlib.pyplot.close(fig)


def test_depth_history_threshold_cuts_and_ticks(history, tmp_path):
    fig = plot_depth_history(history, max_depth=5, tol=TOL, warmup=1, save=tmp_path / "d.png")
    assert (tmp_path / "d.png").stat().st_size > 0
    depth_ax, change_ax = fig.axes
    assert list(depth_ax.lines[0].get_ydata()) == [5, 5, 4, 4]
    # The measured change on a log axis, and the threshold as a horizontal line at TOL.
    assert change_ax.get_yscale() == "log"
    measured = [ln for ln in change_ax.lines if len(ln.get_xdata()) == 3]
    assert len(measured) == 1
    np.testing.assert_allclose(measured[0].get_ydata(), [0.02, 0.003, 0.05])
    threshold = [ln for ln in change_ax.lines if np.allclose(ln.get_ydata(), TOL)]
    assert len(threshold) == 1 and "0.01" in threshold[0].get_label()
    lo, hi = change_ax.get_ylim()
    assert lo < 0.003 and hi > 0.05  # points and threshold in view
    # The cut (after epoch 2) is a vertical line on both panels.
    for ax in fig.axes:
        assert [list(ln.get_xdata()) for ln in ax.lines if list(ln.get_xdata()) == [2, 2]]
    # Labels, and integer ticks for epochs and depths (3 epochs, depths 4-5: matplotlib's
    # default locator would put ticks at halves).
    assert depth_ax.get_title() and change_ax.get_xlabel() == "epoch"
    assert depth_ax.get_ylabel() and change_ax.get_ylabel()
    assert is_integer(ticks_in_view(change_ax, "x")) and is_integer(ticks_in_view(depth_ax, "y"))
    # One legend, under the panels, on no data.
    assert len(fig.legends) == 1 and all(ax.get_legend() is None for ax in fig.axes)
    assert not legends_on_data(fig, expect_legend=False)


def test_depth_history_without_logged_changes(history):
    plain = [{k: v for k, v in r.items() if k != "residual_change"} for r in history]
    fig = plot_depth_history(plain, max_depth=5, tol=TOL)
    assert len(fig.axes) == 1 and fig.axes[0].get_xlabel() == "epoch"
    assert is_integer(ticks_in_view(fig.axes[0], "x"))
    assert not legends_on_data(fig, expect_legend=False)


def test_training_curves_labelled_and_legend_off_the_data(history, tmp_path):
    fig = plot_training_curves(history, save=tmp_path / "c.png")
    assert [len(ax.lines) for ax in fig.axes] == [2, 2]
    for ax in fig.axes:
        assert ax.get_xlabel() == "epoch" and ax.get_ylabel() and ax.get_title()
        assert is_integer(ticks_in_view(ax, "x"))
    assert len(fig.legends) == 1 and not legends_on_data(fig, expect_legend=False)


def test_residuals_by_class_on_circles(tmp_path):
    # A random tanh trunk on the circles test inputs: 2 classes, both units, tanh units.
    data = rf.load_dataset("circles", n_train=64, n_test=32)
    trunk = rf.Trunk.init(jax.random.key(0), 2, w_std=2.0, activation="tanh")
    net = Network(None, trunk, Affine(jnp.zeros((2, 2)), jnp.zeros(2)), 5)
    fig = plot_residuals_by_class(net, data.x_test, data.y_test, save=tmp_path / "r.png")
    assert (tmp_path / "r.png").stat().st_size > 0
    panels = [ax for ax in fig.axes if ax.get_visible()]
    assert [ax.get_title() for ax in panels] == ["unit 0", "unit 1"]
    # Per class the median over its inputs, from residuals computed here: tanh(x_t W^T + b).
    x = np.asarray(data.x_test, np.float64)
    W, b = np.asarray(trunk.W, np.float64), np.asarray(trunk.b, np.float64)
    r = []
    for _ in range(5):
        r.append(np.tanh(x @ W.T + b))
        x = x + r[-1]
    r = np.stack(r)
    y = np.asarray(data.y_test)
    for unit, ax in enumerate(panels):
        for cls, line in enumerate(ax.lines):
            np.testing.assert_allclose(line.get_ydata(), np.median(r[:, y == cls, unit], axis=1), atol=1e-5)
    assert "raw activation units" in fig.get_supxlabel() and "tanh" in fig.get_supxlabel()
    assert len(fig.legends) == 1 and not legends_on_data(fig, expect_legend=False)


def test_timings_bars_diamonds_and_speed_up(tmp_path):
    from resflow.plots import plot_timings

    fig = plot_timings(
        {"run": {"fast": {"median_s": 2.0, "cold_s": 9.0}, "slow": {"median_s": 3.0, "cold_s": 4.0}}},
        save=tmp_path / "t.png",
    )
    ax = fig.axes[0]
    assert (tmp_path / "t.png").is_file() and ax.get_xlabel() and ax.get_ylabel()
    assert [p.get_height() for p in ax.patches] == [2.0, 3.0]
    np.testing.assert_allclose(np.asarray(ax.collections[0].get_offsets())[:, 1], [9.0, 4.0])
    assert ax.get_title().endswith("speed-up 1.50×")  # 3.0 / 2.0
    assert len(fig.legends) == 1 and not legends_on_data(fig, expect_legend=False)
