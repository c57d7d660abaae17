"""Covariant Lyapunov vectors (Ginelli's method) and the Kaplan–Yorke dimension.

The Lyapunov exponents say how fast volumes of each dimension grow; the covariant Lyapunov
vectors (CLVs) say in which directions. CLV j at x_t is the direction v_t^j that the
tangent dynamics carries onto CLV j at the next point, J_t v_t^j ∝ v_{t+1}^j, and that
grows at rate λ_j both forward and backward in time. Unlike the Gram–Schmidt (QR) vectors
they are not orthogonal: a small angle between the unstable and stable directions is a
near-tangency, a sign that the system is close to losing hyperbolicity.

Ginelli's algorithm (Ginelli et al., Phys. Rev. Lett. 99, 130601, 2007):

1. Forward: carry an orthonormal frame along the orbit, J_t Q_t = Q_{t+1} R_t (QR), storing
   Q_t and the upper-triangular R_t.
2. Backward: from a random upper-triangular C_N, iterate C_t = R_t⁻¹ C_{t+1} and normalise
   its columns. C_t converges to the coefficients of the CLVs in the Gram–Schmidt basis:
   v_t = Q_t C_t.

Both passes need a transient: the forward frame converges after a few hundred steps of the
orbit, the backward coefficients after a few hundred steps back from the end. The vectors
are returned on the window in between.

A network has no orbit to spare before or after its T layers. `network_covariant_vectors`
therefore returns the finite-time CLVs of the product of its layer Jacobians, fixed by the
singular vectors of ∂x_T/∂x_0: the same two passes, started from those singular vectors
instead of a random frame and a random C_N.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple

import equinox as eqx
import jax
import jax.numpy as jnp
from jax.scipy.linalg import solve_triangular
from jaxtyping import Array, Float

from .._checks import all_true, as_float_array, check_int
from ._common import check_step, random_frame

__all__ = [
    "CovariantVectors",
    "covariant_lyapunov_vectors",
    "pairwise_angles",
    "subspace_angles",
    "kaplan_yorke_dimension",
]


class CovariantVectors(NamedTuple):
    """Covariant Lyapunov vectors along an orbit window of T points.

    - `vectors`: ``(T, n, k)``, unit columns; ``vectors[t, :, j]`` is CLV j at ``orbit[t]``
      (j = 0 the most expanding), defined up to sign.
    - `angles`: ``(T, k, k)`` principal angle between each pair of CLVs, in [0, π/2]
      (arccos |v_i · v_j|; zero on the diagonal).
    - `exponents`: ``(k,)`` Lyapunov exponents from the forward pass, per step (maps, the
      network) or per unit time (flows), in the CLVs' order.
    - `orbit`: ``(T, n)`` the points (the window's states) the vectors belong to.
    - `times`: ``(T,)`` the step index or time of each point.
    """

    vectors: Float[Array, "T n k"]
    angles: Float[Array, "T k k"]
    exponents: Float[Array, " k"]
    orbit: Float[Array, "T n"]
    times: Array


def pairwise_angles(vectors: Float[Array, "*batch n k"]) -> Float[Array, "*batch k k"]:
    """Principal angles arccos |v_i · v_j| / (‖v_i‖ ‖v_j‖) ∈ [0, π/2] between the columns."""
    v = vectors / jnp.linalg.norm(vectors, axis=-2, keepdims=True)
    cos = jnp.abs(jnp.swapaxes(v, -1, -2) @ v)
    return jnp.arccos(jnp.clip(cos, 0.0, 1.0))


def subspace_angles(vectors: Float[Array, "*batch n k"], num_unstable: int) -> Float[Array, " *batch"]:
    """Smallest principal angle between span(v_1 … v_m) and span(v_{m+1} … v_k), m = `num_unstable`.

    With m the number of positive exponents this is the angle between the unstable and the
    (centre-)stable subspaces; near zero it flags a near-tangency.

    **Raises:** `ValueError` unless 1 ≤ m < k.
    """
    k = vectors.shape[-1]
    m = check_int("num_unstable", num_unstable)
    if m >= k:
        raise ValueError(f"num_unstable must be < k = {k} (both subspaces non-empty), got {m}")
    qa = jnp.linalg.qr(vectors[..., :m])[0]
    qb = jnp.linalg.qr(vectors[..., m:])[0]
    cos = jnp.linalg.svd(jnp.swapaxes(qa, -1, -2) @ qb, compute_uv=False)[..., 0]
    return jnp.arccos(jnp.clip(cos, 0.0, 1.0))


def _normalise_columns(c):
    return c / jnp.linalg.norm(c, axis=-2, keepdims=True)


def ginelli(propagate, state0, q0, c_end, xs_transient, xs_main, num_window: int):
    """Ginelli's two passes. Unchecked.

    `propagate(state, Q, x) -> (state', J Q)` is one step of the tangent dynamics (x: the
    per-step scan input, e.g. a time or a layer). The forward transient runs over
    `xs_transient`; the stored pass over `xs_main`, of which the first `num_window` steps are
    returned and the rest is the backward transient. Returns (V, states, logs, log_sine): V,
    states and logs = log|diag R_t| on the window, and log_sine the smallest log sin of the
    angle between a column of J_t Q_t and the span of the columns before it, over all forward
    steps (near log eps the frame aligned to rounding within one step).
    """

    def forward(carry, x):
        state, Q = carry
        state_next, JQ = propagate(state, Q, x)
        Q_next, R = jnp.linalg.qr(JQ)
        # log sin of the smallest angle between a column of J Q and the span of those before it
        log_sine = jnp.min(jnp.log(jnp.abs(jnp.diagonal(R))) - jnp.log(jnp.linalg.norm(JQ, axis=0)))
        return (state_next, Q_next), (state, Q, R, log_sine)

    carry, (_, _, _, sines_transient) = jax.lax.scan(forward, (state0, q0), xs_transient)
    _, (states, Qs, Rs, sines) = jax.lax.scan(forward, carry, xs_main)

    def backward(C_next, R):
        C = _normalise_columns(solve_triangular(R, C_next, lower=False))
        return C, C

    _, Cs = jax.lax.scan(backward, c_end, Rs, reverse=True)
    V = Qs[:num_window] @ Cs[:num_window]
    logs = jnp.log(jnp.abs(jnp.diagonal(Rs[:num_window], axis1=-2, axis2=-1)))
    log_sine = jnp.min(jnp.concatenate([sines_transient, sines]))
    return V, jax.tree.map(lambda a: a[:num_window], states), logs, log_sine


def end_coefficients(k: int, key, dtype):
    """A random upper-triangular k × k C_N with unit columns (the backward start)."""
    key = jax.random.key(1) if key is None else jax.random.fold_in(key, 1)
    return _normalise_columns(jnp.triu(jax.random.normal(key, (k, k), dtype)) + jnp.eye(k, dtype=dtype))


def clv_result(V, orbit, logs, times, per):
    return CovariantVectors(V, pairwise_angles(V), logs.mean(0) / per, orbit, times)


def _tangent_of(step):
    def propagate(x, Q, _):
        x_next, tangent = jax.linearize(step, x)
        return x_next, jax.vmap(tangent, in_axes=-1, out_axes=-1)(Q)

    return propagate


@eqx.filter_jit
def _map_clv(step, x0, q0, c_end, transient: int, num_steps: int):
    ts = jnp.arange(transient + num_steps + transient)
    V, orbit, logs, _ = ginelli(_tangent_of(step), x0, q0, c_end, ts[:transient], ts[transient:], num_steps)
    return clv_result(V, orbit, logs, ts[transient : transient + num_steps], 1.0)


def frame_inputs(x0, num_vectors, what: str):
    x0 = as_float_array(what, x0)
    if x0.ndim != 1:
        raise ValueError(f"{what} must be a state vector (n,), got shape {x0.shape}; vmap the call for a batch")
    n = x0.shape[0]
    k = n if num_vectors is None else check_int("num_vectors", num_vectors)
    if k > n:
        raise ValueError(f"num_vectors must be <= n = {n}, got {k}")
    return x0, n, k


def covariant_lyapunov_vectors(
    step: Callable[[Array], Array],
    x0: Float[Array, " n"],
    num_steps: int,
    *,
    num_vectors: int | None = None,
    transient: int = 200,
    key: jax.Array | None = None,
) -> CovariantVectors:
    """Covariant Lyapunov vectors of a map x_{t+1} = step(x_t), by Ginelli's method.

    The orbit is run for `transient` steps (forward frame convergence), then `num_steps`
    steps whose CLVs are returned, then `transient` more steps (the backward start). Tangent
    steps are J_t Q = ∂step/∂x(x_t) Q by `jax.linearize`.

    **Arguments:**

    - `step`: the map ``(n,) -> (n,)``, jax-traceable.
    - `x0`: ``(n,)`` initial state.
    - `num_steps`: T ≥ 1, the window's length.
    - `num_vectors`: k ≤ n, the leading CLVs to compute (default n).
    - `transient`: steps before and after the window, ≥ 0 (≈ 10/(λ_j − λ_{j+1}) suffices).
    - `key`: selects the random initial frame and backward start (default fixed keys).

    **Returns:** a `CovariantVectors` for the points x_transient … x_{transient + T − 1}
    (``times`` are those step indices; ``exponents`` per step).

    **Raises:** `TypeError`/`ValueError` for a non-callable step, a step that does not map
    (n,) to (n,), a non-finite or non-vector x0, bad counts.
    """
    x0, n, k = frame_inputs(x0, num_vectors, "x0")
    num_steps = check_int("num_steps", num_steps)
    transient = check_int("transient", transient, minimum=0)
    check_step(step, x0)
    if not all_true({"x0": (x0, lambda xp, a: xp.isfinite(a))}):
        raise ValueError("x0 must contain only finite values (found NaN or inf)")
    q0 = random_frame(n, k, key, x0.dtype)
    return _map_clv(step, x0, q0, end_coefficients(k, key, x0.dtype), transient, num_steps)


def kaplan_yorke_dimension(exponents: Float[Array, "*batch k"]) -> Float[Array, " *batch"]:
    """The Kaplan–Yorke (Lyapunov) dimension D = j + (λ_1 + … + λ_j) / |λ_{j+1}|.

    With the exponents sorted descending, j is the largest count whose partial sum
    λ_1 + … + λ_j is ≥ 0. D = 0 when λ_1 < 0 (a stable fixed point or cycle); D = k when the
    sum of all k exponents is ≥ 0 (no contraction among the given directions, so give the
    full spectrum). Any order is accepted; leading axes are batch axes.

    **Arguments:** `exponents`: ``(*batch, k)`` Lyapunov exponents.

    **Returns:** ``(*batch,)`` dimensions.

    **Raises:** `ValueError` for a scalar or empty input, or one with a NaN (checked unless
    traced); `TypeError` for a non-numeric one. Integer exponents are cast to float.
    """
    try:
        lam = jnp.asarray(exponents)
    except TypeError as e:
        raise TypeError(f"exponents must be an array of numbers, got {type(exponents).__name__}") from e
    if jnp.issubdtype(lam.dtype, jnp.integer):
        lam = lam.astype(jnp.result_type(float))
    lam = as_float_array("exponents", lam)
    if lam.ndim < 1 or lam.shape[-1] < 1:
        raise ValueError(f"exponents must have shape (*batch, k) with k >= 1, got {lam.shape}")
    if not all_true({"exponents": (lam, lambda xp, a: ~xp.isnan(a))}):
        # a NaN would fail every comparison below and come out as the dimension 0
        raise ValueError("exponents must not contain NaN (a failed spectrum has no Kaplan–Yorke dimension)")
    k = lam.shape[-1]
    lam = -jnp.sort(-lam, axis=-1)
    partial = jnp.cumsum(lam, axis=-1)
    # the partial sums rise while exponents are positive and then fall, so {partial >= 0} is a prefix
    j = jnp.sum(partial >= 0, axis=-1)
    idx = jnp.clip(j, 1, k - 1)[..., None]
    s_j = jnp.take_along_axis(partial, idx - 1, axis=-1)[..., 0]
    next_lam = jnp.take_along_axis(lam, idx, axis=-1)[..., 0]
    inner = j + s_j / jnp.abs(jnp.where(j < k, next_lam, 1.0))
    return jnp.where(j == 0, 0.0, jnp.where(j == k, float(k), inner)).astype(lam.dtype)
