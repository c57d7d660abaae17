"""Smoke tests: the network figures build, save, and draw what they should."""

import jax
import jax.numpy as jnp
import matplotlib.colors as mcolors
import numpy as np
import pytest

import resflow as rf
from resflow.plots import plot_attractor_portrait, plot_interaction_matrix, plot_residual_trajectories


@pytest.fixture
def run():
    W = jnp.array([[1.0, -2.0], [-2.0, 1.0]])
    params = rf.Trunk(W, jnp.zeros(2))
    x0 = jax.random.uniform(jax.random.key(0), (10, 2))
    labels = (x0[:, 0] > x0[:, 1]).astype(int)
    traj = rf.trajectory(params, x0, depth=8)
    return params, jax.nn.sigmoid(traj[:-1] @ W.T), labels


def _legends_clear(fig):
    """No legend of the figure overlaps the data area of any visible axes (one draw)."""
    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()
    boxes = [ax.get_window_extent(renderer) for ax in fig.axes if ax.get_visible()]
    legends = list(fig.legends) + [a.get_legend() for a in fig.axes if a.get_legend() is not None]
    assert legends
    return not any(leg.get_window_extent(renderer).overlaps(box) for leg in legends for box in boxes)


@pytest.mark.parametrize("mode, lines_per_panel", [("band", 2), ("lines", 10)])
def test_residual_trajectories(run, tmp_path, mode, lines_per_panel):
    _, r, labels = run
    fig = plot_residual_trajectories(r, labels, mode=mode, save=tmp_path / "r.png")
    assert (tmp_path / "r.png").stat().st_size > 0
    visible = [ax for ax in fig.axes if ax.get_visible()]
    assert len(visible) == 2 and all(len(ax.lines) == lines_per_panel for ax in visible)
    assert _legends_clear(fig)
    with pytest.raises(ValueError, match="labels"):
        plot_residual_trajectories(r, labels[:3])


def test_interaction_matrix_marks_pairs(run, tmp_path):
    params, r, labels = run
    C = rf.interaction_coefficients(params, r)
    fig = plot_interaction_matrix(np.stack([params.W, C[0, 0]]), titles=["W", "C_0"], save=tmp_path / "c.png")
    assert (tmp_path / "c.png").stat().st_size > 0
    marks = [t.get_text() for t in fig.axes[0].texts]
    assert marks.count("−") == 2  # W's only pair competes
    im = fig.axes[0].images[0]
    assert im.norm.vcenter == 0.0 and im.get_cmap().name == "RdBu_r"
    # each panel has its own symmetric scale: C_0 is ~r(1 - r) W, far below W's range
    panels = [ax for ax in fig.axes if ax.images]
    assert len(panels) == 2
    for ax, M in zip(panels, [params.W, C[0, 0]], strict=True):
        assert ax.images[0].norm.vmax == pytest.approx(float(np.abs(M).max()))
    assert panels[1].images[0].norm.vmax < panels[0].images[0].norm.vmax


def test_attractor_portrait(run, tmp_path):
    params, r, labels = run
    fps = rf.residual_fixed_points(params)
    fig = plot_attractor_portrait(r, fps, labels, save=tmp_path / "a.png")
    assert (tmp_path / "a.png").stat().st_size > 0
    ax = fig.axes[0]
    assert len(ax.lines) == 10
    faces = [c.get_facecolors() for c in ax.collections if len(c.get_offsets()) == 1]
    assert len(faces) >= len(fps.points)
    assert _legends_clear(fig)
    with pytest.raises(ValueError, match="n = 2 or 3"):
        plot_attractor_portrait(np.zeros((3, 2, 4)))


def test_residual_band_follows_the_data_range_for_tanh(tmp_path):
    # tanh residuals are negative too: the band and the axis must show them, not clip at 0.
    r = np.stack([np.full((4, 2), -0.8 + 0.1 * t) for t in range(6)])  # (T=6, batch=4, n=2)
    labels = np.array([0, 0, 1, 1])
    fig = plot_residual_trajectories(r, labels, save=tmp_path / "t.png")
    ax = fig.axes[0]
    assert ax.get_ylim()[0] <= -0.8
    np.testing.assert_allclose(ax.lines[0].get_ydata(), r[:, 0, 0])


