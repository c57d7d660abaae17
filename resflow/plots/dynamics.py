"""Figures for the generic dynamics tools: eigenvalue clouds and Lyapunov convergence."""

from __future__ import annotations

import os

import numpy as np

from ._common import finish, legend_outside, new_figure

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
    save: str | os.PathLike | None = None,
):
    """Running Lyapunov estimates against the number of steps, one line per exponent.

    The x axis is logarithmic (finite-time estimates converge roughly like 1/T) and each line
    is annotated with its final value; ``reference`` values, if given, are drawn dashed.

    **Arguments:**

    - `running`: ``(T, k)`` running estimates (``LyapunovResult.running``, or the result
      itself), ``running[t]`` after t + 1 steps.
    - `reference`: optional ``(k,)`` known exponents.
    - `title`: axes title.
    - `save`: path to write the figure to.

    **Returns:** the matplotlib Figure (k estimate lines and k final-value markers, plus k
    reference lines).

    **Raises:** `ValueError` if `running` is not ``(T, k)`` (e.g. a result computed without
    ``return_running=True``) or `reference` is not ``(k,)``.
    """
    if hasattr(running, "running") and hasattr(running, "exponents"):
        running = running.running
    if running is None:
        raise ValueError("running must be a (T, k) array; compute it with return_running=True")
    run = np.asarray(running, dtype=float)
    if run.ndim != 2:
        raise ValueError(f"running must have shape (T, k), got {run.shape}")
    T, k = run.shape
    steps = np.arange(1, T + 1)
    # about a thousand log-spaced samples draw the same curve as 10^5 points
    idx = np.unique(np.geomspace(1, T, num=min(T, 1000)).astype(int) - 1)

    fig, axes = new_figure(size=(6.5, 4.0))
    ax = axes[0, 0]
    for j in range(k):
        (line,) = ax.plot(steps[idx], run[idx, j], lw=1.4, label=f"λ{j + 1}")
        final = run[-1, j]
        ax.annotate(
            f"λ{j + 1} = {final:.4f}",
            xy=(steps[-1], final),
            xytext=(4, 7),
            textcoords="offset points",
            va="bottom",
            ha="left",
            fontsize=8,
            color=line.get_color(),
            bbox={"boxstyle": "round,pad=0.2", "fc": "white", "ec": "none", "alpha": 0.8},
        )
        ax.plot(steps[-1], final, "o", ms=4, color=line.get_color())
    if reference is not None:
        ref = np.asarray(reference, dtype=float)
        if ref.shape != (k,):
            raise ValueError(f"reference must have shape ({k},), got {ref.shape}")
        for j in range(k):
            ax.axhline(ref[j], color="0.3", lw=0.9, ls="--", label="reference" if j == 0 else None, zorder=1)
    ax.set_xscale("log")
    ax.set_xlabel("steps T")
    ax.set_ylabel("estimate (nats / step)")
    ax.set_title(title if title is not None else "Lyapunov exponents: running estimates")
    legend_outside(ax)
    # room on the (log) right for the final-value annotations
    ax.set_xlim(1, max(T, 2) * 10)
    return finish(fig, save)
