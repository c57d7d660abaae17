"""Figures for continuous depth: the Euler map's convergence to the ODE."""

from __future__ import annotations

import os

import numpy as np

from ._common import finish, new_figure, readable_log_axis

__all__ = ["plot_convergence"]


def plot_convergence(convergence, *, title: str | None = None, save: str | os.PathLike | None = None):
    """Error of the T-layer map against the ODE solution, against the step h, on log–log axes.

    A dashed line of slope 1 (first order) is drawn below the data, labelled in place, so
    no legend covers the points; the fitted slope is in the title.

    **Arguments:**

    - `convergence`: a `resflow.continuous.Convergence` (from `euler_convergence`).
    - `title`: axes title (default: the fitted slope).
    - `save`: path to write the figure to.

    **Returns:** the matplotlib Figure.
    """
    h = np.asarray(convergence.h, float)
    err = np.asarray(convergence.errors, float)
    fig, axes = new_figure(size=(5.0, 4.0))
    ax = axes[0, 0]
    ax.loglog(h, err, "o-", color="C0", lw=1.5, ms=6)
    # the reference line passes a factor 3 below the largest-h point, so it never hides the data
    ref = err[0] / 3 * (h / h[0])
    ax.loglog(h, ref, "--", color="0.4", lw=1)
    mid = len(h) // 2
    ax.annotate("slope 1", (h[mid], ref[mid]), textcoords="offset points", xytext=(8, -12), fontsize=9, color="0.3")
    for T, x, y in zip(convergence.steps, h, err, strict=True):
        ax.annotate(
            f"T={int(T)}", (x, y), textcoords="offset points", xytext=(-5, 6), ha="right", fontsize=7, color="C0"
        )
    ax.margins(x=0.2, y=0.12)
    ax.set_xlabel("step h = S / T")
    ax.set_ylabel("max ‖x_T − x(S)‖₂")
    ax.set_title(
        title
        if title is not None
        else f"Euler map vs ODE at S = {convergence.depth_time:g}: slope {convergence.slope:.3f}"
    )
    ax.grid(True, which="both", alpha=0.3)
    readable_log_axis(ax, "both")
    return finish(fig, save)
