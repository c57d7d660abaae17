"""What every claim reads: the mode, the data sets and the trained runs."""

from __future__ import annotations

from pathlib import Path
from typing import NamedTuple

import jax.numpy as jnp
import numpy as np

from ...data import Dataset
from ...runs import Run
from .modes import Mode

__all__ = ["Context", "Inputs", "inputs"]


class Context(NamedTuple):
    """`mode`; `data` (``circles``, ``digits``, ``images``); `runs` (``"<data>/<model>"`` → one
    `Run` per seed); `out`, the folder of the figures."""

    mode: Mode
    data: dict[str, Dataset]
    runs: dict[str, list[Run]]
    out: Path

    def seeds(self, group: str) -> tuple[int, ...]:
        return self.mode.image_seeds if group.startswith("images") else self.mode.seeds


class Inputs(NamedTuple):
    """Test inputs of one run: `x` (data), `y` (labels), `x0` (lift(x), the trunk's input), `K` classes."""

    x: jnp.ndarray
    y: jnp.ndarray
    x0: jnp.ndarray
    K: int


def inputs(run: Run, data: Dataset, max_samples: int, *, train: bool = False) -> Inputs:
    """The first `max_samples` test (or training) samples of `data` for `run`'s network."""
    xs, ys = (data.x_train, data.y_train) if train else (data.x_test, data.y_test)
    x = jnp.asarray(np.asarray(xs[:max_samples], np.float32))
    return Inputs(x, jnp.asarray(ys[:max_samples], jnp.int32), run.network.embed(x), run.network.n_classes)
