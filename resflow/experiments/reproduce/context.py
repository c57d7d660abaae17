"""What every claim reads: the mode, the data sets and the trained runs."""

from __future__ import annotations

from pathlib import Path
from typing import NamedTuple

import jax.numpy as jnp
import numpy as np

from ...training import Dataset
from ...training._runs import Run
from ...trunk._network import Network
from .modes import Mode

__all__ = ["Context", "Inputs", "inputs"]


class Context(NamedTuple):
    """`mode`; `data` (``circles``, ``digits``, ``images``); `runs` (``"<data>/<model>"`` → one
    `Run` per seed); `out`, the folder of the figures; `learned` (group → one bool per seed:
    the seed passed the learned-bar, `verdicts.learned_bar`; None: every seed counts)."""

    mode: Mode
    data: dict[str, Dataset]
    runs: dict[str, list[Run]]
    out: Path
    learned: dict[str, list[bool]] | None = None

    def seeds(self, group: str) -> tuple[int, ...]:
        return self.mode.group_seeds(group)

    def learned_runs(self, group: str, *also: str) -> list[tuple[int, Run]]:
        """``(seed, run)`` of the seeds of `group` that learned, in `group` and in every group
        of `also` (runs of the same seed compared with each other)."""
        keep = [True] * len(self.runs[group])
        for g in (group, *also):
            if self.learned is not None and g in self.learned:
                keep = [k and ok for k, ok in zip(keep, self.learned[g], strict=True)]
        return [(s, r) for s, r, k in zip(self.seeds(group), self.runs[group], keep, strict=True) if k]


class Inputs(NamedTuple):
    """Test inputs of one run: `x` (data), `y` (labels), `x0` (lift(x), the trunk's input), `K` classes."""

    x: jnp.ndarray
    y: jnp.ndarray
    x0: jnp.ndarray
    K: int


def inputs(run: Run | Network, data: Dataset, max_samples: int, *, train: bool = False) -> Inputs:
    """The first `max_samples` test (or training) samples of `data` for `run`'s network (or for
    the `Network` `run`)."""
    net = run if isinstance(run, Network) else run.network
    xs, ys = (data.x_train, data.y_train) if train else (data.x_test, data.y_test)
    x = jnp.asarray(np.asarray(xs[:max_samples], np.float32))
    return Inputs(x, jnp.asarray(ys[:max_samples], jnp.int32), net.embed(x), net.n_classes)
