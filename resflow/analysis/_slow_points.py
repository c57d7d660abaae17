"""Slow points of a map: where the state barely moves, fixed point or not.

A fixed point solves F(x) = x. A slow point is a local minimum of the speed

    q(x) = ½ ‖F(x) − x‖²,

found by gradient descent from many starts (as in Sussillo & Barak, Neural Computation 25,
2013, and FixedPointFinder). Where q = 0 it is a fixed point; where q > 0 it is not, but
the dynamics linger there, and the linearisation at it still describes the local flow.

The residual trunk in x-space is the case in point: F(x) − x = h·σ(W x + b) has every
component > 0, so no fixed point exists and every slow point has q > 0. `find_slow_points`
reports those with their q and never calls them fixed points: a point counts as fixed only
when the error bound of `resflow.find_fixed_points` certifies a true fixed point near it
(`resflow.dynamics._core.fixed_point_bound`), not because q is small, since deep in saturation q
rounds to 0 far from any fixed point. Descent that stops on a plateau of q (a saturated unit
holds q near h²/2, the gradient vanishes with σ', and q is concave there, not at a minimum)
is reported as stalled, not as a slow point. `resflow.find_fixed_points` (Newton on F(x) = x) is the tool for true fixed points.
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

from .._checks import all_true, as_float_array, check_choice, check_int, check_positive
from ..dynamics._core import Stability, check_step, fixed_point_bound, fixed_point_tolerances, stability_code

__all__ = ["SlowPoints", "find_slow_points"]

OPTIMISERS = {"adam": optax.adam, "sgd": optax.sgd}


class SlowPoints(NamedTuple):
    """Where descent on q(x) = ½‖F(x) − x‖² ended, one per start.

    A point with ``q > 0`` is **not** a fixed point: the map still moves it by ‖F(x) − x‖ =
    √(2q) per step. Each result is one of three kinds: fixed (`is_fixed`), stalled
    (`stalled`), or else a slow point.

    - `points`: ``(*batch, n)`` the minimisers reached.
    - `q`: ``(*batch,)`` the speed ½‖F(x) − x‖² there.
    - `initial_q`: ``(*batch,)`` q at the starts.
    - `is_fixed`: ``(*batch,)`` a true fixed point lies within `error` of the point, by the
      test of `resflow.find_fixed_points` (`resflow.dynamics._core.fixed_point_bound`):
      ‖F(x) − x‖ ≤ tol·s and e ≤ xtol·s, s = 1 + ‖x‖₂.
    - `eigenvalues`: ``(*batch, n)`` eigenvalues of ∂F/∂x at the points, by modulus descending.
    - `stability`: ``(*batch,)`` `resflow.Stability` codes: all |μ| < 1 attracting, all
      > 1 repelling, else saddle; marginal if some ||μ| − 1| ≤ marginal_tol.
    - `error`: ``(*batch,)`` e = ‖J_F⁻¹‖₂ (‖F(x) − x‖ + ε(‖x‖ + ‖F(x)‖)), J_F = ∂F/∂x − I:
      to first order, the distance to the fixed point Newton would converge to (``inf``
      where J_F is singular). Of order one or more at a slow point that is not fixed.
    - `stalled`: ``(*batch,)`` not fixed, and not a local minimum of q: ∇²q has an
      eigenvalue below −√ε times its largest |eigenvalue|, so q still falls along some
      direction, too slowly for the optimiser. This is the edge of a plateau (a unit
      saturated at σ = 1 holds q near h²/2, ∇q ∝ σ' vanishes, and q is concave towards
      desaturation) or a saddle of q. Neither a fixed point nor a slow point: the map moves
      the point by √(2q) per step.
    """

    points: Float[Array, "*batch n"]
    q: Float[Array, " *batch"]
    initial_q: Float[Array, " *batch"]
    is_fixed: Bool[Array, " *batch"]
    eigenvalues: Complex[Array, "*batch n"]
    stability: Int[Array, " *batch"]
    error: Float[Array, " *batch"]
    stalled: Bool[Array, " *batch"]

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
def _descend(step, starts, lr, num_iters: int, optimiser: str, tol, xtol, marginal_tol):
    opt = OPTIMISERS[optimiser](lr)

    def q_of(x):
        return speed(step, x)

    grad_q = jax.grad(q_of)

    def one(x0):
        def body(carry, _):
            x, state = carry
            updates, state = opt.update(grad_q(x), state, x)
            return (optax.apply_updates(x, updates), state), None

        (x, _), _ = jax.lax.scan(body, (x0, opt.init(x0)), None, length=num_iters)
        bound = fixed_point_bound(step, x, tol, xtol)
        ev = jnp.linalg.eigvals(bound.jacobian)
        ev = ev[jnp.argsort(-jnp.abs(ev))]
        # not a minimum of q: some direction still goes down, however slowly (the edge of a
        # plateau, where a saturating unit makes q concave, or a saddle of q)
        curv = jnp.linalg.eigvalsh(jax.hessian(q_of)(x))
        concave = curv[0] < -jnp.sqrt(jnp.finfo(x.dtype).eps) * jnp.max(jnp.abs(curv))
        return x, 0.5 * bound.residual_norm**2, q_of(x0), bound.passed, ev, bound.error, ~bound.passed & concave

    x, q, q0, fixed, ev, error, stalled = jax.vmap(one)(starts)
    # A slow point is a point, not an unconverged search: its linearisation is classified as is.
    code = stability_code(ev, jnp.ones(ev.shape[:-1], bool), marginal_tol)
    return x, q, q0, fixed, ev, code, error, stalled


def find_slow_points(
    step: Callable[[Array], Array],
    starts: Float[Array, "*batch n"],
    *,
    num_iters: int = 2000,
    learning_rate: float = 1e-2,
    optimiser: str = "adam",
    tol: float | None = None,
    xtol: float | None = None,
    marginal_tol: float = 1e-3,
) -> SlowPoints:
    """Minimise q(x) = ½‖F(x) − x‖² from each start, F = `step`; report q and the linearisation.

    Each start runs `num_iters` steps of an optax optimiser on ∇q(x) = (J(x) − I)ᵀ (F(x) − x)
    (all starts at once: vmap over starts, `lax.scan` over iterations, one compiled call). At
    each result the Jacobian J = ∂F/∂x is formed once, for its eigenvalues and for the test
    of `resflow.find_fixed_points` that decides `is_fixed` (with J_F = J − I and
    s = 1 + ‖x‖₂: ‖F(x) − x‖ ≤ tol·s and e = ‖J_F⁻¹‖₂ (‖F(x) − x‖ + ε(‖x‖ + ‖F(x)‖)) ≤ xtol·s;
    a small q alone is not enough, since it rounds to 0 deep in a saturated sigmoid, far from
    any fixed point), and the Hessian ∇²q is formed for `stalled`: a non-fixed point where
    ∇²q has a direction of negative curvature (below −√ε ‖∇²q‖₂) is not a minimum of q but
    the edge of a plateau or a saddle of q, not a slow point.

    Descent reaches a fixed point only to the optimiser's precision; to certify one that
    comes back not fixed but with small q, polish it with ``resflow.find_fixed_points(step,
    result.points)``.

    **Arguments:**

    - `step`: the map F, ``(n,) -> (n,)``, jax-traceable (e.g. ``trunk.step``).
    - `starts`: ``(*batch, n)`` initial points.
    - `num_iters`: optimiser steps per start, ≥ 1.
    - `learning_rate`: the optimiser's step size, > 0.
    - `optimiser`: ``"adam"`` (default) or ``"sgd"``.
    - `tol`: relative residual ‖F(x) − x‖ ≤ tol·s of a fixed point (default as in
      `resflow.find_fixed_points`: 1e-10 in float64, 100 ε ≈ 1.2e-5 in float32).
    - `xtol`: relative precision e ≤ xtol·s required of a fixed point (default √ε: 1.5e-8
      in float64, 3.5e-4 in float32).
    - `marginal_tol`: eigenvalue moduli within this of 1 make a point marginal.

    **Returns:** a `SlowPoints`: fixed points (`is_fixed`), stalled descents (`stalled`), and
    slow points (neither: q > 0, the map lingers there but does not stop).

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
    tol, xtol = fixed_point_tolerances(starts.dtype, tol, xtol)
    check_positive("marginal_tol", marginal_tol, allow_zero=True)
    if not all_true({"starts": (starts, lambda xp, a: xp.isfinite(a))}):
        raise ValueError("starts must contain only finite values (found NaN or inf)")
    batch, n = starts.shape[:-1], starts.shape[-1]
    lr = jnp.asarray(learning_rate, starts.dtype)
    tols = (jnp.asarray(tol, starts.dtype), jnp.asarray(xtol, starts.dtype))
    out = _descend(step, starts.reshape(-1, n), lr, num_iters, optimiser, *tols, marginal_tol)
    out = jax.tree.map(lambda a: a.reshape(batch + a.shape[1:]), out)
    return SlowPoints(*out)
