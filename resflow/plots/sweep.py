"""Figures of a sweep (`resflow.sweep`): a result's spread over seeds per grid cell, and the
depth histories of every run overlaid."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from matplotlib.ticker import MaxNLocator

from ._common import figure_legend, finish, integer_ticks, new_figure

__all__ = ["sweep_cells", "plot_sweep_distribution", "plot_sweep_depth_histories"]

_LABELS = {
    "test_accuracy": "test accuracy",
    "train_accuracy": "train accuracy",
    "test_loss": "test loss",
    "depth": "final depth",
    "time": "time per run (s)",
}


def _value_text(value) -> str:
    return f"{value:g}" if isinstance(value, float) else str(value)


def sweep_cells(rows: Sequence[dict], options: Sequence[str]) -> tuple[list[str], list[int]]:
    """The grid cells of a sweep's runs: runs with equal values of `options` share a cell.

    **Arguments:** `rows`: `SweepResult.table()` (one dict per run); `options`: the grid's option
    names (empty: one cell holding every run).

    **Returns:** ``(labels, cell_of_run)``: one label per cell (``"lr=0.01, w_std=2"``, or
    ``"all runs"``) in the order cells first occur, and each run's cell index.

    **Raises:** `KeyError` naming an option a row lacks.
    """
    labels, cell_of_run = [], []
    for i, row in enumerate(rows):
        missing = [o for o in options if o not in row]
        if missing:
            raise KeyError(f"row {i} has no option {missing[0]!r} (its keys: {sorted(row)})")
        label = ", ".join(f"{o}={_value_text(row[o])}" for o in options) or "all runs"
        if label not in labels:
            labels.append(label)
        cell_of_run.append(labels.index(label))
    return labels, cell_of_run


def plot_sweep_distribution(
    rows: Sequence[dict], metric: str, *, options: Sequence[str] = (), ylabel: str | None = None, save=None
):
    """One box per grid cell of `metric` over its runs (seeds), every run drawn as a dot.

    The box spans the quartiles with the median line and whiskers to the furthest run within
    1.5 interquartile ranges; the dots (spread sideways evenly, no randomness) show each run,
    so stalled seeds stand out.

    **Arguments:**

    - `rows`: `SweepResult.table()`.
    - `metric`: the row key to show (``"test_accuracy"``, ``"depth"`` (the final depth), ``"time"``, ...).
    - `options`: the grid's option names, which define the cells (see `sweep_cells`).
    - `ylabel`: the y-axis label (default: a readable name for `metric`).
    - `save`: path to write the figure to.

    **Returns:** the matplotlib Figure (no legend: the cells are the x tick labels).

    **Raises:** `KeyError` naming a metric or option a row lacks.
    """
    labels, cell_of_run = sweep_cells(rows, options)
    if any(metric not in r for r in rows):
        raise KeyError(f"metric {metric!r} is not a key of every row (keys: {sorted(rows[0]) if rows else []})")
    values = [[float(r[metric]) for r, c in zip(rows, cell_of_run, strict=True) if c == k] for k in range(len(labels))]
    fig, axes = new_figure(size=(max(4.0, 0.9 * len(labels) + 1.5), 3.6))
    ax = axes[0, 0]
    positions = np.arange(1, len(labels) + 1)
    ax.boxplot(values, positions=positions, widths=0.5, showfliers=False, medianprops={"color": "C1"})
    for x, v in zip(positions, values, strict=True):
        spread = np.linspace(-0.15, 0.15, len(v)) if len(v) > 1 else np.zeros(1)
        ax.plot(x + spread, v, "o", color="C0", ms=3.5, alpha=0.7)
    ax.set_xticks(positions, labels, rotation=30 if len(labels) > 3 else 0, ha="right" if len(labels) > 3 else "center")
    label = ylabel or _LABELS.get(metric, metric)
    ax.set(xlabel=f"grid cell ({', '.join(options)})" if options else "", ylabel=label)
    ax.set_title(f"{len(rows)} runs: a dot each, boxes = quartiles", fontsize=9)
    if "depth" in metric:
        _integer_axis(ax, [v for cell in values for v in cell])
    ax.grid(alpha=0.3, axis="y")
    return finish(fig, save)


def _integer_axis(ax, values) -> None:
    """Integer y ticks with at least one integer in view: limits half a layer beyond the data
    (a single depth would otherwise get fractional ticks)."""
    ax.set_ylim(min(values) - 0.5, max(values) + 0.5)
    ax.yaxis.set_major_locator(MaxNLocator(integer=True, min_n_ticks=1))


def _depth_after_each_epoch(history: Sequence[dict], start: int | None) -> tuple[list[int], list[int]]:
    """Epochs 0 … E and the depth in force after each (a cut after epoch e shows at e)."""
    epochs = [0] + [r["epoch"] for r in history]
    depths = [start if start is not None else history[0]["depth"]]
    depths += [r.get("depth_after_cut", r["depth"]) for r in history]
    return epochs, depths


def plot_sweep_depth_histories(
    histories: Sequence[Sequence[dict]],
    rows: Sequence[dict],
    *,
    options: Sequence[str] = (),
    max_depth: int | None = None,
    save=None,
):
    """The depth after each epoch of every run, one thin step line per run, coloured by grid cell.

    **Arguments:**

    - `histories`: per run, its `Run.history` (fit's per-epoch records): ``[run.history for run in result]``.
    - `rows`: `SweepResult.table()` (same order), for the cells.
    - `options`: the grid's option names (see `sweep_cells`).
    - `max_depth`: the depth before the first epoch (default: the first record's depth).
    - `save`: path to write the figure to.

    **Returns:** the matplotlib Figure; its legend (one entry per cell) is outside the axes.

    **Raises:** `ValueError` when `histories` and `rows` differ in length.
    """
    if len(histories) != len(rows):
        raise ValueError(f"histories has {len(histories)} runs but rows has {len(rows)}")
    labels, cell_of_run = sweep_cells(rows, options)
    fig, axes = new_figure(size=(5.5, 3.6))
    ax = axes[0, 0]
    drawn = set()
    for history, cell in zip(histories, cell_of_run, strict=True):
        epochs, depths = _depth_after_each_epoch(history, max_depth)
        label = labels[cell] if cell not in drawn else None  # one legend entry per cell
        ax.step(epochs, depths, where="post", color=f"C{cell % 10}", lw=0.8, alpha=0.6, label=label)
        drawn.add(cell)
    ax.set(xlabel="epoch", ylabel="depth (layers)")
    ax.set_title(f"depth of {len(rows)} runs (one line per run)", fontsize=9)
    integer_ticks(ax, "x")
    _integer_axis(ax, [d for h in histories for d in _depth_after_each_epoch(h, max_depth)[1]])
    ax.grid(alpha=0.3)
    figure_legend(fig, ax, where="right")
    return finish(fig, save)
