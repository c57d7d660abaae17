"""Figures for the network-specific dynamics: residual trajectories, interactions, attractors."""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
from matplotlib import colors as mcolors

from ..analysis._attractors import Saturation
from ..analysis._interactions import PairClass, pair_classes
from ..analysis._steady_state import SteadyState
from ..dynamics._fixed_points import FixedPoints
from ._common import figure_legend, finish, integer_ticks, new_figure

__all__ = [
    "plot_residual_trajectories",
    "plot_interaction_matrix",
    "plot_attractor_portrait",
    "plot_steady_state",
    "plot_recurrence_accuracy",
]

_PAIR_MARK = {PairClass.MUTUALISM: "+", PairClass.COMPETITION: "−", PairClass.EXPLOITATION: "±", PairClass.NEUTRAL: "0"}


def _save(fig, save):
    """Save a constrained-layout figure (tight_layout would fight its colour bars and legends)."""
    return finish(fig, save)


def _labels_for(labels, batch):
    if labels is None:
        return np.zeros(batch, int)
    labels = np.asarray(labels)
    if labels.shape != (batch,):
        raise ValueError(f"labels must have shape ({batch},) to match the residuals' batch axis, got {labels.shape}")
    return labels


def class_colors(k: int) -> list:
    """`k` distinct colours from a qualitative colormap (tab10 up to 10 classes, then tab20)."""
    if k <= 10:
        return [plt.get_cmap("tab10")(i) for i in range(k)]
    if k <= 20:
        return [plt.get_cmap("tab20")(i) for i in range(k)]
    return [plt.get_cmap("turbo")(i / (k - 1)) for i in range(k)]


#: What r_t means for each activation, for the note under the residual figures.
_UNITS = {
    "sigmoid": r"$r_t = \sigma(a_t) \in (0, 1)$, the fraction of the unit's full activation",
    "tanh": r"$r_t = \tanh(a_t) \in (-1, 1)$, raw activation units",
    "relu": r"$r_t = \mathrm{relu}(a_t) \geq 0$, raw activation units",
}


def _residual_note(mode: str, activation: str | None, max_lines: int) -> str:
    """The line under the residual panels: what lines and bands are, and r's units."""
    what = (
        "Line: class median over its inputs; band: the middle 50 % of the class (25 %–75 % quantiles)."
        if mode == "band"
        else f"One thin line per input (at most {max_lines} per class)."
    )
    units = _UNITS.get(activation, r"$r_t = \mathrm{act}(a_t)$, raw activation units")
    return f"{what}\nUnits: {units}; $a_t = W x_t + b$ is the pre-activation of layer t."


def _draw_class(ax, layers, rc, color, label, mode, max_lines, band_alpha):
    """One class's residual component ``rc`` ``(T, members)`` on `ax`."""
    if mode == "band":
        q1, med, q3 = np.quantile(rc, [0.25, 0.5, 0.75], axis=1)
        ax.fill_between(layers, q1, q3, color=color, alpha=band_alpha, lw=0)
        ax.plot(layers, med, color=color, lw=1.8, label=label)
        return
    for j in range(min(rc.shape[1], max_lines)):
        ax.plot(layers, rc[:, j], color=color, lw=0.6, alpha=0.5, label=label if j == 0 else None)


