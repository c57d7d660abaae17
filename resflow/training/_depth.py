"""Depth adaptation: the paper's rule for removing converged last layers, and pruning.

The paper (Lagzi 2021) trains from an arbitrary depth T and, after each epoch,
compares the residuals of the last two layers on the training data,

    d_T = mean_samples ||r_{T-1} − r_{T-2}||_1 / N        (N units; layers 0 … T-1)

and removes the last layer when d_T < tol (0.01: "0.01 per neuron on average"). Shared
weights: the depth just decreases. Untied weights: the last layer's parameters go
(`Trunk.truncate`).

Removing layers T-1, T-2, … does not change the states x_0 … x_{T-1} before them, so the
changes d_k of *every* layer pair come from one trajectory and the rule can be applied
repeatedly in one go (`multi=True`): remove layers while the criterion holds.

Removing a converged ResNet layer t shifts the output by −h r_t ≈ −h r* for every input;
`fold_drift` moves that constant into the readout bias so the logits do not jump at the cut.
"""

from __future__ import annotations

from typing import NamedTuple

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Float

from .._checks import all_true, check_array, check_int, check_positive, check_shape, finite

__all__ = [
    "residual_changes",
    "depth_rule",
    "DepthRule",
    "fold_drift",
    "fold_shift",
    "Plateau",
]


def change_sums(r, weights):
    """Σ_b w_b ||r_k,b − r_{k−1},b||_1 / N for k = 1 … T-1 (shape (T-1,))."""
    diff = jnp.abs(r[1:] - r[:-1]).mean(-1)  # (T-1, batch)
    return diff @ weights


def residual_changes(
    r: Float[Array, "T batch n"], *, weights: Float[Array, " batch"] | None = None
) -> Float[Array, " T_minus_1"]:
    """Per-layer residual change d_k = mean_samples ||r_k − r_{k−1}||_1 / N, k = 1 … T-1 (N = n
    units: the mean absolute change per unit, the paper's "per neuron on average").

    **Arguments:**

    - `r`: residuals r_0 … r_{T-1} (e.g. `resflow.residuals` of a trajectory), ``(T, batch, n)``.
    - `weights`: optional per-sample weights w_b >= 0 with Σ w_b > 0 (e.g. 0 for padding); the
      mean is weighted, Σ_b w_b ||·|| / Σ_b w_b.

    **Returns:** ``(T-1,)``; entry k-1 is d_k, the change from layer k-1 to layer k. The
    paper's criterion for a depth-T network is entry T-2.

    **Raises:** `ValueError` for fewer than two layers, a wrong shape, non-finite values, or
    negative weights / weights summing to 0.
    """
    r = check_shape("r", r, ndim=3)
    if r.shape[0] < 2:
        raise ValueError(f"r must hold >= 2 layers to compare, got shape {r.shape}")
    w = jnp.ones(r.shape[1], r.dtype) if weights is None else check_shape("weights", weights, ndim=1)
    if w.shape[0] != r.shape[1]:
        raise ValueError(f"weights must have shape ({r.shape[1]},), got {w.shape}")

    def usable(xp, a):
        return xp.isfinite(a) & (a >= 0) & (a.sum() > 0)

    if not all_true({"r": (r, finite), "weights": (w, usable)}):
        check_array("r", r, ndim=3)
        check_array("weights", w, ndim=1)
        wn = np.asarray(w)
        raise ValueError(f"weights must be >= 0 with a positive sum, got min {wn.min()} and sum {wn.sum()}")
    return change_sums(r, w) / w.sum()


