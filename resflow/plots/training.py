"""Figures of a training run: loss/accuracy curves, the depth history, residuals by class."""

from __future__ import annotations

import numpy as np

from ._common import figure_legend, finish, integer_ticks, new_figure

__all__ = ["plot_training_curves", "plot_depth_history", "plot_residuals_by_class", "plot_timings"]

_CUT = {"color": "C3", "ls": ":", "lw": 1.2}


def plot_training_curves(history: list[dict], *, save=None):
    """Training/test loss (left, log scale) and accuracy (right) per epoch.

    **Arguments:**

    - `history`: `Run.history` (the lines of metrics.jsonl).
    - `save`: path to write the figure to.

    **Returns:** the matplotlib Figure (one legend, under the panels).
    """
    ep = [r["epoch"] for r in history]
    fig, axes = new_figure(1, 2, size=(4.5, 3.3))
    loss_ax, acc_ax = axes[0]
    loss_ax.plot(ep, [r["loss"] for r in history], color="C0", label="train")
    loss_ax.plot(ep, [r["test_loss"] for r in history], color="C1", label="test")
    loss_ax.set(xlabel="epoch", ylabel="cross-entropy", yscale="log", title="loss")
    acc_ax.plot(ep, [r["train_accuracy"] for r in history], color="C0", label="train")
    acc_ax.plot(ep, [r["test_accuracy"] for r in history], color="C1", label="test")
    acc_ax.set(xlabel="epoch", ylabel="accuracy", title="accuracy")
    for ax in axes[0]:
        integer_ticks(ax, "x")
        ax.grid(alpha=0.3)
    figure_legend(fig, loss_ax, where="bottom")
    return finish(fig, save)


def _depth_steps(history: list[dict], max_depth: int | None):
    """Epochs 0 … E and the depth in force after each (a cut after epoch e shows at e)."""
    ep = [0] + [r["epoch"] for r in history]
    depth = [max_depth if max_depth is not None else history[0]["depth"]]
    depth += [r.get("depth_after_cut", r["depth"]) for r in history]
    return ep, depth


def _mark_cuts(axes, history: list[dict]) -> int:
    """A dotted line at every cut on each axes and a dot at the new depth on the first (the
    depth panel); the number of cuts. (No per-cut text: many cuts would pile up.)"""
    cuts = [(r["epoch"], r["depth_after_cut"]) for r in history if "depth_after_cut" in r]
    for e, _ in cuts:
        for ax in axes:
            ax.axvline(e, **_CUT, zorder=1)
    if cuts:
        axes[0].plot(*zip(*cuts, strict=True), "o", color="C3", ms=4, zorder=3)
    return len(cuts)


def _plot_changes(ax, history: list[dict], tol: float | None, warmup: int | None):
    """The logged last-layer change d_T per epoch (log scale) against the threshold `tol`."""
    changes = np.array([(r["epoch"], r["residual_change"]) for r in history if "residual_change" in r])
    ax.semilogy(changes[:, 0], changes[:, 1], color="C1", marker="o", ms=4, lw=1.2, label="measured change $d_T$")
    if tol is not None:
        ax.axhline(tol, color="k", ls="--", lw=1.2, label=f"threshold depth_tol = {tol:g}")
        lo, hi = min(changes[:, 1].min(), tol), max(changes[:, 1].max(), tol)
        ax.set_ylim(lo / 2, hi * 2)  # both the points and the threshold in view
    if warmup:
        ax.axvspan(0, warmup + 0.5, color="0.85", zorder=0, label=f"warm-up ({warmup} epochs): no cuts")
    ax.set(xlabel="epoch", ylabel="$d_T$ (per unit, log scale)")
    ax.set_title(
        r"last-layer change $d_T = \mathrm{mean}\,\|r_{T-1} - r_{T-2}\|_1 / N$: the last layer is cut when $d_T$ < threshold",
        fontsize=9,
    )


