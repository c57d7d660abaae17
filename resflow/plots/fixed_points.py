"""Figures for the data-driven fixed-point search: per-class spectra and the attractors found."""

from __future__ import annotations

import os

import numpy as np

from ..dynamics._stability import Stability
from ._common import finish, new_figure

__all__ = ["plot_fixed_point_search"]


def plot_fixed_point_search(
    spectra,
    search=None,
    *,
    num_eigenvalues: int | None = 20,
    class_names=None,
    save: str | os.PathLike | None = None,
):
    """Per-class leading flow eigenvalues (left) and the fixed points a search reached (right).

    Left: one row per class, one dot per flow eigenvalue Re λ of the class-mean spectrum
    (`resflow.analysis.ClassSpectra.flow_eigenvalues`), the zero line dashed; classes
    flagged near a saddle are drawn in red. Right (when `search` is given): per fixed point, the
    pattern counts (#0, #1, #free, stacked bars) and, on a second axis, the largest multiplier
    modulus ρ (diamonds; ρ < 1 attracts), the x labels saying the stability and the number of starts.

    **Arguments:**

    - `spectra`: a `ClassSpectra`.
    - `search`: a `FixedPoints` from `resflow.search_residual_fixed_points`, or None.
    - `num_eigenvalues`: how many leading (largest real part) eigenvalues per class (None: all).
    - `class_names`: K row labels (default "class c").
    - `save`: path to write the figure to.

    **Returns:** the matplotlib Figure.

    **Raises:** `ValueError` if `class_names` does not have one name per class.
    """
    flow = np.asarray(spectra.flow_eigenvalues)
    K = flow.shape[0]
    names = [f"class {c}" for c in range(K)] if class_names is None else [str(c) for c in class_names]
    if len(names) != K:
        raise ValueError(f"class_names must have {K} names (one per class), got {len(names)}")
    keep = flow.shape[1] if num_eigenvalues is None else min(num_eigenvalues, flow.shape[1])
    fig, axes = new_figure(1, 2 if search is not None else 1, size=(5.5, 0.35 * K + 1.8))
    ax = axes[0, 0]
    near = np.asarray(spectra.near_saddle)
    for c in range(K):
        ev = flow[c, :keep].real
        ax.scatter(ev, np.full(keep, c), s=12, color="tab:red" if near[c] else "tab:blue", zorder=2)
    ax.axvline(0, color="0.3", ls="--", lw=1, zorder=1)
    ax.set_yticks(range(K), names)
    ax.invert_yaxis()
    ax.set_xlabel(f"Re λ, flow Jacobian at the class-mean residual ({keep} leading)")
    ax.set_ylabel("class (red: near a saddle)")
    ax.set_title("flow spectrum at each class mean", fontsize=10)
    if search is not None:
        _plot_search(axes[0, 1], search)
    return finish(fig, save)


def _plot_search(ax, search):
    k = len(search.points)
    idx = np.arange(k)
    bottom = np.zeros(k)
    for counts, label, colour in (
        (search.num_low, "#0", "0.75"),
        (search.num_high, "#1", "0.35"),
        (search.num_free, "#free", "tab:green"),
    ):
        ax.bar(idx, counts, bottom=bottom, color=colour, label=label)
        bottom = bottom + np.asarray(counts)
    ax.set_xticks(
        idx,
        [f"{Stability(int(s)).label}\n{n} starts" for s, n in zip(search.stability, search.start_counts, strict=True)],
        fontsize=7,
    )
    ax.set_xlabel("fixed point reached")
    ax.set_title("fixed points the search reached", fontsize=10)
    ax.set_ylabel("components")
    rho = ax.twinx()
    radius = np.abs(np.asarray(search.multipliers)).max(axis=1, initial=0.0)
    rho.scatter(idx, radius, marker="D", color="tab:purple", label="ρ (max |μ|)", zorder=3)
    rho.axhline(1, color="tab:purple", ls=":", lw=1)
    rho.set_ylabel("largest multiplier modulus ρ")
    handles = ax.get_legend_handles_labels()
    extra = rho.get_legend_handles_labels()
    ax.legend(
        handles[0] + extra[0],
        handles[1] + extra[1],
        fontsize=8,
        loc="upper left",
        bbox_to_anchor=(1.18, 1.0),
        borderaxespad=0.0,
    )