def plot_residual_trajectories(
    residuals,
    labels=None,
    *,
    mode: str = "band",
    components=None,
    max_lines: int = 30,
    activation: str | None = None,
    title: str | None = None,
    save=None,
):
    """Residual components r_{t,i} against layer t, one small panel per component, one colour per class.

    A note under the panels says what the lines and bands are and the units of r (from
    `activation`); a single legend of the classes sits to the right, outside the panels.

    **Arguments:**

    - `residuals`: ``(T, batch, n)``.
    - `labels`: ``(batch,)`` classes (None: one class).
    - `mode`: ``"band"`` (per class, the median line and a light band over the interquartile
      range: readable for many inputs and classes) or ``"lines"`` (raw trajectories, at most
      `max_lines` per class, thin).
    - `components`: indices of the components to draw (default: the first min(n, 6)).
    - `activation`: the trunk's activation (``"sigmoid"``, ``"tanh"``, ``"relu"``), for the
      units in the note (None: "raw activation units").
    - `title`, `save`: figure title; path to save to.

    **Returns:** the matplotlib Figure (in band mode: one median line per class on each panel).

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
    colors = class_colors(len(classes))
    ncols = 2 if len(comps) == 4 else min(len(comps), 3)
    nrows = -(-len(comps) // ncols)
    fig, axes = new_figure(nrows, ncols, size=(3.6, 2.6), sharex=True, sharey=True)
    layers = np.arange(T)
    band_alpha = 0.25 if len(classes) <= 4 else 0.12
    for k, c in enumerate(comps):
        ax = axes.flat[k]
        for color, cls in zip(colors, classes, strict=True):
            _draw_class(ax, layers, r[:, lab == cls, c], color, str(cls), mode, max_lines, band_alpha)
        ax.set_title(f"unit {c}", fontsize=9)
        ax.grid(alpha=0.3)
        integer_ticks(ax, "x")
    # The axis follows the range the residuals take ((0, 1) for the logistic, (-1, 1) for
    # tanh, [0, ∞) for relu), never an assumed one.
    if r.min() >= 0.0 and r.max() <= 1.0:
        axes.flat[0].set_ylim(-0.03, 1.03)
    for ax in list(axes.flat)[len(comps) :]:
        ax.set_visible(False)
    for column in axes.T:
        # The lowest drawn panel of each column carries the layer axis (sharex hides the others').
        lowest = [ax for ax in column if ax.get_visible()][-1]
        lowest.set_xlabel("layer t")
        lowest.xaxis.set_tick_params(labelbottom=True)
    for ax in axes[:, 0]:
        ax.set_ylabel("residual $r_{t,i}$")
    figure_legend(fig, axes.flat[0], where="right", title="class" if labels is not None else None)
    fig.supxlabel(_residual_note(mode, activation, max_lines), fontsize=8, ha="left", x=0.01)
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
    fixed_points: FixedPoints | None = None,
    labels=None,
    *,
    max_lines: int = 60,
    title: str | None = None,
    save=None,
):
    """Residual trajectories in the unit square (n = 2) or cube (n = 3), fixed points marked.

    **Arguments:**

    - `residuals`: ``(T, batch, n)`` with n = 2 or 3.
    - `fixed_points`: optional `FixedPoints` with `patterns` (e.g. `resflow.residual_fixed_points`):
      filled markers for attracting patterns, open for the others (corners: squares; free
      components: circles).
    - `labels`: ``(batch,)`` classes for the colours; `max_lines` trajectories drawn at most.
    - `title`: axes title (default "residual trajectories [and fixed points]"); `save`: path to save to.

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
        # Shrunk to a square, the box keeps its left edge where the layout put it (and room for
        # the y label); centred, it would move left past the space the layout left for the label.
        ax.set_anchor("W")
        ax.grid(alpha=0.3)
    # Outside the unit square/cube (a figure legend: the layout makes room for it and the
    # axis labels), so that no legend covers a trajectory or a fixed point.
    figure_legend(fig, ax, where="right")
    ax.set_title(
        title or ("residual trajectories and fixed points" if fixed_points is not None else "residual trajectories")
    )
    return _save(fig, save)


