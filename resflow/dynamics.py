"""Generic dynamics tools for any JAX map ``step(x) -> x_next`` on R^n.

Core (matrix-free Lyapunov spectrum, the building block of every Lyapunov routine)::

    lyapunov_spectrum_from_products(
        jvp_fn, num_steps, *, n, num_exponents=None, init_state=None, key=None,
        initial_q=None, dtype=None, return_running=False,
    ) -> LyapunovResult(exponents, running, final_state)

    stateless  (init_state is None):  jvp_fn(t, Q) -> J_t @ Q
    stateful   (init_state given):    jvp_fn(t, state, Q) -> (state_next, J_t @ Q)

with ``t`` a traced int32 step index 0 … num_steps−1 and ``Q`` of shape ``(n, k)``.

Built on it:

- `lyapunov_spectrum(step, x0, num_steps, ...)` — orbit of `step` from x0, J_t Q by
  `jax.linearize` (J is never formed).
- `lyapunov_spectrum_from_jacobians(jacobians, ...)` — a stored sequence of Jacobians.

Also `jacobian_spectrum` (eigenvalues of d step/dx), `find_fixed_points` (batched damped
Newton / Levenberg–Marquardt on F(x) = step(x) − x, with stability of each point) and
`unique_fixed_points` (host-side deduplication of many starts).
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Bool, Complex, Float, Int

from ._checks import check_array, check_int, check_positive

__all__ = [
    "Spectrum",
    "jacobian_spectrum",
    "LyapunovResult",
    "lyapunov_spectrum_from_products",
    "lyapunov_spectrum",
    "lyapunov_spectrum_from_jacobians",
    "STABILITY_LABELS",
    "FixedPoints",
    "find_fixed_points",
    "unique_fixed_points",
]


# --------------------------------------------------------------------------------------------
# validation helpers


def _check_callable(name: str, fn) -> None:
    if not callable(fn):
        raise TypeError(f"{name} must be a callable, got {type(fn).__name__}")


def _check_step(step, x: jax.Array) -> None:
    """`step` is callable and maps an (n,) state to an (n,) state (checked by abstract eval)."""
    _check_callable("step", step)
    x1 = jax.ShapeDtypeStruct(x.shape[-1:], x.dtype)
    try:
        out = jax.eval_shape(step, x1)
    except Exception as e:  # the user's map failed on an (n,) input: say so, keep the cause
        raise ValueError(f"step must map an array of shape {x1.shape} to the same shape; calling it failed: {e}") from e
    if not hasattr(out, "shape") or out.shape != x1.shape:
        got = getattr(out, "shape", type(out).__name__)
        raise ValueError(f"step must return an array of the input shape {x1.shape}, got {got}")


def _num_exponents(num_exponents, n: int) -> int:
    if num_exponents is None:
        return n
    k = check_int("num_exponents", num_exponents, minimum=1)
    if k > n:
        raise ValueError(f"num_exponents must be <= n = {n}, got {k}")
    return k


def _sort_by_modulus(ev: jax.Array) -> jax.Array:
    order = jnp.argsort(-jnp.abs(ev), axis=-1, stable=True)
    return jnp.take_along_axis(ev, order, axis=-1)


def _batched(fn, x: jax.Array, core_ndim: int = 1):
    """Apply `fn` on the trailing `core_ndim` axes of `x`, vmapped over any leading axes."""
    for _ in range(x.ndim - core_ndim):
        fn = jax.vmap(fn)
    return fn(x)


def _compiled_per_step(build):
    """Memoise ``build(step, *static) -> jitted fn`` so repeated calls with the same `step`
    object (and static options) reuse one compilation instead of retracing a fresh closure.
    Unhashable callables (e.g. modules holding arrays) are built afresh each time."""
    cached = functools.lru_cache(maxsize=64)(build)

    def get(step, *static):
        try:
            hash((step, *static))
        except TypeError:
            return build(step, *static)
        return cached(step, *static)

    return get


# --------------------------------------------------------------------------------------------
# Jacobian spectrum


class Spectrum(NamedTuple):
    """Eigenvalues of a Jacobian, sorted by modulus (largest first), and the Jacobian itself."""

    eigenvalues: Complex[Array, "*batch n"]
    jacobian: Float[Array, "*batch n n"]


def _eigvals_sorted(J: jax.Array) -> jax.Array:
    return _sort_by_modulus(jnp.linalg.eigvals(J))


def jacobian_spectrum(step: Callable[[Array], Array], x: Float[Array, "*batch n"]) -> Spectrum:
    """Eigenvalues of the Jacobian J = ∂step/∂x at `x`, sorted by modulus descending.

    J is built with `jax.jacfwd` (n JVPs) and diagonalised with `jnp.linalg.eigvals`.
    Eigenvalue multipliers |μ| < 1 contract, |μ| > 1 expand; at a fixed point they decide
    stability. Works under `jax.jit`/`jax.vmap`. `eigvals` of a non-symmetric matrix is a
    LAPACK ``geev`` call: on CPU it runs inside jit; on NVIDIA GPUs JAX uses cuSOLVER ``geev``
    (cuSOLVER ≥ 11.7.1) or a hybrid kernel that copies the matrix to host LAPACK.

    **Arguments:**

    - `step`: a map R^n → R^n acting on a single state of shape ``(n,)``.
    - `x`: the point, shape ``(n,)``, or a batch ``(*batch, n)`` (vmapped).

    **Returns:** `Spectrum(eigenvalues (*batch, n) complex, jacobian (*batch, n, n))`.
    Ties in modulus (complex-conjugate pairs) keep LAPACK's order.

    **Raises:** `TypeError` if `step` is not callable or `x` not a float array;
    `ValueError` if `step` does not map ``(n,)`` to ``(n,)`` or `x` is not finite.
    """
    x = check_array("x", x)
    _check_step(step, x)

    return _jacobian_spectrum_fn(step)(x)


@_compiled_per_step
def _jacobian_spectrum_fn(step):
    def one(xi):
        J = jax.jacfwd(step)(xi)
        return Spectrum(_eigvals_sorted(J), J)

    return jax.jit(lambda x: _batched(one, x))


# --------------------------------------------------------------------------------------------
# Lyapunov spectrum (Benettin / QR)


class LyapunovResult(NamedTuple):
    """Lyapunov exponents in nats per step, largest first.

    - `exponents`: ``(k,)``, λ_j = (1/T) Σ_t log|R_t[j, j]|, sorted descending.
    - `running`: ``(T, k)`` finite-time estimates, ``running[t]`` after t + 1 steps (its
      last row equals `exponents`; each row sorted descending), or ``None`` unless ``return_running=True``.
    - `final_state`: the carried state after the last step (stateful `jvp_fn`; the orbit point
      x_{burn_in + T} for `lyapunov_spectrum`), ``None`` for a stateless `jvp_fn`.
    """

    exponents: Float[Array, "*batch k"]
    running: Float[Array, "*batch T k"] | None
    final_state: Any = None


def _sort_descending(x: jax.Array) -> jax.Array:
    return -jnp.sort(-x, axis=-1)


def _initial_frame(n: int, k: int, key, initial_q, dtype) -> jax.Array:
    if initial_q is not None:
        if key is not None:
            raise ValueError("give at most one of key and initial_q")
        q0 = check_array("initial_q", initial_q, ndim=2)
        if q0.shape != (n, k):
            raise ValueError(f"initial_q must have shape (n, num_exponents) = {(n, k)}, got {q0.shape}")
        q0 = q0.astype(dtype)
    else:
        # A generic frame: with the identity, a diagonal map would keep e_1 … e_k and miss
        # faster directions. key=None is a fixed key, so results are still reproducible.
        # Drawing all n columns and keeping k makes a k-exponent run reproduce the first k
        # exponents of the full run with the same key exactly (QR is column-nested).
        key = jax.random.key(0) if key is None else key
        q0 = jax.random.normal(key, (n, n), dtype)[:, :k]
    q, r = jnp.linalg.qr(q0)
    return q


def lyapunov_spectrum_from_products(
    jvp_fn: Callable,
    num_steps: int,
    *,
    n: int,
    num_exponents: int | None = None,
    init_state: Any = None,
    key: jax.Array | None = None,
    initial_q: Float[Array, "n k"] | None = None,
    dtype=None,
    return_running: bool = False,
) -> LyapunovResult:
    """Lyapunov spectrum from matrix-free tangent products (the Benettin QR method).

    Evolves an orthonormal frame Q_0 (n × k) through Q_{t+1} R_t = J_t Q_t (thin QR, one per
    step, inside `jax.lax.scan`) and returns λ_j = (1/T) Σ_{t<T} log|R_t[j, j]| in nats per
    step, the k largest exponents in descending order (the QR's |diag R| makes the sign
    convention of the factorisation irrelevant). Only products J_t Q are needed, so J_t is
    never formed: pass analytic products (e.g. ``Q + h·D_t (W Q)`` for a residual layer),
    JVPs, or slices of stored matrices.

    Two conventions for `jvp_fn`, chosen by `init_state`:

    - stateless (``init_state=None``): ``jvp_fn(t, Q) -> J_t @ Q``. Use it when J_t depends
      only on the step index, e.g. closed over a precomputed trajectory (``traj[t]``) or a
      stack of layer weights (``W[t]``); `t` is a traced int32 scalar, so index with it.
    - stateful (``init_state`` a pytree): ``jvp_fn(t, state, Q) -> (state_next, J_t @ Q)``.
      Use it to stream an orbit without storing it (state = x_t, as `lyapunov_spectrum`
      does); the state after the last step comes back as `final_state`.

    The result is exact for finite T (a finite-time spectrum); convergence to the asymptotic
    exponents is typically O(1/T), check it with ``return_running=True``. A product with an
    exactly singular direction gives −inf for that exponent.

    **Arguments:**

    - `jvp_fn`: the tangent map, see above; must be traceable (pure JAX).
    - `num_steps`: T ≥ 1, a Python int (the scan length).
    - `n`: state dimension.
    - `num_exponents`: k, 1 ≤ k ≤ n (default: the columns of `initial_q`, else n); the k
      largest exponents are returned.
    - `init_state`: initial carried state for a stateful `jvp_fn`.
    - `key`: `jax.random` key for a random initial frame (default: a fixed key, so the same
      call gives the same result). The frame is the QR of the first k columns of an n × n
      Gaussian draw, so with the same key the k-exponent run equals the first k exponents of
      the full run. Exclusive with `initial_q`.
    - `initial_q`: explicit initial frame ``(n, k)`` (orthonormalised by QR first).
    - `dtype`: floating dtype of the frame and exponents (default: `initial_q`'s dtype, else
      JAX's default float).
    - `return_running`: also return the ``(T, k)`` running estimates.

    **Returns:** `LyapunovResult(exponents (k,), running (T, k) or None, final_state)`.

    **Raises:** `TypeError` for a non-callable `jvp_fn`, non-integer sizes or a non-float
    dtype; `ValueError` for num_steps < 1, n < 1, k outside [1, n], a bad `initial_q`, both
    `key` and `initial_q`, or a `jvp_fn` whose product does not have shape ``(n, k)``.
    """
    _check_callable("jvp_fn", jvp_fn)
    num_steps = check_int("num_steps", num_steps, minimum=1)
    n = check_int("n", n, minimum=1)
    if num_exponents is None and initial_q is not None and jnp.ndim(initial_q) == 2:
        num_exponents = jnp.shape(initial_q)[1]
    k = _num_exponents(num_exponents, n)
    if dtype is None:
        dtype = jnp.asarray(initial_q).dtype if initial_q is not None else jnp.result_type(float)
    if not jnp.issubdtype(dtype, jnp.floating):
        raise TypeError(f"dtype must be a floating dtype, got {dtype}")
    q0 = _initial_frame(n, k, key, initial_q, dtype)
    stateful = init_state is not None

    def product(t, state, q):
        if stateful:
            return jvp_fn(t, state, q)
        return state, jvp_fn(t, q)

    t0 = jax.ShapeDtypeStruct((), jnp.int32)
    out = jax.eval_shape(product, t0, init_state, q0)
    jq = out[1] if isinstance(out, tuple) and len(out) == 2 else None
    if jq is None or not hasattr(jq, "shape") or jq.shape != (n, k):
        got = getattr(jq, "shape", out)
        want = "(state_next, J @ Q)" if stateful else "J @ Q"
        raise ValueError(f"jvp_fn must return {want} with J @ Q of shape (n, k) = {(n, k)}, got {got}")

    def body(carry, t):
        state, q, total = carry
        state, jq = product(t, state, q)
        q, r = jnp.linalg.qr(jq.astype(dtype))
        logs = jnp.log(jnp.abs(jnp.diagonal(r)))
        return (state, q, total + logs), (logs if return_running else None)

    carry0 = (init_state, q0, jnp.zeros((k,), dtype))
    (state, _, total), logs = jax.lax.scan(body, carry0, jnp.arange(num_steps, dtype=jnp.int32))
    # Finite-time exponents need not come out of the QR in order (short horizons, nearly
    # equal exponents): sort so that "largest first" always holds.
    exponents = _sort_descending(total / num_steps)
    running = None
    if return_running:
        running = _sort_descending(jnp.cumsum(logs, axis=0) / jnp.arange(1, num_steps + 1, dtype=dtype)[:, None])
    return LyapunovResult(exponents, running, state if stateful else None)


def lyapunov_spectrum(
    step: Callable[[Array], Array],
    x0: Float[Array, "*batch n"],
    num_steps: int,
    *,
    num_exponents: int | None = None,
    burn_in: int = 0,
    key: jax.Array | None = None,
    return_running: bool = False,
) -> LyapunovResult:
    """Lyapunov spectrum of the orbit x_{t+1} = step(x_t) from `x0` (Benettin QR method).

    After `burn_in` plain steps (no accumulation, to land on the attractor), each of the
    `num_steps` steps advances the state and pushes the k-column frame through the tangent
    map with `jax.linearize` (one primal evaluation, k JVPs, vmapped): J_t = ∂step/∂x at x_t
    is never formed. See `lyapunov_spectrum_from_products` for the method.

    **Arguments:**

    - `step`: a map R^n → R^n acting on a single state ``(n,)``.
    - `x0`: initial state ``(n,)``, or a batch ``(*batch, n)`` (vmapped, one spectrum each,
      same initial frame for all).
    - `num_steps`: T ≥ 1 steps that are averaged.
    - `num_exponents`: k ≤ n largest exponents (default n).
    - `burn_in`: steps iterated first and discarded (≥ 0).
    - `key`: key of the random initial frame (default a fixed key).
    - `return_running`: also return running estimates ``(*batch, T, k)``.

    **Returns:** `LyapunovResult(exponents (*batch, k), running, final_state = x_{burn_in+T})`.
    Exponents are in nats per step and in the dtype of `x0`.

    **Raises:** `TypeError` for a non-callable `step` or non-float `x0`; `ValueError` if
    `step` does not map ``(n,)`` to ``(n,)``, for non-finite `x0`, num_steps < 1, burn_in < 0
    or k outside [1, n].
    """
    x0 = check_array("x0", x0)
    _check_step(step, x0)
    num_steps = check_int("num_steps", num_steps, minimum=1)
    burn_in = check_int("burn_in", burn_in, minimum=0)
    n = x0.shape[-1]
    k = _num_exponents(num_exponents, n)
    q0 = _initial_frame(n, k, key, None, x0.dtype)
    return _lyapunov_fn(step, num_steps, burn_in, return_running)(x0, q0)


@_compiled_per_step
def _lyapunov_fn(step, num_steps, burn_in, return_running):
    def tangent(t, x, q):
        x_next, f_jvp = jax.linearize(step, x)
        return x_next, jax.vmap(f_jvp, in_axes=1, out_axes=1)(q)

    def one(x, q0):
        x = jax.lax.fori_loop(0, burn_in, lambda _, y: step(y), x)
        return lyapunov_spectrum_from_products(
            tangent, num_steps, n=x.shape[-1], init_state=x, initial_q=q0, return_running=return_running
        )

    return jax.jit(lambda x, q0: _batched(lambda xi: one(xi, q0), x))


def lyapunov_spectrum_from_jacobians(
    jacobians: Float[Array, "T n n"],
    *,
    num_exponents: int | None = None,
    key: jax.Array | None = None,
    return_running: bool = False,
) -> LyapunovResult:
    """Lyapunov spectrum of the product J_{T−1} ⋯ J_1 J_0 of stored Jacobians (QR method).

    **Arguments:**

    - `jacobians`: ``(T, n, n)``, J_t = ∂x_{t+1}/∂x_t, applied in order t = 0, 1, ….
    - `num_exponents`, `key`, `return_running`: as in `lyapunov_spectrum_from_products`.

    **Returns:** `LyapunovResult(exponents (k,), running (T, k) or None, None)`.

    **Raises:** `ValueError` unless `jacobians` is a finite ``(T, n, n)`` float array with
    T ≥ 1, or for k outside [1, n].
    """
    jacobians = check_array("jacobians", jacobians, ndim=3)
    T, n, m = jacobians.shape
    if n != m or T < 1:
        raise ValueError(f"jacobians must have shape (T, n, n) with T >= 1, got {jacobians.shape}")
    return lyapunov_spectrum_from_products(
        lambda t, q: jacobians[t] @ q,
        T,
        n=n,
        num_exponents=num_exponents,
        key=key,
        dtype=jacobians.dtype,
        return_running=return_running,
    )


# --------------------------------------------------------------------------------------------
# Fixed points

STABILITY_LABELS = ("attractor", "repeller", "saddle", "marginal")
"""Names of the stability codes 0 … 3 of `FixedPoints.stability`; code −1 is "unconverged"."""

_ATTRACTOR, _REPELLER, _SADDLE, _MARGINAL, _UNCONVERGED = 0, 1, 2, 3, -1


class FixedPoints(NamedTuple):
    """Fixed points x* = step(x*) found from a batch of starts, with their linear stability.

    - `points`: ``(*batch, n)`` last Newton iterate of each start.
    - `converged`: ``(*batch,)`` bool, ‖step(x) − x‖₂ ≤ tol reached.
    - `residual_norm`: ``(*batch,)`` ‖step(x) − x‖₂ at `points`.
    - `eigenvalues`: ``(*batch, n)`` complex multipliers of ∂step/∂x at `points`, largest
      modulus first.
    - `stability`: ``(*batch,)`` int32 code: 0 attractor (all |μ| < 1), 1 repeller (all
      |μ| > 1), 2 saddle (some inside, some outside), 3 marginal (some ||μ| − 1| ≤
      marginal_tol; takes precedence), −1 not converged. `labels` gives the strings.
    - `num_iterations`: ``(*batch,)`` iterations used.
    """

    points: Float[Array, "*batch n"]
    converged: Bool[Array, "*batch"]
    residual_norm: Float[Array, "*batch"]
    eigenvalues: Complex[Array, "*batch n"]
    stability: Int[Array, "*batch"]
    num_iterations: Int[Array, "*batch"]

    @property
    def labels(self) -> np.ndarray:
        """Stability as strings (host-side numpy array, same shape as `stability`)."""
        names = np.array((*STABILITY_LABELS, "unconverged"), dtype=object)
        return names[np.asarray(self.stability)]


def _stability_code(eigenvalues: jax.Array, converged: jax.Array, marginal_tol) -> jax.Array:
    mod = jnp.abs(eigenvalues)
    code = jnp.where(jnp.all(mod < 1, axis=-1), _ATTRACTOR, jnp.where(jnp.all(mod > 1, axis=-1), _REPELLER, _SADDLE))
    code = jnp.where(jnp.any(jnp.abs(mod - 1) <= marginal_tol, axis=-1), _MARGINAL, code)
    return jnp.where(converged, code, _UNCONVERGED).astype(jnp.int32)


def _default_tol(dtype) -> float:
    # 1e-10 in float64; about 100 ulps in lower precisions, where 1e-10 is unreachable
    return max(1e-10, 100 * float(jnp.finfo(dtype).eps))


def find_fixed_points(
    step: Callable[[Array], Array],
    initial_points: Float[Array, "*batch n"],
    *,
    tol: float | None = None,
    max_iter: int = 50,
    marginal_tol: float | None = None,
) -> FixedPoints:
    """Fixed points of `step` by damped Newton on F(x) = step(x) − x, from many starts.

    Each iteration (per start, vmapped, inside `jax.lax.while_loop`) tries the Newton step
    d = −J_F⁻¹ F with J_F = ∂step/∂x − I (by `jax.jacfwd`). It is taken only if it is finite
    and lowers ‖F‖₂. Otherwise — J_F singular or Newton overshooting — a Levenberg–Marquardt
    step d = −(J_FᵀJ_F + μ s I)⁻¹ J_Fᵀ F (s = mean diagonal of J_FᵀJ_F) is tried: μ shrinks ×10
    when it lowers ‖F‖, grows ×10 (the iterate stays) when it does not, so the step turns
    into a short gradient-descent step on ½‖F‖² until progress resumes. A start stops when
    ‖F‖₂ ≤ tol, after `max_iter` iterations, or when μ exceeds 1e12 (a local minimum of ‖F‖
    that is not a root); a last Newton step is then kept if it lowers ‖F‖ further, which
    brings a converged point to round-off accuracy. Stability comes from the multipliers μ_i of ∂step/∂x at the point
    (codes in `FixedPoints`).

    **Arguments:**

    - `step`: a map R^n → R^n on a single state ``(n,)``.
    - `initial_points`: starts ``(n,)`` or ``(*batch, n)`` (e.g. a grid or random draws).
    - `tol`: residual tolerance on ‖step(x) − x‖₂ (default 1e-10 in float64, 100 ulps in
      lower precision, ≈1.2e-5 in float32).
    - `max_iter`: maximum iterations per start (≥ 1).
    - `marginal_tol`: a multiplier with ||μ| − 1| ≤ marginal_tol makes the point "marginal"
      (default √eps of the dtype: eigenvalues of a nearly defective J are only that accurate).

    **Returns:** `FixedPoints`, with the batch shape of `initial_points`. Deduplicate starts
    that found the same point with `unique_fixed_points`.

    **Raises:** `TypeError` for a non-callable `step` or non-float points; `ValueError` if
    `step` does not map ``(n,)`` to ``(n,)``, for non-finite starts, tol ≤ 0,
    marginal_tol ≤ 0 or max_iter < 1.
    """
    x0 = check_array("initial_points", initial_points)
    _check_step(step, x0)
    max_iter = check_int("max_iter", max_iter, minimum=1)
    dtype = x0.dtype
    tol = _default_tol(dtype) if tol is None else tol
    check_positive("tol", tol)
    marginal_tol = float(np.sqrt(jnp.finfo(dtype).eps)) if marginal_tol is None else marginal_tol
    check_positive("marginal_tol", marginal_tol)
    return _fixed_points_fn(step, max_iter)(x0, jnp.asarray(tol, dtype), jnp.asarray(marginal_tol, dtype))


@_compiled_per_step
def _fixed_points_fn(step, max_iter):
    def solve(x0, tol, marginal_tol):
        dtype = x0.dtype
        n = x0.shape[-1]
        eye = jnp.eye(n, dtype=dtype)

        def residual(x):
            f = step(x) - x
            return f, jnp.linalg.norm(f)

        def improves(norm_new, norm_old):
            return jnp.isfinite(norm_new) & (norm_new < norm_old)

        def body(carry):
            x, f, fn, mu, it = carry
            J = jax.jacfwd(step)(x) - eye
            x_newton = x - jnp.linalg.solve(J, f)
            f_newton, fn_newton = residual(x_newton)
            JtJ = J.T @ J
            scale = jnp.maximum(jnp.trace(JtJ) / n, jnp.finfo(dtype).tiny)
            x_lm = x - jnp.linalg.solve(JtJ + mu * scale * eye, J.T @ f)
            f_lm, fn_lm = residual(x_lm)
            ok_newton = improves(fn_newton, fn)
            ok_lm = improves(fn_lm, fn)

            def pick(a_newton, a_lm, a_old):
                return jnp.where(ok_newton, a_newton, jnp.where(ok_lm, a_lm, a_old))

            x = pick(x_newton, x_lm, x)
            f = pick(f_newton, f_lm, f)
            fn = pick(fn_newton, fn_lm, fn)
            mu = jnp.where(ok_newton | ok_lm, jnp.maximum(mu / 10, 1e-12), mu * 10)
            return x, f, fn, mu.astype(dtype), it + 1

        def cond(carry):
            _, _, fn, mu, it = carry
            return (it < max_iter) & (fn > tol) & (mu <= 1e12)

        def one(x):
            f, fn = residual(x)
            x, f, fn, mu, it = jax.lax.while_loop(cond, body, (x, f, fn, jnp.asarray(1e-3, dtype), jnp.int32(0)))
            # one more Newton step, kept if it helps: near a simple root it squares the error,
            # so points come back to round-off rather than to just below tol
            x_polish = x - jnp.linalg.solve(jax.jacfwd(step)(x) - eye, f)
            _, fn_polish = residual(x_polish)
            better = improves(fn_polish, fn)
            x, fn = jnp.where(better, x_polish, x), jnp.where(better, fn_polish, fn)
            ev = _eigvals_sorted(jax.jacfwd(step)(x))
            converged = fn <= tol
            return FixedPoints(x, converged, fn, ev, _stability_code(ev, converged, marginal_tol), it)

        return _batched(one, x0)

    return jax.jit(solve)


def unique_fixed_points(
    result: FixedPoints, *, atol: float | None = None, return_counts: bool = False
) -> FixedPoints | tuple[FixedPoints, np.ndarray]:
    """The distinct converged fixed points of a `find_fixed_points` result (host-side).

    Non-converged starts are dropped; the remaining points are scanned in input order
    (batch axes flattened) and a point within Euclidean distance `atol` of an already kept
    point joins that point's cluster, otherwise it starts a new one. The first point of each
    cluster is kept, so the output order is the order of first discovery. A post-processing
    helper: it runs in numpy, outside `jax.jit`.

    **Arguments:**

    - `result`: a `FixedPoints` from `find_fixed_points`.
    - `atol`: merge radius (default 10·√eps of the points' dtype: ≈1.5e-7 in float64,
      ≈3.5e-3 in float32).
    - `return_counts`: also return how many starts landed on each point (a crude basin
      size when the starts sample the space uniformly).

    **Returns:** `FixedPoints` with a leading axis of size u (the distinct points), as numpy
    arrays; with ``return_counts=True`` the tuple ``(FixedPoints, counts (u,))``.

    **Raises:** `TypeError` if `result` is not a `FixedPoints`; `ValueError` for atol ≤ 0.
    """
    if not isinstance(result, FixedPoints):
        raise TypeError(f"result must be a resflow.FixedPoints, got {type(result).__name__}")
    points = np.asarray(result.points)
    n = points.shape[-1]
    atol = 10 * float(np.sqrt(np.finfo(points.dtype).eps)) if atol is None else atol
    check_positive("atol", atol)
    flat = [np.asarray(a).reshape(-1, *np.shape(a)[np.ndim(result.converged) :]) for a in result]
    keep = flat[1].astype(bool)
    flat = [a[keep] for a in flat]
    reps: list[int] = []
    counts: list[int] = []
    for i, p in enumerate(flat[0].reshape(-1, n)):
        dist = [np.linalg.norm(p - flat[0][j]) for j in reps]
        close = int(np.argmin(dist)) if dist else -1
        if close >= 0 and dist[close] <= atol:
            counts[close] += 1
        else:
            reps.append(i)
            counts.append(1)
    out = FixedPoints(*(a[np.asarray(reps, dtype=int)] for a in flat))
    return (out, np.asarray(counts)) if return_counts else out
