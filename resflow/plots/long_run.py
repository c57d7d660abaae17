"""Figures of a long run (`resflow.analysis.LongRun`) and of classification by the integrated transient."""

from __future__ import annotations

import numpy as np

from ._common import LOG_X_FROM as LOG_X_FROM
from ._common import count_axis, figure_legend, finish, integer_ticks, new_figure
from .network import class_colors

__all__ = ["plot_residual_statistics", "plot_class_residual_norms", "plot_transient_accuracy"]


def _layer_axis(ax, depth: int, log_x: bool | None):
    """Layers 1 … T on x (layer t + 1 shows r_t), logarithmic for long runs."""
    count_axis(
        ax, depth, log_x,
        label="layer t + 1 (r_t is the residual added by layer t + 1)",
        log_label="layer t + 1 (log scale; r_t is the residual added by layer t + 1)",
    )  # fmt: skip


def plot_residual_statistics(run, *, log_x: bool | None = None, title: str | None = None, save=None):
    """The residual mean ± std over layers (top) and how much residuals still move (bottom).

    Top: the mean over inputs and units of r_t, with a band of ± the input standard deviation
    (per unit, averaged over units: `LongRun.residual_std`). Bottom (log y): the max and mean
    over inputs of ‖r_t − r_{t−1}‖_∞; a curve falling to round-off means converged residuals.

    **Arguments:**

    - `run`: a `resflow.analysis.LongRun`.
    - `log_x`: logarithmic layer axis (default: when T ≥ 100, e.g. a 1000-layer run).
    - `title`, `save`: figure title and a path to write it to.

    **Returns:** the matplotlib Figure (one legend, under the panels).
    """
    mean = np.asarray(run.residual_mean).mean(-1)
    std = np.asarray(run.residual_std)
    layers = np.arange(1, len(mean) + 1)
    fig, axes = new_figure(2, 1, size=(7.0, 2.8), sharex=True)
    top, bottom = axes[:, 0]
    top.fill_between(layers, mean - std, mean + std, color="C0", alpha=0.25, lw=0, label="± std over inputs")
    top.plot(layers, mean, color="C0", lw=1.8, label="mean residual")
    top.set(ylabel="residual $r_t$ (mean over units)", title=title or "residual mean ± std over layers")
    floor = np.finfo(np.asarray(run.change_max).dtype).tiny
    bottom.plot(layers[1:], np.maximum(np.asarray(run.change_max)[1:], floor), color="C3", label="max over inputs")
    bottom.plot(layers[1:], np.maximum(np.asarray(run.change_mean)[1:], floor), color="C1", label="mean over inputs")
    bottom.set(yscale="log", ylabel=r"$\|r_t - r_{t-1}\|_\infty$", title="how much the residuals still move")
    for ax in (top, bottom):
        _layer_axis(ax, len(mean), log_x)
    top.set_xlabel("")
    figure_legend(fig, axes[:, 0], where="bottom")
    return finish(fig, save)


def plot_class_residual_norms(run, *, class_names=None, log_x: bool | None = None, title: str | None = None, save=None):
    """Per class, the Euclidean norm of the class-mean residual ‖mean_{i ∈ c} r_{t,i}‖ over layers.

    Classes whose lines merge late share their end state (a class-independent attractor).

    **Arguments:**

    - `run`: a `resflow.analysis.LongRun`.
    - `class_names`: K labels for the legend (default "class 0" …).
    - `log_x`, `title`, `save`: as `plot_residual_statistics`.

    **Returns:** the matplotlib Figure (legend to the right of the panel; empty classes omitted).

    **Raises:** `ValueError` if `class_names` does not have K entries.
    """
    means = np.asarray(run.class_means)
    K = means.shape[1]
    names = [f"class {c}" for c in range(K)] if class_names is None else list(class_names)
    if len(names) != K:
        raise ValueError(f"class_names must have {K} entries (one per class), got {len(names)}")
    norms = np.linalg.norm(means, axis=-1)
    layers = np.arange(1, means.shape[0] + 1)
    fig, axes = new_figure(1, 1, size=(7.0, 3.6))
    ax = axes[0, 0]
    for c, color in enumerate(class_colors(K)):
        if np.isfinite(norms[:, c]).any():
            ax.plot(layers, norms[:, c], color=color, lw=1.4, label=names[c])
    ax.set(ylabel=r"$\|\,$class-mean $r_t\,\|_2$", title=title or "class-mean residual norm over layers")
    _layer_axis(ax, len(layers), log_x)
    figure_legend(fig, ax, where="right")
    return finish(fig, save)


def plot_transient_accuracy(result, *, title: str | None = None, save=None):
    """Accuracy of the trained readout vs T': on x_0 + hΣ_{t<T'} r_t, and with r* after T'.

    A dashed line marks 99 % of the full-depth accuracy and a dotted one the smallest T'
    reaching it. The steady-state curve is omitted when it is NaN (untied weights).

    **Arguments:**

    - `result`: a `resflow.analysis.TransientAccuracy`.
    - `title`, `save`: figure title and a path to write it to.

    **Returns:** the matplotlib Figure (one legend, under the panel).
    """
    depths = np.asarray(result.depths)
    acc, steady = np.asarray(result.accuracy), np.asarray(result.steady_accuracy)
    fig, axes = new_figure(1, 1, size=(6.0, 3.6))
    ax = axes[0, 0]
    ax.plot(depths, acc, "o-", color="C0", ms=4, label=r"readout on $x_0 + h\sum_{t<T'} r_t$")
    if np.isfinite(steady).any():
        ax.plot(depths, steady, "s--", color="C2", ms=4, label=r"… $+\, h\,(T - T')\, r^*$ (steady state after $T'$)")
    full = float(result.full_accuracy)
    ax.axhline(0.99 * full, color="k", ls="--", lw=1, label="99 % of the full-depth accuracy")
    ax.axvline(int(result.transient_depth), color="C3", ls=":", lw=1.2, label=f"T' = {int(result.transient_depth)}")
    ax.set(xlabel="T' (layers of the transient integrated)", ylabel="test accuracy", ylim=(0, 1.02))
    ax.set_title(title or "classification by the integrated transient")
    integer_ticks(ax, "x")
    ax.grid(alpha=0.3)
    figure_legend(fig, ax, where="bottom")
    return finish(fig, save)