def plot_depth_history(
    history: list[dict], *, max_depth: int | None = None, tol: float | None = None, warmup: int | None = None, save=None
):
    """The depth after each epoch and, when logged, the residual change the depth rule measured.

    Top: the depth T (a step plot; a cut after epoch e drops at e, marked and labelled
    "T → T'"). Bottom (only when the history has ``residual_change``): the measured change
    d_T of the last layer on a log scale, against the threshold `tol` (a dashed line); the
    rule removes the last layer when d_T < tol once the warm-up is over. Integer ticks on
    the epoch and depth axes; the legend sits under the panels.

    **Arguments:**

    - `history`: `Run.history` (the lines of metrics.jsonl).
    - `max_depth`: the depth before epoch 1 (default: the first record's depth).
    - `tol`: the rule's threshold ``depth_tol`` (None: not drawn).
    - `warmup`: ``depth_warmup`` epochs without cuts, shaded (None or 0: not drawn).
    - `save`: path to write the figure to.

    **Returns:** the matplotlib Figure (the depth step plot is the first line of its first axes).
    """
    ep, depth = _depth_steps(history, max_depth)
    has_changes = any("residual_change" in r for r in history)
    fig, axes = new_figure(2 if has_changes else 1, 1, size=(7.0, 2.8), sharex=True)
    ax = axes[0, 0]
    ax.step(ep, depth, where="post", color="C0", lw=2, label="depth T")
    cuts = sum("depth_after_cut" in r for r in history)
    plural = "" if cuts == 1 else "s"
    ax.set(ylabel="depth T (layers)", title=f"depth history: {depth[0]} → {depth[-1]} layers, {cuts} cut{plural}")
    ax.set_ylim(min(depth) - 0.7, max(depth) + 0.9)
    if has_changes:
        _plot_changes(axes[1, 0], history, tol, warmup)
    else:
        ax.set_xlabel("epoch")
    if _mark_cuts(axes[:, 0], history):
        ax.plot([], [], **_CUT, marker="o", ms=4, label="cut (after that epoch)")
    for a in axes[:, 0]:
        integer_ticks(a, "x")
        a.grid(alpha=0.3)
    integer_ticks(ax, "y")
    ax.set_xlim(0, ep[-1] + 0.5)
    figure_legend(fig, axes[:, 0], where="bottom")
    return finish(fig, save)


def plot_residuals_by_class(network, x, y, *, max_samples: int = 500, num_components: int = 6, save=None):
    """A trained `resflow.Network`'s residuals r_t on inputs `x`, one colour per class `y`.

    Shows the `num_components` units whose class means differ most at the last layer, i.e.
    where the classes' transients separate (the first `max_samples` inputs): per class the
    median and the interquartile band (see `plot_residual_trajectories`), with the units of
    r from the trunk's activation explained under the panels.

    **Arguments:**

    - `network`: the trained `resflow.Network`.
    - `x`, `y`: inputs ``(batch, dim)`` and their classes ``(batch,)``.
    - `max_samples`, `num_components`: inputs used; panels drawn.
    - `save`: path to write the figure to.

    **Returns:** the matplotlib Figure.
    """
    from ..trunk._residuals import residuals
    from .network import plot_residual_trajectories

    x, y = x[:max_samples], np.asarray(y[:max_samples])
    r = np.asarray(residuals(network.trunk, network.trajectory(x)))
    class_means = np.stack([r[-1, y == c].mean(0) for c in np.unique(y)])
    comps = np.argsort(-class_means.var(0))[:num_components]
    trunk = network.trunk
    title = f"{trunk.model} residuals by class: {len(class_means)} classes, depth {network.depth}"
    return plot_residual_trajectories(
        r, y, components=sorted(comps.tolist()), activation=trunk.activation, title=title, save=save
    )


def plot_timings(comparisons: dict[str, dict[str, dict]], *, unit: str = "s", save=None):
    """Wall times of variants compared side by side, one panel per comparison.

    Each variant is a bar of its warm time (median of repeated calls, compiled code cached)
    and a hollow diamond at its first call (compiling included); the panel's title gives the
    speed-up of the first variant, the second's warm median over the first's (below 1: the
    first is slower).

    **Arguments:**

    - `comparisons`: ``{panel title: {variant: {"median_s": …, "cold_s": …}}}``, each with
      two variants or more (what benchmarks/compiled_loop.py stores under ``times``).
    - `unit`: the time unit of the axis label.
    - `save`: path to write the figure to.

    **Returns:** the matplotlib Figure (one legend, under the panels).
    """
    fig, axes = new_figure(1, len(comparisons), size=(3.6, 3.4))
    for ax, (title, variants) in zip(axes[0], comparisons.items(), strict=True):
        names = list(variants)
        warm = [variants[n]["median_s"] for n in names]
        cold = [variants[n].get("cold_s", np.nan) for n in names]
        x = np.arange(len(names))
        ax.bar(x, warm, width=0.6, color="C0", label="warm call (median)")
        ax.scatter(
            x, cold, marker="D", s=40, facecolors="none", edgecolors="C1", label="first call, compiling included"
        )
        ax.set_xticks(x, [n.replace("_", " ") for n in names])
        ax.set_xlim(-0.6, len(names) - 0.4)
        ax.set_ylim(0, 1.15 * np.nanmax([*warm, *cold]))
        ax.set(xlabel="variant", ylabel=f"wall time ({unit})", title=f"{title}\nspeed-up {warm[1] / warm[0]:.2f}×")
        ax.grid(alpha=0.3, axis="y")
    figure_legend(fig, axes[0], where="bottom")
    return finish(fig, save)