def depth_rule(changes, depth: int, *, tol: float = 0.01, min_depth: int = 1, multi: bool = False) -> int:
    """The new depth under the paper's rule: `DepthRule.cut` on validated host values.

    With d_k = ``changes[k-1]`` (as returned by `residual_changes` for the current or any
    larger depth): while the current depth T > max(min_depth, 1) and d_{T-1} < tol, remove
    the last layer (T ← T − 1). Without `multi` at most one layer goes per call (the paper);
    with `multi` as many as the criterion allows.

    **Arguments:**

    - `changes`: per-layer changes, length >= depth − 1 (host array).
    - `depth`: the current depth T >= 1.
    - `tol`: threshold > 0 (mean absolute change per unit).
    - `min_depth`: never go below this depth.
    - `multi`: remove several layers in one call.

    **Returns:** the new depth (an int).

    **Raises:** `ValueError` for a too short or non-finite `changes` (NaN must not read as
    "no cut"), depth/min_depth < 1 or tol <= 0.
    """
    depth = check_int("depth", depth)
    min_depth = check_int("min_depth", min_depth)
    check_positive("tol", tol)
    changes = np.asarray(changes)
    if changes.ndim != 1 or len(changes) < depth - 1:
        raise ValueError(f"changes must be 1-D with >= depth - 1 = {depth - 1} entries, got shape {changes.shape}")
    if not np.all(np.isfinite(changes)):
        raise ValueError(f"changes must be finite (NaN/inf: diverged training?), got {changes}")
    return int(_cut(DepthRule(tol, min_depth=min_depth, multi_cut=multi), changes, depth))


def fold_drift(
    bias: Float[Array, " classes"],
    kernel: Float[Array, "n classes"],
    x_old: Float[Array, "batch n"],
    x_new: Float[Array, "batch n"],
) -> Float[Array, " classes"]:
    """Readout bias that absorbs the mean output shift of a cut.

    logits = x_T · kernel + bias. Cutting the trunk from depth T to T' changes the output by
    x_{T'} − x_T, which for converged ResNet layers is ≈ −h Σ_{t=T'}^{T-1} r* for every input;
    the new bias is ``bias + mean_samples(x_T − x_{T'}) · kernel``, exact for the sample mean
    of the logits and up to the spread of x_T − x_{T'} for each sample.

    **Arguments:**

    - `bias`: readout bias ``(classes,)``; `kernel`: readout kernel ``(n, classes)``.
    - `x_old`, `x_new`: trunk outputs x_T and x_{T'} on the same samples, ``(batch, n)`` (a
      ``(1, n)`` row of precomputed sample means works too).

    **Returns:** the new bias ``(classes,)``.

    **Raises:** `ValueError` for mismatched shapes or non-finite values.
    """
    arrays = {"bias": (bias, 1), "kernel": (kernel, 2), "x_old": (x_old, 2), "x_new": (x_new, 2)}
    arrays = {name: check_shape(name, a, ndim=nd) for name, (a, nd) in arrays.items()}
    bias, kernel, x_old, x_new = arrays.values()
    if x_new.shape != x_old.shape:
        raise ValueError(f"x_new must have the shape of x_old {x_old.shape}, got {x_new.shape}")
    if kernel.shape != (x_old.shape[1], bias.shape[0]):
        raise ValueError(
            f"kernel must have shape (n, classes) = ({x_old.shape[1]}, {bias.shape[0]}) from x_old and bias, "
            f"got {kernel.shape}"
        )
    if not all_true({name: (a, finite) for name, a in arrays.items()}):
        for name, a in arrays.items():
            check_array(name, a)
    return fold_shift(bias, kernel, jnp.mean(x_old, axis=0), jnp.mean(x_new, axis=0))


def fold_shift(bias, kernel, mean_old, mean_new):
    """The kernel of `fold_drift` on sample means: ``bias + (mean_old − mean_new) · kernel``.
    Pure `jax.numpy`, unchecked (used inside the compiled training loop)."""
    return bias + (mean_old - mean_new) @ kernel


class Plateau(NamedTuple):
    """The loss history the plateau test needs, in fixed size (a carry of the compiled loop).

    With p = ``depth_plateau`` and the training losses l_1 … l_n so far: `window` holds the
    last p of them, ``(p,)`` (+inf where n < p), `best` = min(l_1 … l_{n−p}) (+inf while
    n ≤ p).
    """

    window: Float[Array, " p"]
    best: Float[Array, ""]

    @classmethod
    def start(cls, losses, patience: int, dtype) -> Plateau:
        """The `Plateau` of a host list of losses (a fresh or resumed run). Exact: no arithmetic."""
        losses = np.asarray(losses, np.float64)
        if patience == 0:
            return cls(jnp.zeros((0,), dtype), jnp.asarray(np.inf, dtype))
        recent = losses[-patience:] if len(losses) else losses
        window = np.concatenate([np.full(patience - len(recent), np.inf), recent])
        earlier = losses[: max(len(losses) - patience, 0)]
        return cls(jnp.asarray(window, dtype), jnp.asarray(np.min(earlier, initial=np.inf), dtype))

    def push(self, loss) -> Plateau:
        """The `Plateau` after one more loss (pure `jax.numpy`)."""
        window, best = self
        if window.shape[0] == 0:
            return self
        loss = jnp.asarray(loss, window.dtype)
        return Plateau(jnp.concatenate([window[1:], loss[None]]), jnp.minimum(best, window[0]))


