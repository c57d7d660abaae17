"""Smoke tests: the network figures build, save, and draw what they should."""

import jax
import jax.numpy as jnp
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


def _legend_clear_of_axes(fig, ax):
    """No legend of the figure overlaps the data area of `ax`."""
    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()
    box = ax.get_window_extent(renderer)
    legends = list(fig.legends) + [a.get_legend() for a in fig.axes if a.get_legend() is not None]
    assert legends
    return all(not leg.get_window_extent(renderer).overlaps(box) for leg in legends)


@pytest.mark.parametrize("mode, lines_per_panel", [("band", 2), ("lines", 10)])
def test_residual_trajectories(run, tmp_path, mode, lines_per_panel):
    _, r, labels = run
    fig = plot_residual_trajectories(r, labels, mode=mode, save=tmp_path / "r.png")
    assert (tmp_path / "r.png").stat().st_size > 0
    visible = [ax for ax in fig.axes if ax.get_visible()]
    assert len(visible) == 2 and all(len(ax.lines) == lines_per_panel for ax in visible)
    assert all(_legend_clear_of_axes(fig, ax) for ax in visible)
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
    assert _legend_clear_of_axes(fig, ax)
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