def plot_steady_state(
    steady: SteadyState,
    *,
    depth: int,
    tol: float = 1e-6,
    class_names=None,
    note: str | None = None,
    title: str | None = None,
    save=None,
):
    """Where the residuals settle after `depth` layers of the shared map (`resflow.steady_state`).

    Left: the class-mean final residual mean_{i ∈ c} r_{T−1,i}, one row per non-empty class,
    one column per unit (a heat map with its colour bar; equal rows mean a class-independent
    end state). Right: the last step's movement ‖r_{T−1} − r_{T−2}‖_∞ of every input, sorted,
    on a log scale, against the convergence threshold `tol` (dashed): inputs below it have
    converged. A note under the panels (`note`) says, for instance, what was not computed and why.

    **Arguments:**

    - `steady`: a `SteadyState`.
    - `depth`: T, the layers it was run for (for the labels).
    - `tol`: the threshold `steady_state` used (default its own, 1e-6).
    - `class_names`: K row labels (default "class c").
    - `note`: a line of text under the panels (None: none).
    - `title`, `save`: figure title; path to write the figure to.

    **Returns:** the matplotlib Figure (the heat map's image and the sorted movements' line).

    **Raises:** `ValueError` if `class_names` does not have K entries.
    """
    means = np.asarray(steady.class_means, np.float64)
    K, n = means.shape
    names = [f"class {c}" for c in range(K)] if class_names is None else [str(c) for c in class_names]
    if len(names) != K:
        raise ValueError(f"class_names must have {K} entries (one per class), got {len(names)}")
    shown = [c for c in range(K) if int(np.asarray(steady.class_counts)[c]) > 0 and np.isfinite(means[c]).all()]
    fig, axes = new_figure(1, 2, size=(5.2, max(3.2, 0.3 * len(shown) + 1.8)), width_ratios=[1.4, 1.0])
    heat, move = axes[0]
    lo, hi = (0.0, 1.0) if means[shown].min(initial=0) >= 0 and means[shown].max(initial=1) <= 1 else (None, None)
    im = heat.imshow(means[shown], aspect="auto", cmap="viridis", vmin=lo, vmax=hi, interpolation="nearest")
    fig.colorbar(im, ax=heat, label="class-mean $r_{T-1}$")
    heat.set_yticks(range(len(shown)), [names[c] for c in shown], fontsize=8 if len(shown) <= 20 else 6)
    heat.set_xlabel("unit i")
    dominant = float(steady.dominant_fraction)
    heat.set_title(f"class means after T = {depth} layers (dominant end state: {dominant:.0%} of inputs)", fontsize=9)
    change = np.sort(np.ravel(np.asarray(steady.change, np.float64)))
    # A step of exactly 0 has no place on the log axis: drawn on a floor a decade under the
    # smallest positive step (or tol), and the title says so.
    positive = change[change > 0]
    floor = min(positive.min() if positive.size else tol, tol) / 10
    move.plot(np.arange(1, change.size + 1), np.maximum(change, floor), color="C0", lw=1.6)
    move.axhline(tol, color="k", ls="--", lw=1)
    move.set(yscale="log", xlabel="inputs, sorted", ylabel=r"last step $\|r_{T-1} - r_{T-2}\|_\infty$")
    move.set_ylim(bottom=floor / 2)
    converged = float(np.mean(np.asarray(steady.converged)))
    zeros = f"; {change.size - positive.size} exactly 0, at the bottom" if positive.size < change.size else ""
    move.set_title(f"{converged:.0%} converged (below the dashed tol = {tol:g}){zeros}", fontsize=9)
    move.grid(alpha=0.3)
    integer_ticks(move, "x")
    if note:
        fig.supxlabel(note, fontsize=8, ha="left", x=0.01)
    if title:
        fig.suptitle(title)
    return _save(fig, save)


def plot_recurrence_accuracy(settings: dict[str, dict], *, eps: float | None = 2.0**-23, title=None, save=None):
    """The residual-only recurrence's error against the forward pass, one dot per network.

    For each setting (a column), each network's largest error of `residual_recurrence` is a
    dot: filled where the call gave no warning, a red cross where it emitted a
    `ConditioningWarning`; the grey triangles beside them are the same networks'
    `preactivation_recurrence` errors. Log scale; a dotted line marks `eps`.

    **Arguments:**

    - `settings`: ``{label: numbers}`` in column order, each with per-network lists
      ``errors`` and ``warned_each`` (the same length) and ``preactivation_errors`` (what
      docs/examples/residual_accuracy.py stores per setting).
    - `eps`: a reference level (default float32's machine epsilon), None for none.
    - `title`: axes title.
    - `save`: path to write the figure to.

    **Returns:** the matplotlib Figure (one legend, under the panel).
    """
    fig, axes = new_figure(size=(6.0, 4.0))
    ax = axes[0, 0]
    for i, numbers in enumerate(settings.values()):
        err = np.asarray(numbers["errors"], float)
        warned = np.asarray(numbers["warned_each"], bool)
        pre = np.asarray(numbers["preactivation_errors"], float)
        spread = np.linspace(-0.15, 0.15, len(err)) if len(err) > 1 else np.zeros(len(err))
        x = i - 0.12 + spread
        ax.scatter(x[~warned], err[~warned], s=18, color="C0", label="residual_recurrence, no warning")
        ax.scatter(x[warned], err[warned], s=30, marker="x", color="C3", label="residual_recurrence, warned")
        xp = i + 0.3 + np.linspace(-0.06, 0.06, len(pre)) if len(pre) > 1 else np.full(len(pre), i + 0.3)
        ax.scatter(xp, pre, s=14, marker="^", color="0.55", label="preactivation_recurrence")
    if eps is not None:
        ax.axhline(eps, color="0.4", ls=":", lw=1, label="float32 eps" if eps == 2.0**-23 else f"{eps:g}")
    ax.set_yscale("log")
    ax.set_xticks(range(len(settings)), list(settings))
    ax.set_xlim(-0.6, len(settings) - 0.4)
    ax.set(
        xlabel="initialisation (b_std 0.5 unless given)",
        ylabel="largest |error| over layers and inputs",
        title=title or "float32 recurrences, one dot per network",
    )
    ax.grid(alpha=0.3, axis="y")
    figure_legend(fig, ax, where="bottom")
    return _save(fig, save)
