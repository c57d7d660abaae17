"""The fixed-point search figure: one row of dots per class, bars per fixed point, no legend on data."""

import matplotlib.collections as mcoll
import numpy as np
import pytest
from conftest import legends_on_data

from resflow.analysis._class_spectra import ClassSpectra
from resflow.dynamics._fixed_points import FixedPoints
from resflow.plots.fixed_points import plot_fixed_point_search


def _spectra():
    flow = np.array([[0.02, -0.5, -1.0], [-0.1, -0.2 + 0.3j, -0.2 - 0.3j]])
    return ClassSpectra(
        np.full((2, 3), 0.5), np.array([4, 5]), 1 + flow, flow, np.array([1, 0]), np.array([True, False])
    )


def _search():
    mult = np.array([[0.5, 0.3, 0.9], [1.5, 0.2, 0.1]], complex)
    return FixedPoints(
        np.zeros((2, 3)),
        np.ones(2, bool),
        np.zeros(2),
        mult,
        np.array([0, 2], np.int32),
        start_counts=np.array([7, 1]),
        start_solution=np.array([0] * 7 + [1]),
        patterns=np.array([[0, 1, -1], [0, 0, 1]], np.int8),
        flow_eigenvalues=np.log(mult),
        saturation_margin=np.array([0.3, -0.2]),
    )


def test_fixed_point_figure(tmp_path):
    path = tmp_path / "fp.png"
    fig = plot_fixed_point_search(_spectra(), _search(), num_eigenvalues=2, class_names=["a", "b"], save=path)
    left, right = fig.axes[0], fig.axes[1]
    dots = [c for c in left.collections if isinstance(c, mcoll.PathCollection)]
    assert len(dots) == 2
    np.testing.assert_allclose(dots[0].get_offsets(), [[0.02, 0], [-0.5, 0]])
    np.testing.assert_allclose(dots[1].get_offsets(), [[-0.1, 1], [-0.2, 1]])
    assert [t.get_text() for t in left.get_yticklabels()] == ["a", "b"]
    heights = [p.get_height() for p in right.patches]
    assert heights == [1, 2, 1, 1, 1, 0]  # #0, #1, #free stacked per point
    radius = fig.axes[2].collections[0].get_offsets()[:, 1]
    np.testing.assert_allclose(radius, [0.9, 1.5])
    assert [t.get_text() for t in right.get_xticklabels()] == ["attractor\n7 starts", "saddle\n1 starts"]
    assert left.get_xlabel() and right.get_ylabel() and fig.axes[2].get_ylabel()
    assert not legends_on_data(fig)
    assert path.stat().st_size > 0
    only = plot_fixed_point_search(_spectra())
    assert len(only.axes) == 1
    with pytest.raises(ValueError, match="class_names"):
        plot_fixed_point_search(_spectra(), class_names=["a"])
