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
from typing import Any, NamedTuple

import diffrax
import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jax.scipy.linalg import solve_triangular
from jaxtyping import Array, Float

from .._checks import all_true, as_float_array, check_int, check_positive
from ..analysis._jacobians import state_product
from ..continuous._lyapunov import check_frame_angle, flow_options, qr_intervals, solver_failures, variational_solve
from ..continuous._solve import DEFAULT_SOLVER
from ..trunk._activations import get_activation
from ..trunk._trunk import Trunk, apply_layer, check_depth, check_state, check_trunk
from ._common import check_step, check_vector_field, random_frame

__all__ = [
    "CovariantVectors",
    "covariant_lyapunov_vectors",
    "covariant_lyapunov_vectors_flow",
    "network_covariant_vectors",
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


def _end_coefficients(k: int, key, dtype):
    """A random upper-triangular k × k C_N with unit columns (the backward start)."""
    key = jax.random.key(1) if key is None else jax.random.fold_in(key, 1)
    return _normalise_columns(jnp.triu(jax.random.normal(key, (k, k), dtype)) + jnp.eye(k, dtype=dtype))


def _result(V, orbit, logs, times, per):
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
    return _result(V, orbit, logs, ts[transient : transient + num_steps], 1.0)


def _frame_inputs(x0, num_vectors, what: str):
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
    x0, n, k = _frame_inputs(x0, num_vectors, "x0")
    num_steps = check_int("num_steps", num_steps)
    transient = check_int("transient", transient, minimum=0)
    check_step(step, x0)
    if not all_true({"x0": (x0, lambda xp, a: xp.isfinite(a))}):
        raise ValueError("x0 must contain only finite values (found NaN or inf)")
    q0 = random_frame(n, k, key, x0.dtype)
    return _map_clv(step, x0, q0, _end_coefficients(k, key, x0.dtype), transient, num_steps)


@eqx.filter_jit
def _flow_clv(vector_field, y0, args, q0, c_end, t_start, dt, transient: int, num: int, solver, controller, dt0):
    ts = t_start + dt * jnp.arange(transient + num + transient, dtype=y0.dtype)

    def propagate(y, Q, t0):
        return variational_solve(
            vector_field, t0, t0 + dt, y, Q, args, solver=solver, stepsize_controller=controller, dt0=dt0
        )

    V, orbit, logs, log_sine = ginelli(propagate, y0, q0, c_end, ts[:transient], ts[transient:], num)
    return _result(V, orbit, logs, ts[transient : transient + num], dt), log_sine


def covariant_lyapunov_vectors_flow(
    vector_field: Callable[[Any, Array, Any], Array],
    y0: Float[Array, " n"],
    t1: float,
    *,
    dt: float = 0.1,
    num_vectors: int | None = None,
    transient: float = 20.0,
    args: Any = None,
    key: jax.Array | None = None,
    solver: diffrax.AbstractSolver = DEFAULT_SOLVER,
    stepsize_controller: diffrax.AbstractStepSizeController | None = None,
    dt0: float | None = None,
) -> CovariantVectors:
    """Covariant Lyapunov vectors of a flow dy/dt = f(t, y, args), by Ginelli's method.

    The map is the flow over one interval dt (state and tangent frame integrated together,
    as in `resflow.ode_lyapunov_spectrum`). The window [0, t1] is preceded and followed by
    `transient` time units; CLVs are returned at the window's N = round(t1/dt) interval
    starts. Along a flow one CLV (for a bounded non-fixed orbit) is the flow direction f(y)
    itself, with exponent 0.

    **Arguments:**

    - `vector_field`, `args`, `solver`, `stepsize_controller`, `dt0`: as
      `resflow.ode_lyapunov_spectrum` (default Tsit5 under
      ``diffrax.PIDController(rtol=1e-8, atol=1e-10)``).
    - `y0`: ``(n,)`` initial state (at time 0, the start of the forward transient).
    - `t1`: the window's length (> 0).
    - `dt`: interval between QR steps (and between returned points), a finite number with
      0 < dt ≤ t1, short enough that the frame's columns do not align to rounding within one
      interval: dt·(λ_1 − λ_k) ≲ 29 in float64, ≲ 9 in float32 (checked).
    - `num_vectors`: k ≤ n (default n).
    - `transient`: time before and after the window, ≥ 0.
    - `key`: selects the random initial frame and backward start.

    **Returns:** a `CovariantVectors` (``times`` the interval start times; ``exponents``
    per unit time).

    **Raises:** `TypeError`/`ValueError` as `resflow.ode_lyapunov_spectrum`: among them a
    `ValueError` naming dt for a dt that is not a finite number in (0, t1], or one so long
    that the frame's columns aligned to rounding in some interval (the backward pass would
    divide by a rounding-level R_jj; this check reads one number and is skipped under
    `jax.jit`); `RuntimeError` naming the solver's reason when the integration fails.
    """
    y0, n, k = _frame_inputs(y0, num_vectors, "y0")
    check_vector_field(vector_field, y0, args)
    num, step = qr_intervals(dt, 0.0, t1)
    check_positive("transient", transient, allow_zero=True)
    transient_steps = round(float(transient) / step)
    if not all_true({"y0": (y0, lambda xp, a: xp.isfinite(a))}):
        raise ValueError("y0 must contain only finite values (found NaN or inf)")
    solver, controller, dt0, options = flow_options(solver, stepsize_controller, dt0, step, y0.dtype)
    q0 = random_frame(n, k, key, y0.dtype)
    c_end = _end_coefficients(k, key, y0.dtype)
    span = (2 * transient_steps + num) * step
    what = f"vector_field from y0 over [0, {span:.6g}] ({options}, QR intervals of length {step:.3g})"
    with solver_failures("covariant_lyapunov_vectors_flow", what):
        result, log_sine = jax.block_until_ready(
            _flow_clv(
                vector_field,
                y0,
                args,
                q0,
                c_end,
                0.0,
                jnp.asarray(step, y0.dtype),
                transient_steps,
                num,
                solver,
                controller,
                dt0,
            )
        )
    check_frame_angle(log_sine, dt, y0.dtype)
    return result


def layer_tangent(trunk: Trunk, W, b, x, Q):
    """(x_{t+1}, J_t Q) for one layer, from the analytic state Jacobian. Unchecked.

    resnet: J = I + h·diag(act'(a)) W; mlp: J = diag(act'(a)) W, with a = W x + b. One matrix
    product per layer, no n × n Jacobian.
    """
    d = get_activation(trunk.activation).grad(W @ x + b)
    return apply_layer(trunk, W, b, x), state_product(W, d, Q, trunk.h, trunk.model, False)


def _network_layers(trunk: Trunk, depth: int):
    """(scan inputs, layer -> (W_t, b_t)) for the first `depth` layers. Unchecked."""
    if trunk.shared:
        return jnp.arange(depth), lambda _: (trunk.W, trunk.b)
    return (trunk.W[:depth], trunk.b[:depth]), lambda layer: layer


@eqx.filter_jit
def _network_clv(trunk, x0, depth: int, k: int, m: int):
    """Finite-time CLVs of the `depth`-layer product, m ≥ k columns carried, k returned."""
    xs, weights = _network_layers(trunk, depth)
    act = get_activation(trunk.activation)

    # the whole Jacobian M = J_{T-1} ... J_0 up to a scale (rescaled each layer against overflow)
    def product(carry, layer):
        x, M = carry
        W, b = weights(layer)
        d = act.grad(W @ x + b)
        M = state_product(W, d, M, trunk.h, trunk.model, False)
        return (apply_layer(trunk, W, b, x), M / jnp.linalg.norm(M)), d

    (_, M), ds = jax.lax.scan(product, (x0, jnp.eye(x0.shape[0], dtype=x0.dtype)), xs)
    U = jnp.linalg.svd(M)[0][:, :m]

    # The explicit product keeps a singular vector only to about eps·σ_1/(σ_j − σ_{j+1}); one
    # adjoint QR pass, Mᵀ U = V Σ, brings the right singular vectors back to working accuracy
    # where the spread is large (each span is pulled toward V by σ_{j+1}/σ_j).
    def adjoint(P, layer_d):
        layer, d = layer_d
        return jnp.linalg.qr(state_product(weights(layer)[0], d, P, trunk.h, trunk.model, True))[0], None

    V, _ = jax.lax.scan(adjoint, U, (xs, ds), reverse=True)

    def propagate(x, Q, layer):
        return layer_tangent(trunk, *weights(layer), x, Q)

    # Forward from Q_0 = V gives Q_T ≈ U and R(0, T) ≈ Σ diagonal, so the backward pass starts
    # from C_T = I: v_t ∝ M(t, T)⁻¹ u_j = M(0, t) v_j / σ_j.
    eye = jnp.eye(m, dtype=x0.dtype)
    vecs, orbit, logs, _ = ginelli(propagate, x0, V, eye, jax.tree.map(lambda a: a[:0], xs), xs, depth)
    exponents = logs.mean(0)
    return _result(vecs[..., :k], orbit, logs[:, :k], jnp.arange(depth), 1.0), exponents


def network_covariant_vectors(
    trunk: Trunk,
    x0: Float[Array, " n"],
    *,
    depth: int | None = None,
    num_vectors: int | None = None,
) -> CovariantVectors:
    """Covariant Lyapunov vectors of the T-layer network along one input's path x_0 … x_{T−1}.

    A network is a finite product of layer Jacobians J_t = ∂x_{t+1}/∂x_t, so its CLVs are the
    finite-time ones of that product (Kuptsov & Parlitz, J. Nonlinear Sci. 22, 727, 2012),
    a property of the network and the input alone. With M(s, t) = J_{t−1} ⋯ J_s and the
    singular value decomposition of the whole network's Jacobian
    M(0, T) = ∂x_T/∂x_0 = U diag(σ_0 > σ_1 > …) Vᵀ, CLV j at layer t is

        v_t^j ∝ M(0, t) V_j ∝ M(t, T)⁻¹ U_j,

    the one direction in both the image of the j + 1 most expanded input directions
    M(0, t)·span(V_0 … V_j) and the preimage of the n − j least expanded output directions
    {w : M(t, T) w ∈ span(U_j … U_{n−1})}. So v_0^j = V_j, J_t v_t^j ∝ v_{t+1}^j exactly, the
    exponents λ_j = log(σ_j)/T are the network's finite-time Lyapunov exponents in descending
    order, and away from both ends (a few times 1/(λ_j − λ_{j+1}) layers) the vectors approach
    the asymptotic CLVs of the orbit. Computed by a QR pass forward from V and Ginelli's
    backward pass from U (stable over long products), with V from the SVD of the product
    polished by one adjoint QR pass; the tangent steps use J_t Q = Q + h·act'(a_t) ⊙ (W_t Q)
    (resnet) without forming J_t.

    **Arguments:**

    - `trunk`: a `Trunk` (shared or untied, resnet or mlp).
    - `x0`: ``(n,)`` one input, of the trunk's dtype (vmap the call for a batch).
    - `depth`: layers T (required for shared weights; default all untied layers).
    - `num_vectors`: k ≤ n, the leading CLVs to compute (default n).

    **Returns:** a `CovariantVectors` at layers t = 0 … T − 1 (``exponents`` per layer,
    descending).

    **Raises:** `TypeError`/`ValueError` for a non-trunk, a bad depth, an x0 that is not a
    finite ``(n,)`` vector of the trunk's dtype, k outside [1, n]; `ValueError` when the
    vectors are not defined: two of σ_0 … σ_k (σ_k only for k < n) agree to within
    log(σ_j/σ_{j+1}) < √eps of the dtype, or one is 0 (a singular Jacobian). This check reads
    the exponents once and is skipped under `jax.jit`/`jax.vmap`, where the returned
    exponents show it (T·(λ_j − λ_{j+1}) ≥ √eps).
    """
    trunk = check_trunk(trunk)
    depth = check_depth(trunk, depth)
    x0 = check_state(trunk, x0)
    if x0.ndim != 1:
        raise ValueError(f"x0 must be one input (n,), got shape {x0.shape}; vmap the call for a batch")
    _, n, k = _frame_inputs(x0, num_vectors, "x0")
    res, exponents = _network_clv(trunk, x0, depth, k, min(k + 1, n))
    tol = float(jnp.sqrt(jnp.finfo(x0.dtype).eps))

    def defined(xp, e):
        return xp.isfinite(e).all() & (depth * (e[:-1] - e[1:]) >= tol).all()

    if not all_true({"exponents": (exponents, defined)}):
        e = depth * np.asarray(exponents, np.float64)
        gaps = np.nan_to_num(e[:-1] - e[1:], nan=0.0)
        j = int(np.argmin(gaps)) if gaps.size else 0
        raise ValueError(
            f"the covariant vectors of this {depth}-layer network are not defined at num_vectors={k}: "
            f"the singular values of ∂x_T/∂x_0 number {j} and {j + 1} have log σ = {e[j]:.3g} and "
            f"{e[min(j + 1, e.size - 1)]:.3g} (a gap below √eps = {tol:.1e}, or a singular Jacobian); "
            "ask for fewer vectors, use float64 (trunk.astype(jnp.float64)), or change the depth or the input"
        )
    return res


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
