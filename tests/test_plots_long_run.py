"""The long-run and transient figures: built, saved, data drawn as given, no legend over data."""

import numpy as np
import pytest
from conftest import legends_on_data

import resflow as rf
from resflow.plots.long_run import plot_class_residual_norms, plot_residual_statistics, plot_transient_accuracy


@pytest.fixture(scope="module")
def run():
    rng = np.random.default_rng(0)
    trunk = rf.Trunk(rng.normal(0, 1.5, (4, 4)), rng.normal(0, 0.5, 4))
    x0 = rng.normal(size=(12, 4))
    return rf.long_run_statistics(trunk, x0, np.arange(12) % 3, depth=150, num_classes=4)


def test_residual_statistics(run, tmp_path):
    fig = plot_residual_statistics(run, save=tmp_path / "s.png")
    assert (tmp_path / "s.png").stat().st_size > 0
    top, bottom = fig.axes[:2]
    assert top.get_xscale() == "log" and top.get_xlabel() == "" and bottom.get_xlabel() and top.get_ylabel()
    np.testing.assert_allclose(top.lines[0].get_ydata(), np.asarray(run.residual_mean).mean(-1))
    np.testing.assert_array_equal(top.lines[0].get_xdata(), np.arange(1, 151))
    assert legends_on_data(fig) == []
    short = plot_residual_statistics(
        run._replace(
            **{k: getattr(run, k)[:10] for k in ("residual_mean", "residual_std", "change_max", "change_mean")}
        )
    )
    assert short.axes[0].get_xscale() == "linear"


def test_class_residual_norms(run, tmp_path):
    fig = plot_class_residual_norms(run, class_names=list("abcd"), save=tmp_path / "c.png")
    ax = fig.axes[0]
    assert len(ax.lines) == 3  # the empty class 3 is not drawn
    np.testing.assert_allclose(ax.lines[1].get_ydata(), np.linalg.norm(np.asarray(run.class_means)[:, 1], axis=-1))
    assert ax.get_xlabel() and ax.get_ylabel()
    assert legends_on_data(fig) == []
    with pytest.raises(ValueError, match="class_names"):
        plot_class_residual_norms(run, class_names=["a"])


@pytest.mark.parametrize("with_steady", [True, False])
def test_transient_accuracy(tmp_path, with_steady):
    acc = np.array([0.3, 0.6, 0.9, 0.95, 0.96])
    steady = np.array([0.5, 0.7, 0.92, 0.95, 0.96]) if with_steady else np.full(5, np.nan)
    res = rf.analysis.TransientAccuracy(
        np.arange(5), acc, steady, np.float64(0.96), np.int64(3), np.int64(3 if with_steady else -1)
    )
    fig = plot_transient_accuracy(res, save=tmp_path / "t.png")
    ax = fig.axes[0]
    drawn = [line for line in ax.lines if len(line.get_xdata()) == 5]
    assert len(drawn) == (2 if with_steady else 1)
    np.testing.assert_allclose(drawn[0].get_ydata(), acc)
    assert ax.get_xlabel() and ax.get_ylabel()
    assert legends_on_data(fig) == []
