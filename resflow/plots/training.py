"""Figures of a training run: loss/accuracy curves, the depth history, residuals by class."""

from __future__ import annotations

import numpy as np

from ._common import finish, new_figure

__all__ = ["plot_training_curves", "plot_depth_history", "plot_residuals_by_class"]


def plot_training_curves(history: list[dict], *, save=None):
    """Training/test loss (left, log scale) and accuracy (right) per epoch.

    `history` is `TrainResult.history` (or the lines of metrics.jsonl).
    """
    ep = [r["epoch"] for r in history]
    fig, axes = new_figure(1, 2, size=(4.5, 3.5))
    ax = axes[0, 0]
    ax.plot(ep, [r["loss"] for r in history], label="train")
    ax.plot(ep, [r["test_loss"] for r in history], label="test")
    ax.set(xlabel="epoch", ylabel="cross-entropy", yscale="log", title="loss")
    ax.legend()
    ax = axes[0, 1]
    ax.plot(ep, [r["train_accuracy"] for r in history], label="train")
    ax.plot(ep, [r["test_accuracy"] for r in history], label="test")
    ax.set(xlabel="epoch", ylabel="accuracy", title="accuracy")
    ax.legend()
    return finish(fig, save)


def plot_depth_history(history: list[dict], *, max_depth: int | None = None, save=None):
    """Depth after each epoch (a step plot), with the paper's residual change d_T if logged."""
    ep = [0] + [r["epoch"] for r in history]
    depth = [max_depth if max_depth is not None else history[0]["depth"]]
    depth += [r.get("depth_after_cut", r["depth"]) for r in history]
    fig, axes = new_figure(1, 1, size=(5.0, 3.5))
    ax = axes[0, 0]
    ax.step(ep, depth, where="post", color="C0", label="depth")
    ax.set(xlabel="epoch", ylabel="depth", title="depth history")
    changes = [(r["epoch"], r["residual_change"]) for r in history if "residual_change" in r]
    if changes:
        ax2 = ax.twinx()
        ax2.semilogy(*zip(*changes, strict=True), color="C1", marker=".", lw=0.8, label="mean |r_T - r_{T-1}|/N")
        ax2.set_ylabel("residual change of last layer", color="C1")
    ax.legend(loc="upper right")
    return finish(fig, save)


def plot_residuals_by_class(network, x, y, *, max_samples: int = 500, num_components: int = 6, save=None):
    """A trained `resflow.Network`'s residuals r_t on inputs `x`, coloured by class `y`.

    Shows the `num_components` units whose class means differ most at the last layer, i.e.
    where the classes' transients separate (the first `max_samples` inputs).
    """
    from ..residuals import residuals
    from .network import plot_residual_trajectories

    x, y = x[:max_samples], np.asarray(y[:max_samples])
    r = np.asarray(residuals(network.trunk, network.trajectory(x)))
    class_means = np.stack([r[-1, y == c].mean(0) for c in np.unique(y)])
    comps = np.argsort(-class_means.var(0))[:num_components]
    title = f"{network.trunk.model} residuals by class (depth {network.depth})"
    return plot_residual_trajectories(r, y, components=sorted(comps.tolist()), title=title, save=save)