class DepthRule(eqx.Module):
    """Depth adaptation as one value: the paper's rule, its warm-up and plateau gates, and
    drift folding (pure `jax.numpy`; jit- and vmap-able, no host reads; unchecked).

    **Fields:** `tol` (an array leaf: traced, so a sweep vmaps over it) and, static,
    `min_depth`, `warmup` (epochs before the first cut), `plateau` (p > 0: cut only when the
    training loss stalled for p epochs; the length of `Plateau.window`), `multi_cut` (several
    layers per epoch) and `fold_drift` (move a cut's mean output shift into the readout bias;
    applied by the training engine).
    """

    tol: Float[Array, ""]
    min_depth: int = eqx.field(static=True, default=1)
    warmup: int = eqx.field(static=True, default=0)
    plateau: int = eqx.field(static=True, default=0)
    multi_cut: bool = eqx.field(static=True, default=False)
    fold_drift: bool = eqx.field(static=True, default=False)

    def cut(self, changes: Float[Array, " L"], depth) -> jax.Array:
        """The paper's rule alone. With floor = max(min_depth, 1) and d_k = ``changes[k−1]``:

        - ``multi_cut=False``: T − 1 if T > floor and d_{T−1} = changes[T−2] < tol, else T;
        - ``multi_cut=True``: the largest T' in (floor, T] with changes[T'−2] ≥ tol (the first
          layer, counted from the end, that still moves), else floor; T itself when T ≤ floor.

        A NaN change compares as "not below tol", so it never cuts (`depth_rule` validates).

        **Returns:** the new depth, a ``jnp`` integer scalar.
        """
        changes = jnp.asarray(changes)
        depth = jnp.asarray(depth)
        floor = max(self.min_depth, 1)
        below = changes < self.tol
        if changes.shape[0] == 0:  # depth ≤ 1: nothing to compare (static shape, so no traced branch)
            return depth
        if not self.multi_cut:
            last = jnp.take(below, jnp.maximum(depth - 2, 0), mode="clip")
            return jnp.where((depth > floor) & last, depth - 1, depth)
        ds = jnp.arange(2, changes.shape[0] + 2)  # entry j decides whether layer d = j + 2 goes
        moving = (ds > floor) & (ds <= depth) & ~below
        return jnp.minimum(depth, jnp.maximum(floor, jnp.max(jnp.where(moving, ds, 0), initial=0)))

    def __call__(self, changes, depth, n_epochs, plateau: Plateau) -> jax.Array:
        """The depth after an epoch (depth adaptation on).

        With n = `n_epochs` epochs trained (the last one just now) and d_k = ``changes[k−1]``
        the residual changes of the current parameters: no cut at depth 1, while n ≤ `warmup`,
        or (with a plateau window of p > 0 losses) while min(last p losses) ≤ 0.99 · min(earlier
        losses) (``plateau.best`` is +inf until n > p, so no cut then); otherwise `cut`.

        **Returns:** the new depth, a ``jnp`` integer scalar (≤ `depth`).
        """
        allowed = (jnp.asarray(n_epochs) > self.warmup) & (jnp.asarray(depth) > 1)
        if plateau.window.shape[0] > 0:
            allowed &= jnp.min(plateau.window) > 0.99 * plateau.best
        return jnp.where(allowed, self.cut(changes, depth), depth)


# The rule is an argument (a pytree: its static options key the program), so equal rules share
# one compiled program per length of `changes`.
_cut = jax.jit(lambda rule, changes, depth: rule.cut(changes, depth))
