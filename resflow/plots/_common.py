"""Shared helpers for the figure functions.

Every figure uses constrained layout, which makes room for legends placed outside the axes
(`legend_outside`, `figure_legend`), so that no legend covers data.
"""

from __future__ import annotations

import os

import matplotlib.pyplot as plt
import numpy as np
from matplotlib.ticker import FuncFormatter, LogLocator, MaxNLocator, NullFormatter


def finish(fig, save: str | os.PathLike | None):
    """Save `fig` to `save` if given (folders created) and return it.

    Figures without a layout engine get `tight_layout`; constrained ones keep theirs
    (tight_layout would ignore their outside legends and colour bars).
    """
    if fig.get_layout_engine() is None:
        fig.tight_layout()
    if save is not None:
        os.makedirs(os.path.dirname(os.path.abspath(save)), exist_ok=True)
        fig.savefig(save, dpi=120)
    return fig


def new_figure(nrows: int = 1, ncols: int = 1, *, size=(5.0, 4.0), **kw):
    """A constrained-layout figure with a grid of axes, `size` per panel (inches)."""
    kw.setdefault("layout", "constrained")
    fig, axes = plt.subplots(nrows, ncols, figsize=(size[0] * ncols, size[1] * nrows), squeeze=False, **kw)
    return fig, axes


LOG_X_FROM = 100
"""Step or layer axes of at least this many steps are logarithmic by default."""


def count_axis(ax, count: int, log_x: bool | None, *, label: str, log_label: str):
    """An x axis of steps or layers 1 … `count`: logarithmic (labelled `log_label`) when `log_x`
    (None: from `LOG_X_FROM` steps), else linear with integer ticks (labelled `label`); a grid."""
    log_x = count >= LOG_X_FROM if log_x is None else log_x
    if log_x:
        ax.set_xscale("log")
        ax.set_xlabel(log_label)
    else:
        integer_ticks(ax, "x")
        ax.set_xlabel(label)
    ax.set_xlim(1, max(count, 2))
    ax.grid(alpha=0.3)
    return log_x


def integer_ticks(ax, axis: str = "x"):
    """Put ticks only on integers of `axis` ("x", "y" or "both"): epochs, layers, depths."""
    for name in ("x", "y") if axis == "both" else (axis,):
        getattr(ax, f"{name}axis").set_major_locator(MaxNLocator(integer=True))


def legend_outside(ax, **kw):
    """The legend of `ax` to the right of its data area (nothing if it has no labelled artist)."""
    if not ax.get_legend_handles_labels()[0]:
        return None
    kw = {"fontsize": 8, "loc": "upper left", "bbox_to_anchor": (1.02, 1.0), "borderaxespad": 0.0} | kw
    return ax.legend(**kw)


def figure_legend(fig, axes, *, where: str = "right", **kw):
    """One legend for the whole figure, outside every panel, from the labelled artists of
    `axes` (one axes or a sequence; repeated labels are shown once).

    `where`: ``"right"`` (a column at the upper right) or ``"bottom"`` (rows under the panels).
    """
    entries = {}
    for ax in np.atleast_1d(axes).ravel():
        for handle, label in zip(*ax.get_legend_handles_labels(), strict=True):
            entries.setdefault(label, handle)
    if not entries:
        return None
    loc = "outside right upper" if where == "right" else "outside lower center"
    kw = {"fontsize": 8, "ncols": 1 if where == "right" else min(len(entries), 3)} | kw
    return fig.legend(list(entries.values()), list(entries), loc=loc, **kw)


def readable_log_axis(ax, axis: str = "x"):
    """Label a log `axis` at 1, 2 and 5 × 10^k as plain numbers ("0.05"), unlabelled minor ticks.

    Matplotlib labels the minor ticks of a log axis spanning less than a decade
    ("3×10⁻¹", "4×10⁻¹", ...), and those labels run into each other.
    """
    for name in ("x", "y") if axis == "both" else (axis,):
        a = getattr(ax, f"{name}axis")
        a.set_major_locator(LogLocator(subs=(1.0, 2.0, 5.0), numticks=8))
        a.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
        a.set_minor_formatter(NullFormatter())