def test_residual_trajectories_ten_classes_one_legend():
    rng = np.random.default_rng(0)
    labels = np.repeat(np.arange(10), 12)
    r = 1 / (1 + np.exp(-rng.normal(labels[None, :, None] / 3, 1.0, (7, 120, 4))))  # (T, batch, n)
    fig = plot_residual_trajectories(r, labels, activation="sigmoid")
    panels = [ax for ax in fig.axes if ax.get_visible()]
    assert len(panels) == 4
    colors = [[mcolors.to_hex(ln.get_color()) for ln in ax.lines] for ax in panels]
    # Ten distinct class colours, the same class keeps its colour on every panel.
    assert len(set(colors[0])) == 10 and all(c == colors[0] for c in colors)
    # Lines: class medians; bands: the interquartile range.
    ax = panels[2]
    np.testing.assert_allclose(ax.lines[3].get_ydata(), np.median(r[:, labels == 3, 2], axis=1))
    band = ax.collections[3].get_paths()[0].vertices[:, 1]
    q1, q3 = np.quantile(r[:, labels == 3, 2], [0.25, 0.75], axis=1)
    assert band.min() == pytest.approx(q1.min()) and band.max() == pytest.approx(q3.max())
    # One legend for the figure, with the ten classes, off every panel.
    assert len(fig.legends) == 1 and all(a.get_legend() is None for a in fig.axes)
    assert [t.get_text() for t in fig.legends[0].get_texts()] == [str(c) for c in range(10)]
    assert _legends_clear(fig)
    # The note says what the bands are and the units.
    assert "25 %–75 %" in fig.get_supxlabel() and r"\sigma(a_t) \in (0, 1)" in fig.get_supxlabel()
    # 4 panels: a 2 x 2 grid, the left column labelled r, the bottom row "layer t".
    assert [bool(a.get_ylabel()) for a in panels] == [True, False, True, False]
    assert [a.get_xlabel() for a in panels] == ["", "", "layer t", "layer t"]
    # 5 panels in 3 columns: the two top-right panels, above empty cells, carry the layer axis.
    five = plot_residual_trajectories(np.concatenate([r, r[..., :1]], -1), labels, components=range(5))
    assert [a.get_xlabel() for a in five.axes] == ["", "", "layer t", "layer t", "layer t", ""]
    five.canvas.draw()
    assert all(t.get_visible() for t in five.axes[2].get_xticklabels() if t.get_text())
    assert any(t.get_text() for t in five.axes[2].get_xticklabels())


def test_recurrence_accuracy_draws_every_network_where_it_belongs(tmp_path):
    from resflow.plots import plot_recurrence_accuracy

    settings = {
        "a": {"errors": [1e-7, 2e-7, 3e-3], "warned_each": [False, False, True], "preactivation_errors": [1e-7] * 3},
        "b": {"errors": [5e-6, 4e-4], "warned_each": [False, True], "preactivation_errors": [2e-7, 3e-7]},
    }
    fig = plot_recurrence_accuracy(settings, save=tmp_path / "r.png")
    ax = fig.axes[0]
    assert (tmp_path / "r.png").is_file() and ax.get_yscale() == "log" and ax.get_xlabel() and ax.get_ylabel()
    # per column: the quiet dots, the warned crosses, the preactivation triangles, in that order
    drawn = [np.asarray(c.get_offsets()) for c in ax.collections]
    assert [len(d) for d in drawn] == [2, 1, 3, 1, 1, 2]
    np.testing.assert_allclose(drawn[1][:, 1], [3e-3])
    np.testing.assert_allclose(drawn[4][:, 1], [4e-4])
    assert np.all(np.abs(drawn[3][:, 0] - 1) < 0.5) and np.all(np.abs(drawn[0][:, 0]) < 0.5)
    assert [t.get_text() for t in ax.get_xticklabels()] == ["a", "b"] and ax.get_legend() is None
