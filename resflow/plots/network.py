"""Figures for the network-specific dynamics: residual trajectories, interactions, attractors."""

from __future__ import annotations

import os

import numpy as np
from matplotlib import colors as mcolors

from ..attractors import ResidualFixedPoints, Saturation
from ..interactions import PairClass, pair_classes
from ._common import new_figure

__all__ = ["plot_residual_trajectories", "plot_interaction_matrix", "plot_attractor_portrait"]

_PAIR_MARK = {PairClass.MUTUALISM: "+", PairClass.COMPETITION: "−", PairClass.EXPLOITATION: "±", PairClass.NEUTRAL: "0"}


def _save(fig, save):
    """Save a constrained-layout figure (tight_layout would fight its colour bars)."""
    if save is not None:
        os.makedirs(os.path.dirname(os.path.abspath(save)), exist_ok=True)
        fig.savefig(save, dpi=120)
    return fig


def _labels_for(labels, batch):
    if labels is None:
        return np.zeros(batch, int)
    labels = np.asarray(labels)
    if labels.shape != (batch,):
        raise ValueError(f"labels must have shape ({batch},) to match the residuals' batch axis, got {labels.shape}")
    return labels


def plot_residual_trajectories(
    residuals,
    labels=None,
    *,
    mode: str = "band",
    components=None,
    max_lines: int = 30,
    title: str | None = None,
    save=None,
):
    """Residual components r_{t,i} against layer t, coloured by class, one panel per component.

    **Arguments:**

    - `residuals`: ``(T, batch, n)``.
    - `labels`: ``(batch,)`` classes (None: one class).
    - `mode`: ``"band"`` (class mean ± one standard deviation, readable for many inputs) or
      ``"lines"`` (raw trajectories, at most `max_lines` per class, thin).
    - `components`: indices of the components to draw (default: the first min(n, 6)).
    - `title`, `save`: figure title; path to save to.

    **Returns:** the matplotlib Figure.

    **Raises:** `ValueError` for a wrong shape, mode, labels length or component index.
    """
    r = np.asarray(residuals)
    if r.ndim != 3:
        raise ValueError(f"residuals must have shape (T, batch, n), got {r.shape}")
    if mode not in ("band", "lines"):
        raise ValueError(f"mode must be 'band' or 'lines', got {mode!r}")
    T, B, n = r.shape
    lab = _labels_for(labels, B)
    comps = list(range(min(n, 6))) if components is None else [int(c) for c in components]
    if not comps or any(c < 0 or c >= n for c in comps):
        raise ValueError(f"components must be indices in [0, {n}), got {components!r}")
    classes = np.unique(lab)
    cmap = mcolors.ListedColormap(
        [
            "#1f77b4",
            "#d62728",
            "#2ca02c",
            "#ff7f0e",
            "#9467bd",
            "#8c564b",
            "#e377c2",
            "#7f7f7f",
            "#bcbd22",
            "#17becf",
        ]
    )
    ncols = min(len(comps), 3)
    nrows = -(-len(comps) // ncols)
    fig, axes = new_figure(nrows, ncols, size=(4.0, 3.0), sharex=True, sharey=True, layout="constrained")
    layers = np.arange(T)
    # The band is clipped to the range the residuals actually take ([0, 1] for the logistic,
    # (-1, 1) for tanh, [0, ∞) for relu), never to an assumed one.
    lo, hi = float(r.min()), float(r.max())
    unit = lo >= 0.0 and hi <= 1.0
    band_alpha = 0.2 if len(classes) <= 4 else 0.1
    for k, c in enumerate(comps):
        ax = axes.flat[k]
        for ci, cls in enumerate(classes):
            color = cmap(ci % 10)
            rc = r[:, lab == cls, c]
            if mode == "band":
                mean, std = rc.mean(1), rc.std(1)
                ax.plot(layers, mean, color=color, lw=2, label=f"class {cls}")
                ax.fill_between(
                    layers, np.clip(mean - std, lo, hi), np.clip(mean + std, lo, hi), color=color, alpha=band_alpha
                )
            else:
                for j in range(min(rc.shape[1], max_lines)):
                    ax.plot(layers, rc[:, j], color=color, lw=0.6, alpha=0.5, label=f"class {cls}" if j == 0 else None)
        ax.set_title(f"residual $r_{{t,{c}}}$")
        if unit:
            ax.set_ylim(-0.03, 1.03)
        ax.grid(alpha=0.3)
    for ax in axes[-1]:
        ax.set_xlabel("layer t")
    for ax in axes[:, 0]:
        ax.set_ylabel("r")
    for ax in list(axes.flat)[len(comps) :]:
        ax.set_visible(False)
    # Outside the panels, so that no legend covers a trajectory.
    handles, names = axes.flat[0].get_legend_handles_labels()
    fig.legend(handles, names, fontsize=8, loc="outside right upper")
    if title:
        fig.suptitle(title)
    return _save(fig, save)


def plot_interaction_matrix(
    matrices, *, titles=None, mark_pairs: bool = True, cbar_label: str = "coefficient", save=None
):
    """Heat map(s) of W or C_t: red = cooperation (> 0), blue = competition (< 0), centred at 0.

    Each off-diagonal cell is marked with its pair class from the signs of M_ij and M_ji:
    "+" mutualism, "−" competition, "±" exploitation, "0" neutral (for n ≤ 16).

    **Arguments:**

    - `matrices`: ``(n, n)`` or a stack ``(k, n, n)`` (e.g. W and per-class mean coefficients),
      one panel each, each with its own symmetric colour scale and colour bar (coefficients
      are ~r(1 − r) ≤ 1/4 times W, so a shared scale would leave them nearly white).
    - `titles`: one title per panel; `mark_pairs`: draw the pair-class marks.
    - `cbar_label`, `save`: colour-bar label; path to save to.

    **Returns:** the matplotlib Figure.

    **Raises:** `ValueError` for non-square matrices or a wrong number of titles.
    """
    M = np.asarray(matrices, np.float64)
    if M.ndim == 2:
        M = M[None]
    if M.ndim != 3 or M.shape[-1] != M.shape[-2]:
        raise ValueError(f"matrices must have shape (n, n) or (k, n, n), got {np.shape(matrices)}")
    k, n, _ = M.shape
    if titles is not None and len(titles) != k:
        raise ValueError(f"titles must have {k} entries, got {len(titles)}")
    fig, axes = new_figure(1, k, size=(4.6, 3.8), layout="constrained")
    for p in range(k):
        ax = axes[0, p]
        vmax = float(np.abs(M[p]).max()) or 1.0
        norm = mcolors.TwoSlopeNorm(vmin=-vmax, vcenter=0.0, vmax=vmax)
        im = ax.imshow(M[p], cmap="RdBu_r", norm=norm)
        fig.colorbar(im, ax=ax, fraction=0.046, pad=0.04, label=cbar_label)
        ax.set_xlabel("from residual j")
        ax.set_ylabel("to residual i")
        if titles is not None:
            ax.set_title(titles[p])
        if n <= 16:
            ax.set_xticks(range(n))
            ax.set_yticks(range(n))
        if mark_pairs and n <= 16:
            codes = np.asarray(pair_classes(M[p]))
            for i in range(n):
                for j in range(n):
                    if i != j:
                        dark = abs(M[p, i, j]) > 0.6 * vmax
                        ax.text(
                            j,
                            i,
                            _PAIR_MARK[int(codes[i, j])],
                            ha="center",
                            va="center",
                            fontsize=10,
                            color="white" if dark else "black",
                        )
    if mark_pairs and n <= 16:
        fig.supxlabel("pairs: + mutualism, − competition, ± exploitation, 0 neutral", fontsize=8)
    return _save(fig, save)


def plot_attractor_portrait(
    residuals,
    fixed_points: ResidualFixedPoints | None = None,
    labels=None,
    *,
    max_lines: int = 60,
    title: str | None = None,
    save=None,
):
    """Residual trajectories in the unit square (n = 2) or cube (n = 3), fixed points marked.

    **Arguments:**

    - `residuals`: ``(T, batch, n)`` with n = 2 or 3.
    - `fixed_points`: optional `ResidualFixedPoints` (e.g. `resflow.residual_fixed_points`):
      filled markers for attracting patterns, open for the others (corners: squares; free
      components: circles).
    - `labels`: ``(batch,)`` classes for the colours; `max_lines` trajectories drawn at most.
    - `title`, `save`: figure title; path to save to.

    **Returns:** the matplotlib Figure.

    **Raises:** `ValueError` for n ∉ {2, 3} or mismatched shapes.
    """
    r = np.asarray(residuals)
    if r.ndim != 3 or r.shape[-1] not in (2, 3):
        raise ValueError(f"residuals must have shape (T, batch, n) with n = 2 or 3, got {r.shape}")
    T, B, n = r.shape
    lab = _labels_for(labels, B)
    if fixed_points is not None and fixed_points.points.shape[-1] != n:
        raise ValueError(
            f"fixed_points must be {n}-dimensional to match the residuals, got {fixed_points.points.shape}"
        )
    classes = list(np.unique(lab))
    palette = ["#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b"]
    if n == 2:
        fig, axes = new_figure(1, 1, size=(6.2, 4.6), layout="constrained")
        ax = axes[0, 0]
    else:
        import matplotlib.pyplot as plt

        fig = plt.figure(figsize=(6.8, 5.0), layout="constrained")
        ax = fig.add_subplot(projection="3d")
    idx = np.arange(B)[:max_lines] if B <= max_lines else np.linspace(0, B - 1, max_lines).astype(int)
    seen = set()
    for j in idx:
        color = palette[classes.index(lab[j]) % len(palette)]
        lbl = f"class {lab[j]}" if lab[j] not in seen else None
        seen.add(lab[j])
        ax.plot(*r[:, j].T, color=color, lw=0.8, alpha=0.6, label=lbl)
        ax.scatter(*r[0, j][:, None], color=color, s=8, alpha=0.7)
    if fixed_points is not None:
        for p, pat, att in zip(fixed_points.points, fixed_points.patterns, fixed_points.attracting, strict=True):
            marker = "s" if np.all(pat != Saturation.FREE) else "o"
            face = "k" if att else "white"
            ax.scatter(*p[:, None], marker=marker, s=70, facecolors=face, edgecolors="k", linewidths=1.5, zorder=5)
        ax.scatter([], [], marker="s", s=50, facecolors="k", edgecolors="k", label="attracting fixed point")
        ax.scatter([], [], marker="s", s=50, facecolors="white", edgecolors="k", label="non-attracting")
    ax.set_xlim(-0.03, 1.03)
    ax.set_ylim(-0.03, 1.03)
    ax.set_xlabel("$r_0$")
    ax.set_ylabel("$r_1$")
    if n == 3:
        ax.set_zlim(-0.03, 1.03)
        ax.set_zlabel("$r_2$")
    else:
        ax.set_aspect("equal")
        ax.grid(alpha=0.3)
    # Outside the unit square/cube, so that no legend covers a trajectory or a fixed point.
    ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.02, 1.0), borderaxespad=0.0)
    if title:
        ax.set_title(title)
    return _save(fig, save)
