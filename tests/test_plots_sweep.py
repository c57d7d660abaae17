"""The sweep figures: what is drawn equals the rows/histories (quartiles against numpy), axes
labelled, integer depth ticks, and no legend on the data."""

import matplotlib
import numpy as np
import pytest
from conftest import legends_on_data

from resflow.plots import plot_sweep_depth_histories, plot_sweep_distribution
from resflow.plots.sweep import sweep_cells

# 2 lr × 2 w_std cells, 3 seeds each; depths 5 -> cut to 4 or 3 in some runs.
OPTIONS = ("lr", "w_std")
ROWS = [
    {
        "lr": lr,
        "w_std": w,
        "seed": s,
        "test_accuracy": 0.5 + 0.1 * s + lr + 0.01 * w,
        "depth": 5 - (s + int(w)) % 3,
    }
    for lr in (0.01, 0.003)
    for w in (1.0, 2.0)
    for s in range(3)
]


def history_of(row):
    """Three epochs; the run's final depth is reached by a cut after epoch 2."""
    d = row["depth"]
    hist = [{"epoch": e, "depth": 5 if e <= 2 else d} for e in (1, 2, 3)]
    if d < 5:
        hist[1]["depth_after_cut"] = d
    return hist


def test_cells_group_runs_by_option_values():
    labels, cells = sweep_cells(ROWS, OPTIONS)
    assert labels == ["lr=0.01, w_std=1", "lr=0.01, w_std=2", "lr=0.003, w_std=1", "lr=0.003, w_std=2"]
    assert cells == [0, 0, 0, 1, 1, 1, 2, 2, 2, 3, 3, 3]
    assert sweep_cells(ROWS, ()) == (["all runs"], [0] * 12)
    with pytest.raises(KeyError, match="no option 'h'"):
        sweep_cells(ROWS, ("h",))


@pytest.mark.parametrize("metric", ["test_accuracy", "depth"])
def test_distribution_draws_every_run_and_its_quartiles(metric):
    fig = plot_sweep_distribution(ROWS, metric, options=OPTIONS)
    ax = fig.axes[0]
    assert ax.get_xlabel() == "grid cell (lr, w_std)" and ax.get_ylabel()
    assert [t.get_text() for t in ax.get_xticklabels()] == sweep_cells(ROWS, OPTIONS)[0]
    dots = [line for line in ax.lines if line.get_marker() == "o"]
    assert len(dots) == 4
    for k, line in enumerate(dots):
        expected = [r[metric] for r in ROWS[3 * k : 3 * k + 3]]
        np.testing.assert_allclose(line.get_ydata(), expected)
        np.testing.assert_allclose(np.mean(line.get_xdata()), k + 1)
    # The median line of each box (boxplot draws it in C1) at numpy's median.
    medians = [line for line in ax.lines if line.get_color() == "C1"]
    assert len(medians) == 4
    for k, line in enumerate(medians):
        np.testing.assert_allclose(line.get_ydata()[0], np.median([r[metric] for r in ROWS[3 * k : 3 * k + 3]]))
    assert not legends_on_data(fig, expect_legend=False)
    if metric == "depth":
        fig.canvas.draw()
        ticks = ax.get_yticks()
        assert np.allclose(ticks, np.round(ticks))
    matplotlib.pyplot.close(fig)


def test_distribution_rejects_a_missing_metric():
    with pytest.raises(KeyError, match="'loss'"):
        plot_sweep_distribution(ROWS, "loss", options=OPTIONS)


def test_depth_histories_one_line_per_run_coloured_by_cell_legend_outside(tmp_path):
    hists = [history_of(r) for r in ROWS]
    fig = plot_sweep_depth_histories(hists, ROWS, options=OPTIONS, save=tmp_path / "d.png")
    assert (tmp_path / "d.png").is_file()
    ax = fig.axes[0]
    assert ax.get_xlabel() == "epoch" and ax.get_ylabel() == "depth (layers)"
    assert len(ax.lines) == len(ROWS)
    _, cells = sweep_cells(ROWS, OPTIONS)
    for line, row, cell in zip(ax.lines, ROWS, cells, strict=True):
        # Depth in force after epochs 0..3: 5, 5, then the cut at epoch 2, held at epoch 3.
        d = row["depth"]
        np.testing.assert_array_equal(line.get_xdata(), [0, 1, 2, 3])
        np.testing.assert_array_equal(line.get_ydata(), [5, 5, d, d])
        assert line.get_color() == f"C{cell}"
    legend = fig.legends[0]
    assert [t.get_text() for t in legend.get_texts()] == sweep_cells(ROWS, OPTIONS)[0]
    assert not legends_on_data(fig)
    with pytest.raises(ValueError, match="histories has 11 runs but rows has 12"):
        plot_sweep_depth_histories(hists[:-1], ROWS, options=OPTIONS)
    matplotlib.pyplot.close(fig)
