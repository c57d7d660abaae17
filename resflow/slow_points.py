"""Slow points of a map: where the state barely moves, fixed point or not.

A fixed point solves F(x) = x. A slow point is a local minimum of the speed

    q(x) = ½ ‖F(x) − x‖²,

found by gradient descent from many starts (as in Sussillo & Barak, Neural Computation 25,
2013, and FixedPointFinder). Where q = 0 it is a fixed point; where q > 0 it is not, but
the dynamics linger there, and the linearisation at it still describes the local flow.

The residual trunk in x-space is the case in point: F(x) − x = h·σ(W x + b) has every
component > 0, so no fixed point exists and every slow point has q > 0. `find_slow_points`
reports those with their q and never calls them fixed points; `resflow.find_fixed_points`
(Newton on F(x) = x) is the tool for true fixed points.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import optax
from jaxtyping import Array, Bool, Complex, Float, Int

from ._checks import all_true, as_float_array, check_choice, check_int, check_positive
from .dynamics import Stability, check_step, stability_code

__all__ = ["SlowPoints", "find_slow_points"]

OPTIMISERS = {"adam": optax.adam, "sgd": optax.sgd}


class SlowPoints(NamedTuple):
    """Local minima of q(x) = ½‖F(x) − x‖², one per start.

    A point with ``q > 0`` is **not** a fixed point: the map still moves it by ‖F(x) − x‖ =
    √(2q) per step. `is_fixed` marks those with q ≤ `tol` (numerically fixed points).

    - `points`: ``(*batch, n)`` the minimisers reached.
    - `q`: ``(*batch,)`` the speed ½‖F(x) − x‖² there.
    - `initial_q`: ``(*batch,)`` q at the starts.
    - `is_fixed`: ``(*batch,)`` q ≤ tol.
    - `eigenvalues`: ``(*batch, n)`` eigenvalues of ∂F/∂x at the points, by modulus descending.
    - `stability`: ``(*batch,)`` `resflow.Stability` codes: all |μ| < 1 attracting, all
      > 1 repelling, else saddle; marginal if some ||μ| − 1| ≤ marginal_tol.
    """

    points: Float[Array, "*batch n"]
    q: Float[Array, " *batch"]
    initial_q: Float[Array, " *batch"]
    is_fixed: Bool[Array, " *batch"]
    eigenvalues: Complex[Array, "*batch n"]
    stability: Int[Array, " *batch"]

    @property
    def labels(self) -> np.ndarray:
        """The stability codes as names (a host array of str)."""
        return np.array([Stability(int(c)).label for c in np.asarray(self.stability).ravel()], dtype=object).reshape(
            np.shape(self.stability)
        )


def speed(step: Callable[[Array], Array], x: Float[Array, " n"]) -> Float[Array, ""]:
    """q(x) = ½ ‖step(x) − x‖². Unchecked."""
    d = step(x) - x
    return 0.5 * jnp.sum(d * d)


@eqx.filter_jit
def _descend(step, starts, lr, num_iters: int, optimiser: str, tol, marginal_tol):
    opt = OPTIMISERS[optimiser](lr)
    grad_q = jax.value_and_grad(lambda x: speed(step, x))

    def one(x0):
        def body(carry, _):
            x, state = carry
            _, g = grad_q(x)
            updates, state = opt.update(g, state, x)
            return (optax.apply_updates(x, updates), state), None

        (x, _), _ = jax.lax.scan(body, (x0, opt.init(x0)), None, length=num_iters)
        ev = jnp.linalg.eigvals(jax.jacfwd(step)(x))
        ev = ev[jnp.argsort(-jnp.abs(ev))]
        return x, speed(step, x), speed(step, x0), ev

    x, q, q0, ev = jax.vmap(one)(starts)
    # A slow point is a point, not an unconverged search: its linearisation is classified as is.
    code = stability_code(ev, jnp.ones(ev.shape[:-1], bool), marginal_tol)
    return x, q, q0, q <= tol, ev, code


def find_slow_points(
    step: Callable[[Array], Array],
    starts: Float[Array, "*batch n"],
    *,
    num_iters: int = 2000,
    learning_rate: float = 1e-2,
    optimiser: str = "adam",
    tol: float | None = None,
    marginal_tol: float = 1e-3,
) -> SlowPoints:
    """Minimise q(x) = ½‖F(x) − x‖² from each start, F = `step`; report q and the linearisation.

    Each start runs `num_iters` steps of an optax optimiser on ∇q(x) = (J(x) − I)ᵀ (F(x) − x)
    (all starts at once: vmap over starts, `lax.scan` over iterations, one compiled call). At
    each result the Jacobian J = ∂F/∂x is formed once for its eigenvalues.

    **Arguments:**

    - `step`: the map F, ``(n,) -> (n,)``, jax-traceable (e.g. ``trunk.step``).
    - `starts`: ``(*batch, n)`` initial points.
    - `num_iters`: optimiser steps per start, ≥ 1.
    - `learning_rate`: the optimiser's step size, > 0.
    - `optimiser`: ``"adam"`` (default) or ``"sgd"``.
    - `tol`: q at or below which a point counts as fixed (default: 1e-20 in float64, 1e-10
      in float32).
    - `marginal_tol`: eigenvalue moduli within this of 1 make a point marginal.

    **Returns:** a `SlowPoints` (q > 0 points are slow points, not fixed points).

    **Raises:** `TypeError`/`ValueError` for a non-callable step or one that does not map
    (n,) to (n,), empty or non-finite starts, bad counts, rates or tolerances, an unknown optimiser.
    """
    starts = as_float_array("starts", starts)
    if starts.ndim < 1:
        raise ValueError(f"starts must have shape (*batch, n), got {starts.shape}")
    if starts.size == 0:
        raise ValueError(f"starts must hold at least one point of at least one dimension, got shape {starts.shape}")
    check_step(step, starts[(0,) * (starts.ndim - 1)])
    check_int("num_iters", num_iters)
    check_positive("learning_rate", learning_rate)
    check_choice("optimiser", optimiser, tuple(OPTIMISERS))
    tol = (1e-20 if starts.dtype == jnp.float64 else 1e-10) if tol is None else tol
    check_positive("tol", tol, allow_zero=True)
    check_positive("marginal_tol", marginal_tol, allow_zero=True)
    if not all_true({"starts": (starts, lambda xp, a: xp.isfinite(a))}):
        raise ValueError("starts must contain only finite values (found NaN or inf)")
    batch, n = starts.shape[:-1], starts.shape[-1]
    lr = jnp.asarray(learning_rate, starts.dtype)
    out = _descend(step, starts.reshape(-1, n), lr, num_iters, optimiser, tol, marginal_tol)
    out = jax.tree.map(lambda a: a.reshape(batch + a.shape[1:]), out)
    return SlowPoints(*out)
