"""Shared helpers for the figure functions."""

from __future__ import annotations

import os

import matplotlib.pyplot as plt


def finish(fig, save: str | os.PathLike | None):
    """Tighten the layout, save to `save` if given (folders created), return the figure."""
    fig.tight_layout()
    if save is not None:
        os.makedirs(os.path.dirname(os.path.abspath(save)), exist_ok=True)
        fig.savefig(save, dpi=120)
    return fig


def new_figure(nrows: int = 1, ncols: int = 1, *, size=(5.0, 4.0), **kw):
    """A figure with a grid of axes, `size` per panel (inches)."""
    fig, axes = plt.subplots(nrows, ncols, figsize=(size[0] * ncols, size[1] * nrows), squeeze=False, **kw)
    return fig, axes
