"""Smoke tests: the dynamics figures build, hold the expected artists, and save."""

import matplotlib.collections as mcoll
import numpy as np
import pytest
from conftest import legends_on_data

import resflow as rf
from resflow.plots import plot_eigenvalue_cloud, plot_lyapunov_convergence


def test_eigenvalue_cloud_groups_and_circle(tmp_path):
    ev = np.array([[0.5 + 0.5j, 0.5 - 0.5j], [2.0, -0.1], [1.2j, -1.2j]])
    path = tmp_path / "cloud.png"
    fig = plot_eigenvalue_cloud(ev, labels=np.array(["attractor", "saddle", "repeller"]), save=path)
    ax = fig.axes[0]
    scatters = [c for c in ax.collections if isinstance(c, mcoll.PathCollection)]
    assert len(scatters) == 3
    np.testing.assert_allclose(scatters[1].get_offsets(), [[2.0, 0.0], [-0.1, 0.0]])
    circle = ax.lines[0].get_xydata()
    np.testing.assert_allclose(np.hypot(circle[:, 0], circle[:, 1]), 1.0)
    assert [t.get_text() for t in ax.get_legend().get_texts()][1:] == ["attractor", "saddle", "repeller"]
    assert path.stat().st_size > 0
    assert not legends_on_data(fig)
    one = plot_eigenvalue_cloud(ev)
    assert len(one.axes[0].collections) == 1 and len(one.axes[0].collections[0].get_offsets()) == 6
    with pytest.raises(ValueError, match="labels"):
        plot_eigenvalue_cloud(ev, labels=[0, 1])


def test_lyapunov_convergence_lines_and_labels(tmp_path):
    res = rf.lyapunov_spectrum_from_jacobians(np.broadcast_to(np.diag([2.0, 0.5]), (50, 2, 2)), return_running=True)
    path = tmp_path / "conv.png"
    fig = plot_lyapunov_convergence(res, reference=np.log([2.0, 0.5]), save=path)
    ax = fig.axes[0]
    lines = [ln for ln in ax.lines if ln.get_label().startswith("λ")]
    assert len(lines) == 2
    final = np.asarray(res.exponents)
    np.testing.assert_allclose(lines[0].get_ydata()[-1], final[0])
    # the legend names each exponent with its final value; the x axis spans the 50 steps, linearly
    assert [ln.get_label() for ln in lines] == [f"λ{j + 1} → {v:.4g}" for j, v in enumerate(final)]
    assert ax.get_xscale() == "linear" and ax.get_xlim() == (1, 50)
    assert path.stat().st_size > 0
    assert not legends_on_data(fig)
    with pytest.raises(ValueError, match="running"):
        plot_lyapunov_convergence(rf.lyapunov_spectrum_from_jacobians(np.eye(2)[None]))
    with pytest.raises(ValueError, match="reference"):
        plot_lyapunov_convergence(res.running, reference=[1.0])
    with pytest.raises(ValueError, match="max_labelled"):
        plot_lyapunov_convergence(res.running, max_labelled=0)


def test_lyapunov_convergence_many_exponents_colormapped():
    final = np.linspace(0.1, -0.1, 20)
    fig = plot_lyapunov_convergence(np.tile(final, (300, 1)))
    ax = fig.axes[0]
    named = [ln.get_label() for ln in ax.lines if ln.get_label().startswith("λ")]
    assert named == [f"λ1 → {final[0]:.4g}", f"λ20 → {final[-1]:.4g}"]
    assert ax.get_xscale() == "log" and ax.get_xlim() == (1, 300)
    colorbar = [a for a in fig.axes if a is not ax]
    assert len(colorbar) == 1 and "exponent index" in colorbar[0].get_ylabel()
