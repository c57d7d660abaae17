"""Figures for the generic dynamics tools: eigenvalue clouds and Lyapunov convergence."""

from __future__ import annotations

import os

import matplotlib.pyplot as plt
import numpy as np
from matplotlib import colors as mcolors
from matplotlib.cm import ScalarMappable

from ._common import count_axis, figure_legend, finish, legend_outside, new_figure

__all__ = ["plot_eigenvalue_cloud", "plot_lyapunov_convergence"]


def plot_eigenvalue_cloud(
    eigenvalues,
    *,
    labels=None,
    title: str | None = None,
    save: str | os.PathLike | None = None,
):
    """Eigenvalues (multipliers) in the complex plane against the unit circle.

    Inside the circle a direction contracts, outside it expands (discrete-time stability).

    **Arguments:**

    - `eigenvalues`: complex array of any shape, e.g. ``(m, n)`` from
      `resflow.jacobian_spectrum` or `FixedPoints.eigenvalues`.
    - `labels`: optional group of each eigenvalue, an array whose shape is a leading part of
      ``eigenvalues.shape`` (``(m,)`` labels the m rows), e.g. class labels or
      `FixedPoints.labels`; one colour and legend entry per group.
    - `title`: axes title.
    - `save`: path to write the figure to.

    **Returns:** the matplotlib Figure (one scatter collection per group).

    **Raises:** `ValueError` if `labels` does not match the leading axes of `eigenvalues`.
    """
    ev = np.asarray(eigenvalues).astype(complex)
    if labels is None:
        groups = [(None, ev.ravel())]
    else:
        lab = np.asarray(labels)
        if lab.shape != ev.shape[: lab.ndim]:
            raise ValueError(
                f"labels must have shape {ev.shape[: lab.ndim]} (leading axes of eigenvalues), got {lab.shape}"
            )
        lab = np.broadcast_to(lab.reshape(lab.shape + (1,) * (ev.ndim - lab.ndim)), ev.shape)
        groups = [(g, ev[lab == g]) for g in _ordered_unique(lab.ravel())]

    fig, axes = new_figure(size=(5.0, 5.0))
    ax = axes[0, 0]
    theta = np.linspace(0, 2 * np.pi, 400)
    ax.plot(np.cos(theta), np.sin(theta), color="0.4", lw=1, ls="--", label="|μ| = 1")
    ax.axhline(0, color="0.8", lw=0.8, zorder=0)
    ax.axvline(0, color="0.8", lw=0.8, zorder=0)
    for i, (g, z) in enumerate(groups):
        # small groups (e.g. a few fixed points next to a whole orbit) get big outlined markers on top
        few = z.size <= 20 and len(groups) > 1
        ax.scatter(
            z.real,
            z.imag,
            s=70 if few else 16,
            alpha=0.95 if few else 0.6,
            label=None if g is None else str(g),
            edgecolors="k" if few else "none",
            linewidths=0.8,
            zorder=3 + i if few else 2,
        )
    ax.set_aspect("equal", adjustable="datalim")
    ax.set_xlabel("Re μ")
    ax.set_ylabel("Im μ")
    ax.set_title(title if title is not None else "Jacobian eigenvalues")
    legend_outside(ax)
    return finish(fig, save)


def _ordered_unique(values):
    seen = {}
    for v in values:
        seen.setdefault(v, None)
    return list(seen)


def plot_lyapunov_convergence(
    running,
    *,
    reference=None,
    title: str | None = None,
    max_labelled: int = 8,
    save: str | os.PathLike | None = None,
):
    """Running Lyapunov estimates against the number of steps, one line per exponent.

    The x axis spans the data, steps 1 … T: linear, or logarithmic from T ≥ 100 steps (the
    finite-time estimates converge roughly like 1/T, so long runs are read on a log scale).
    Each line ends in a dot at its final value. Up to `max_labelled` exponents get a colour
    and a legend entry "λj → final value" each; more (e.g. the 64 of a width-64 trunk) are
    coloured by their index along a colormap with a colour bar "exponent index j", and only
    λ1 and λk (the largest and the smallest) are named in the legend. ``reference`` values,
    if given, are drawn as grey dashed lines. The legend sits under the panel.

    **Arguments:**

    - `running`: ``(T, k)`` running estimates (``LyapunovResult.running``, or the result
      itself), ``running[t]`` after t + 1 steps.
    - `reference`: optional ``(k,)`` known exponents.
    - `title`: axes title.
    - `max_labelled`: the most exponents drawn with a legend entry each (≥ 1).
    - `save`: path to write the figure to.

    **Returns:** the matplotlib Figure (k estimate lines labelled ``"λj → …"``, or unlabelled
    past the first and the last when k > `max_labelled`; k final-value markers; k reference lines).

    **Raises:** `ValueError` if `running` is not ``(T, k)`` (e.g. a result computed without
    ``return_running=True``), `reference` is not ``(k,)`` or `max_labelled` < 1.
    """
    if hasattr(running, "running") and hasattr(running, "exponents"):
        running = running.running
    if running is None:
        raise ValueError("running must be a (T, k) array; compute it with return_running=True")
    run = np.asarray(running, dtype=float)
    if run.ndim != 2:
        raise ValueError(f"running must have shape (T, k), got {run.shape}")
    if max_labelled < 1:
        raise ValueError(f"max_labelled must be >= 1, got {max_labelled}")
    T, k = run.shape
    ref = None if reference is None else np.asarray(reference, dtype=float)
    if ref is not None and ref.shape != (k,):
        raise ValueError(f"reference must have shape ({k},), got {ref.shape}")
    steps = np.arange(1, T + 1)
    many = k > max_labelled
    fig, axes = new_figure(size=(6.5, 4.0))
    ax = axes[0, 0]
    log_x = count_axis(ax, T, None, label="steps T", log_label="steps T (log scale)")
    # about a thousand log-spaced samples draw the same curve as 10^5 points
    idx = np.unique(np.geomspace(1, T, num=min(T, 1000)).astype(int) - 1) if log_x else np.arange(T)
    if many:
        cmap, norm = plt.get_cmap("viridis"), mcolors.Normalize(1, k)
        colors = [cmap(norm(j + 1)) for j in range(k)]
    else:
        colors = [f"C{j % 10}" for j in range(k)]
    for j in range(k):
        named = not many or j in (0, k - 1)
        final = run[-1, j]
        ax.plot(
            steps[idx],
            run[idx, j],
            lw=1.4 if named else 0.9,
            color=colors[j],
            label=f"λ{j + 1} → {final:.4g}" if named else None,
        )
        ax.plot(steps[-1], final, "o", ms=4 if named else 2.5, color=colors[j], clip_on=False)
    if ref is not None:
        for j in range(k):
            ax.axhline(ref[j], color="0.3", lw=0.9, ls="--", label="reference" if j == 0 else None, zorder=1)
    if many:
        fig.colorbar(ScalarMappable(norm, cmap), ax=ax, label="exponent index j (1: largest)")
    ax.set_ylabel("estimate (nats / step)")
    ax.set_title(title if title is not None else "Lyapunov exponents: running estimates")
    figure_legend(fig, ax, where="bottom", ncols=min(4, k + (ref is not None)))
    return finish(fig, save)
