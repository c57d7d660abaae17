"""Generic dynamics tools for any JAX map ``step(x) -> x_next`` on R^n.

Core (matrix-free Lyapunov spectrum, the building block of every Lyapunov routine)::

    lyapunov_spectrum_from_products(
        jvp_fn, num_steps, *, n, num_exponents=None, init_state=None, key=None,
        initial_q=None, dtype=None, return_running=False, qr_every=1,
    ) -> LyapunovResult(exponents, running, final_state)

    stateless  (init_state is None):  jvp_fn(t, Q) -> J_t @ Q
    stateful   (init_state given):    jvp_fn(t, state, Q) -> (state_next, J_t @ Q)

with ``t`` a traced int32 step index 0 … num_steps−1 and ``Q`` of shape ``(n, k)``. The loop
itself is `qr_scan` (a QR every step, or a guarded QR every ``qr_every`` steps; frames with
leading batch axes for callers that batch inside the product).

Built on it:

- `lyapunov_spectrum(step, x0, num_steps, ...)` — orbit of `step` from x0, J_t Q by
  `jax.linearize` (J is never formed).
- `lyapunov_spectrum_from_jacobians(jacobians, ...)` — a stored sequence of Jacobians.

Also `jacobian_spectrum` (eigenvalues of d step/dx), `find_fixed_points` (batched damped
Newton / Levenberg–Marquardt on F(x) = step(x) − x, with scale-aware convergence tests and
the stability of each point, `Stability`), `fixed_point_bound` (its error-bound test at one
point, shared with `resflow.find_slow_points`) and `unique_fixed_points` (host-side merging of
many starts, with a radius tied to each point's precision).

`step` is an argument of the compiled code (`callable_jit`, built on `equinox.filter_jit`):
a pytree callable such as a trunk's map ``trunk.step`` is traced through its arrays, so a
second trunk of the same shapes reuses the compilation; a plain function is static.
"""

from __future__ import annotations

import enum
import functools
from collections.abc import Callable
from typing import Any, NamedTuple

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Bool, Complex, Float, Int

from .._checks import check_array, check_int, check_positive

__all__ = [
    "Spectrum",
    "jacobian_spectrum",
    "LyapunovResult",
    "lyapunov_spectrum_from_products",
    "lyapunov_spectrum",
    "lyapunov_spectrum_from_jacobians",
    "Stability",
    "FixedPoints",
    "find_fixed_points",
    "unique_fixed_points",
    "FixedPointBound",
    "fixed_point_bound",
    "fixed_point_tolerances",
]


# --------------------------------------------------------------------------------------------
# validation helpers


def check_step(step, x0) -> None:
    """`step` is a callable map returning an array of the shape and dtype of one state of
    `x0` (``(*batch, n)``; checked by abstract evaluation, nothing runs)."""
    x1 = jax.ShapeDtypeStruct(x0.shape[-1:], x0.dtype)
    _check_signature(step, (x1,), x1, "step", "step(x)")


def check_vector_field(vector_field, y0, args) -> None:
    """A callable ``vector_field(t, y, args)`` returning an array of y0's shape and dtype."""
    _check_signature(vector_field, (jnp.zeros((), y0.dtype), y0, args), y0, "vector_field", "vector_field(t, y, args)")


def _check_signature(fn, inputs, like, name: str, call: str) -> None:
    if not callable(fn):
        raise TypeError(f"{name} must be callable as {call}, got {type(fn).__name__}")
    try:
        out = jax.eval_shape(fn, *inputs)
    except Exception as e:  # the user's function failed on a valid input: say so, keep the cause
        raise ValueError(f"{call} failed for an input of shape {like.shape}: {e}") from e
    if getattr(out, "shape", None) != like.shape or out.dtype != like.dtype:
        got = f"{out.dtype} {out.shape}" if hasattr(out, "shape") else type(out).__name__
        raise ValueError(
            f"{call} must return an array of the input's shape {like.shape} and dtype {like.dtype}, got {got}"
        )


def random_frame(n: int, k: int, key, dtype) -> jax.Array:
    """An orthonormal ``(n, k)`` frame: the first k columns of a Gaussian n × n matrix,
    orthonormalised. Unchecked.

    A generic frame: with the identity, a diagonal map would keep e_1 … e_k and miss faster
    directions. key=None is a fixed key, so results are still reproducible. Drawing all n
    columns and keeping k makes a k-exponent run reproduce the first k exponents of the full
    run with the same key exactly (QR is column-nested).
    """
    key = jax.random.key(0) if key is None else key
    return jnp.linalg.qr(jax.random.normal(key, (n, n), dtype)[:, :k])[0]


def resolve_num_exponents(num_exponents, n: int) -> int:
    """k from `num_exponents` (None: n), checked to lie in [1, n]."""
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


def _static_hashable(step) -> bool:
    """Whether `eqx.filter_jit` can key a compilation on `step`'s non-array parts."""
    leaves, treedef = jax.tree.flatten(step)
    try:
        hash((treedef, tuple(leaf for leaf in leaves if not eqx.is_array(leaf))))
    except TypeError:
        return False
    return True


def callable_jit(impl):
    """``impl(step, *arrays, **static)`` compiled with `eqx.filter_jit`, `step` an argument.

    Shared by every tool that takes a user callable (steps, classifiers); not top-level.

    A pytree callable (an equinox Module, or a bound method such as ``trunk.step``) is traced
    through its array leaves, so a new trunk of the same shapes reuses the compiled code;
    a plain function is a static argument (one compilation per function object). A callable
    whose static part cannot be hashed is compiled for this call only, with its arrays as
    constants: a cache keyed on its identity would keep it, and its arrays, alive.
    """
    jitted = eqx.filter_jit(impl)

    def call(step, *arrays, **static):
        if _static_hashable(step):
            return jitted(step, *arrays, **static)
        return jax.jit(functools.partial(impl, step, **static))(*arrays)

    return functools.wraps(impl)(call)


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

    - `step`: a map R^n → R^n acting on a single state of shape ``(n,)``: a function, or a
      pytree callable such as ``trunk.step`` (compiled once per shapes, see the module).
    - `x`: the point, shape ``(n,)``, or a batch ``(*batch, n)`` (vmapped).

    **Returns:** `Spectrum(eigenvalues (*batch, n) complex, jacobian (*batch, n, n))`.
    Ties in modulus (complex-conjugate pairs) keep LAPACK's order.

    **Raises:** `TypeError` if `step` is not callable or `x` not a float array;
    `ValueError` if `step` does not map ``(n,)`` to ``(n,)`` or `x` is not finite.
    """
    x = check_array("x", x)
    check_step(step, x)

    return _jacobian_spectrum_run(step, x)


@callable_jit
def _jacobian_spectrum_run(step, x):
    def one(xi):
        J = jax.jacfwd(step)(xi)
        return Spectrum(_eigvals_sorted(J), J)

    return _batched(one, x)


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


def initial_frame(n: int, k: int, key, initial_q, dtype) -> jax.Array:
    """The ``(n, k)`` starting frame: `initial_q` orthonormalised, else `random_frame`."""
    if initial_q is not None:
        if key is not None:
            raise ValueError("give at most one of key and initial_q")
        q0 = check_array("initial_q", initial_q, ndim=2)
        if q0.shape != (n, k):
            raise ValueError(f"initial_q must have shape (n, num_exponents) = {(n, k)}, got {q0.shape}")
        q0 = q0.astype(dtype)
        return jnp.linalg.qr(q0)[0]
    return random_frame(n, k, key, dtype)


def guard_tolerance(dtype) -> float:
    """Smallest |R[j, j]| a QR of a block of column-normalised products may show: ε^(1/4).

    With unit columns the QR's R[j, j] is exact to about ε in absolute terms, so
    log|R[j, j]| is exact to ε/|R[j, j]| ≤ ε^(3/4) (6.5e-6 in float32, 1.8e-12 in float64)
    while the guard holds."""
    return float(jnp.finfo(dtype).eps) ** 0.25


def qr_scan(product, state, q0, num_steps: int, *, qr_every: int = 1, return_running: bool = False):
    """The Benettin QR loop behind every Lyapunov routine. Unchecked.

    `product(t, state, Q) -> (state_next, J_t Q)` with Q ``(*batch, n, k)`` (any leading
    batch axes; one QR per batch entry). With ``qr_every = m > 1`` (and no running
    estimates) the steps run in blocks of m: after each product the columns are scaled to
    unit norm (their log norms are added to the sums, which is exact and keeps the block from
    overflowing or underflowing), and one QR ends the block. Because R of a product of
    triangular factors has the product of their diagonals, the log|diag R| sums equal those of
    a QR every step. A block whose R has some |R[j, j]| below `guard_tolerance` (its columns
    have nearly aligned, so the smaller directions would lose digits) is recomputed from its
    start with a QR every step (`jax.lax.cond`, decided for the whole batch at once). Keep
    the batch inside Q: under `jax.vmap` the cond becomes a select that runs both branches.

    **Returns:** ``(state, total (*batch, k), logs)``: the final state, Σ_t log|R_t[j, j]|,
    and the per-step ``(T, *batch, k)`` logs when ``return_running`` (else None).
    """
    dtype = q0.dtype
    k = q0.shape[-1]

    def step_qr(carry, t):
        state, q, total = carry
        state, jq = product(t, state, q)
        q, r = jnp.linalg.qr(jq.astype(dtype))
        logs = jnp.log(jnp.abs(jnp.diagonal(r, axis1=-2, axis2=-1)))
        return (state, q, total + logs), (logs if return_running else None)

    total0 = jnp.zeros(q0.shape[:-2] + (k,), dtype)
    if qr_every == 1 or return_running:
        (state, _, total), logs = jax.lax.scan(step_qr, (state, q0, total0), jnp.arange(num_steps, dtype=jnp.int32))
        return state, total, logs
    tol = guard_tolerance(dtype)

    def block(carry, t0, length):
        state0, q0_, total = carry

        def scaled(inner, t):
            state, q, lognorm = inner
            state, q = product(t, state, q)
            norm = jnp.linalg.norm(q.astype(dtype), axis=-2)
            return (state, q.astype(dtype) / norm[..., None, :], lognorm + jnp.log(norm)), None

        ts = t0 + jnp.arange(length, dtype=jnp.int32)
        (state, q, lognorm), _ = jax.lax.scan(scaled, (state0, q0_, jnp.zeros_like(total)), ts)
        q, r = jnp.linalg.qr(q)
        diag = jnp.abs(jnp.diagonal(r, axis1=-2, axis2=-1))

        def fallback():
            ts = t0 + jnp.arange(length, dtype=jnp.int32)
            return jax.lax.scan(step_qr, carry, ts)[0]

        return jax.lax.cond(jnp.all(diag >= tol), lambda: (state, q, total + lognorm + jnp.log(diag)), fallback)

    m = min(qr_every, num_steps)
    num_blocks, rest = divmod(num_steps, m)
    starts = jnp.arange(num_blocks, dtype=jnp.int32) * m
    carry = jax.lax.scan(lambda c, t0: (block(c, t0, m), None), (state, q0, total0), starts)[0]
    if rest:
        carry = block(carry, jnp.int32(num_blocks * m), rest)
    return carry[0], carry[2], None


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
    qr_every: int = 1,
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
    - `qr_every`: m ≥ 1, re-orthonormalise once per m steps (columns rescaled to unit norm
      after every step, a QR at the end of each block; a block whose columns nearly align,
      some |R[j, j]| < ε^(1/4), is redone with a QR per step). The exponents equal those of
      a QR every step up to rounding (≤ ε^(3/4) per block in log|R[j, j]|); it saves QR
      calls where they cost more than the products (small k, GPUs). Ignored (a QR per
      step) with ``return_running=True``. Under `jax.vmap` the guard runs both branches:
      batch inside `jvp_fn` instead (as `resflow.network_lyapunov_spectrum` does).

    **Returns:** `LyapunovResult(exponents (k,), running (T, k) or None, final_state)`.

    **Raises:** `TypeError` for a non-callable `jvp_fn`, non-integer sizes or a non-float
    dtype; `ValueError` for num_steps < 1, qr_every < 1, n < 1, k outside [1, n], a bad `initial_q`, both
    `key` and `initial_q`, or a `jvp_fn` whose product does not have shape ``(n, k)``.
    """
    if not callable(jvp_fn):
        raise TypeError(f"jvp_fn must be a callable, got {type(jvp_fn).__name__}")
    num_steps = check_int("num_steps", num_steps, minimum=1)
    qr_every = check_int("qr_every", qr_every, minimum=1)
    n = check_int("n", n, minimum=1)
    if num_exponents is None and initial_q is not None and jnp.ndim(initial_q) == 2:
        num_exponents = jnp.shape(initial_q)[1]
    k = resolve_num_exponents(num_exponents, n)
    if dtype is None:
        dtype = jnp.asarray(initial_q).dtype if initial_q is not None else jnp.result_type(float)
    if not jnp.issubdtype(dtype, jnp.floating):
        raise TypeError(f"dtype must be a floating dtype, got {dtype}")
    q0 = initial_frame(n, k, key, initial_q, dtype)
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

    state, total, logs = qr_scan(product, init_state, q0, num_steps, qr_every=qr_every, return_running=return_running)
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

    - `step`: a map R^n → R^n acting on a single state ``(n,)``: a function, or a pytree
      callable such as ``trunk.step`` (compiled once per shapes, see the module).
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
    check_step(step, x0)
    num_steps = check_int("num_steps", num_steps, minimum=1)
    burn_in = check_int("burn_in", burn_in, minimum=0)
    n = x0.shape[-1]
    k = resolve_num_exponents(num_exponents, n)
    q0 = initial_frame(n, k, key, None, x0.dtype)
    return _lyapunov_run(step, x0, q0, num_steps=num_steps, burn_in=burn_in, return_running=return_running)


@callable_jit
def _lyapunov_run(step, x0, q0, *, num_steps, burn_in, return_running):
    def tangent(t, x, q):
        x_next, f_jvp = jax.linearize(step, x)
        return x_next, jax.vmap(f_jvp, in_axes=1, out_axes=1)(q)

    def one(x, q0):
        x = jax.lax.fori_loop(0, burn_in, lambda _, y: step(y), x)
        return lyapunov_spectrum_from_products(
            tangent, num_steps, n=x.shape[-1], init_state=x, initial_q=q0, return_running=return_running
        )

    return _batched(lambda xi: one(xi, q0), x0)


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


class Stability(enum.IntEnum):
    """Stability codes of `FixedPoints.stability`, from the multipliers μ_i of ∂step/∂x.

    ATTRACTOR: all |μ| < 1. REPELLER: all |μ| > 1. SADDLE: some inside, some outside the
    unit circle. MARGINAL: some ||μ| − 1| ≤ marginal_tol (linearisation inconclusive; takes
    precedence). UNCONVERGED: the start found no fixed point.
    """

    UNCONVERGED = -1
    ATTRACTOR = 0
    REPELLER = 1
    SADDLE = 2
    MARGINAL = 3

    @property
    def label(self) -> str:
        return self.name.lower()


class FixedPoints(NamedTuple):
    """Fixed points x* = step(x*) found from a batch of starts, with their linear stability.

    - `points`: ``(*batch, n)`` last Newton iterate of each start.
    - `converged`: ``(*batch,)`` bool, the point passed every test of `find_fixed_points`
      (small relative residual, error bound, shrinking Newton steps).
    - `residual_norm`: ``(*batch,)`` ‖step(x) − x‖₂ at `points`.
    - `eigenvalues`: ``(*batch, n)`` complex multipliers of ∂step/∂x at `points`, largest
      modulus first.
    - `stability`: ``(*batch,)`` int32 `Stability` code. `labels` gives the strings.
    - `num_iterations`: ``(*batch,)`` iterations used.
    - `error`: ``(*batch,)`` first-order bound on the distance to the true fixed point,
      ‖J_F⁻¹‖₂ (‖F(x)‖ + ε(‖x‖ + ‖step(x)‖)), ε the dtype's machine epsilon (the rounding
      level of F = step(x) − x). ``inf`` where J_F is singular.
    """

    points: Float[Array, "*batch n"]
    converged: Bool[Array, "*batch"]
    residual_norm: Float[Array, "*batch"]
    eigenvalues: Complex[Array, "*batch n"]
    stability: Int[Array, "*batch"]
    num_iterations: Int[Array, "*batch"]
    error: Float[Array, "*batch"]

    @property
    def labels(self) -> np.ndarray:
        """Stability as strings (host-side numpy array, same shape as `stability`)."""
        names = {int(s): s.label for s in Stability}
        codes = np.asarray(self.stability)
        return np.vectorize(names.__getitem__, otypes=[object])(codes) if codes.size else codes.astype(object)


def stability_code(eigenvalues: jax.Array, converged: jax.Array, marginal_tol) -> jax.Array:
    mod = jnp.abs(eigenvalues)
    code = jnp.where(
        jnp.all(mod < 1, axis=-1),
        int(Stability.ATTRACTOR),
        jnp.where(jnp.all(mod > 1, axis=-1), int(Stability.REPELLER), int(Stability.SADDLE)),
    )
    code = jnp.where(jnp.any(jnp.abs(mod - 1) <= marginal_tol, axis=-1), int(Stability.MARGINAL), code)
    return jnp.where(converged, code, int(Stability.UNCONVERGED)).astype(jnp.int32)


def fixed_point_tolerances(dtype, tol: float | None = None, xtol: float | None = None) -> tuple[float, float]:
    """The `tol` and `xtol` of the fixed-point test (`fixed_point_bound`), defaults filled in.

    Defaults: tol = max(1e-10, 100 ε) (1e-10 in float64; about 100 ulps in lower precisions,
    where 1e-10 is unreachable), xtol = √ε, ε the machine epsilon of `dtype`.

    **Raises:** `ValueError` unless both are > 0.
    """
    eps = float(jnp.finfo(dtype).eps)
    tol = max(1e-10, 100 * eps) if tol is None else tol
    xtol = float(np.sqrt(eps)) if xtol is None else xtol
    check_positive("tol", tol)
    check_positive("xtol", xtol)
    return tol, xtol


class FixedPointBound(NamedTuple):
    """The fixed-point test at one point x (see `fixed_point_bound`).

    - `jacobian`: ``(n, n)`` ∂step/∂x at x.
    - `residual`: ``(n,)`` F(x) = step(x) − x; `residual_norm` its 2-norm.
    - `error`: e = ‖J_F⁻¹‖₂ (‖F(x)‖ + ε(‖x‖ + ‖step(x)‖)), ``inf`` where J_F = ∂step/∂x − I is singular.
    - `rounding_step`: ‖J_F⁻¹‖₂ ε(‖x‖ + ‖step(x)‖), the distance F's rounding alone accounts for.
    - `passed`: e finite, ‖F(x)‖ ≤ tol·s and e ≤ xtol·s, s = 1 + ‖x‖₂.
    """

    jacobian: Float[Array, "n n"]
    residual: Float[Array, " n"]
    residual_norm: Float[Array, ""]
    error: Float[Array, ""]
    rounding_step: Float[Array, ""]
    passed: Bool[Array, ""]


def fixed_point_bound(step: Callable[[Array], Array], x: Float[Array, " n"], tol, xtol) -> FixedPointBound:
    """Whether x is within a certified distance of a true fixed point of `step`. Unchecked; traceable.

    With F(x) = step(x) − x, J_F = ∂step/∂x − I, s = 1 + ‖x‖₂ and ε the dtype's machine epsilon:
    to first order x − x* = J_F⁻¹ F(x), and F is only known to its rounding level
    ε(‖x‖ + ‖step(x)‖), so the distance to the fixed point x* is at most
    e = ‖J_F⁻¹‖₂ (‖F(x)‖ + ε(‖x‖ + ‖step(x)‖)). The point passes when e is finite,
    ‖F(x)‖ ≤ tol·s and e ≤ xtol·s. A point where the map only moves slowly fails: there J_F is
    as small as F (a saturated sigmoid: both ≈ e^{−z}), so e is of order one or more. This is
    the test of `find_fixed_points` (which adds a shrinking-Newton-step test) and of
    `resflow.find_slow_points`' `is_fixed`; `fixed_point_tolerances` gives the defaults.

    **Arguments:** `step` a map ``(n,) -> (n,)``; `x` ``(n,)``; `tol`, `xtol` > 0 (scalars).

    **Returns:** `FixedPointBound`.
    """
    step_x = step(x)
    f = step_x - x
    fn = jnp.linalg.norm(f)
    J_step = jax.jacfwd(step)(x)
    J = J_step - jnp.eye(x.shape[-1], dtype=x.dtype)
    smin = jnp.linalg.svd(J, compute_uv=False)[-1]
    inv_norm = jnp.where(smin > 0, 1 / smin, jnp.inf)
    xn = jnp.linalg.norm(x)
    rounding = jnp.finfo(x.dtype).eps * (xn + jnp.linalg.norm(step_x))
    error = inv_norm * (fn + rounding)
    s = 1 + xn
    passed = jnp.isfinite(error) & (fn <= tol * s) & (error <= xtol * s)
    return FixedPointBound(J_step, f, fn, error, inv_norm * rounding, passed)


def find_fixed_points(
    step: Callable[[Array], Array],
    initial_points: Float[Array, "*batch n"],
    *,
    tol: float | None = None,
    xtol: float | None = None,
    max_iter: int = 50,
    marginal_tol: float | None = None,
) -> FixedPoints:
    """Fixed points of `step` by damped Newton on F(x) = step(x) − x, from many starts.

    Each iteration (per start, vmapped, inside `jax.lax.while_loop`) tries the Newton step
    d = −J_F⁻¹ F with J_F = ∂step/∂x − I (by `jax.jacfwd`). It is taken only if it is finite
    and lowers ‖F‖₂. Otherwise — J_F singular or Newton overshooting — a Levenberg–Marquardt
    step d = −(J_FᵀJ_F + μ s I)⁻¹ J_Fᵀ F (s = mean diagonal of J_FᵀJ_F) is tried: μ shrinks ×10
    when it lowers ‖F‖, grows ×10 (the iterate stays) when it does not. A start stops when
    F = 0, when ‖F‖₂ ≤ tol·(1 + ‖x‖₂) and the last step was ≤ xtol·(1 + ‖x‖₂), after
    `max_iter` iterations, or when μ exceeds 1e12 (a local minimum of ‖F‖ that is not a
    root); three more Newton steps are then kept where they lower ‖F‖.

    **Convergence** is decided by scale-aware tests at the final point x, with
    s = 1 + ‖x‖₂ and ε the machine epsilon of the dtype:

    1. relative residual: ‖F(x)‖ ≤ tol·s;
    2. error bound: e = ‖J_F⁻¹‖₂ (‖F(x)‖ + ε(‖x‖ + ‖step(x)‖)) ≤ xtol·s. To first order
       x − x* = J_F⁻¹ F, and ε(‖x‖ + ‖step(x)‖) is the rounding level of F itself, so e
       bounds the distance to the true fixed point x*;
    3. shrinking Newton steps: the next Newton step ‖J_F⁻¹ F‖ is at most half the last step
       taken, or below the rounding level ‖J_F⁻¹‖ ε(‖x‖ + ‖step(x)‖).

    A point where the map only moves slowly is not a fixed point: there F is small but so is
    J_F (e.g. a saturated x ↦ x + h·σ(Wx + b), where F = hσ ≈ e^{−z} and Newton steps stay
    O(1)), so e is large and the test fails, even where F rounds to exactly 0. Degenerate
    fixed points (J_F singular: a multiplier exactly 1, a continuum of fixed points) have
    e = ∞ and come back unconverged: their position is not determined by F. Stability
    comes from the multipliers μ_i of ∂step/∂x at the point (`Stability`).

    **Arguments:**

    - `step`: a map R^n → R^n on a single state ``(n,)``: a function, or a pytree callable
      such as ``trunk.step`` (traced through its arrays: a new trunk of the same shapes
      reuses the compiled code).
    - `initial_points`: starts ``(n,)`` or ``(*batch, n)`` (e.g. a grid or random draws).
    - `tol`: relative residual tolerance (default 1e-10 in float64, 100 ε in lower
      precision, ≈1.2e-5 in float32).
    - `xtol`: relative precision required of the point, on e (default √ε: ≈1.5e-8 in
      float64, ≈3.5e-4 in float32).
    - `max_iter`: maximum iterations per start (≥ 1).
    - `marginal_tol`: a multiplier with ||μ| − 1| ≤ marginal_tol makes the point "marginal"
      (default √ε: eigenvalues of a nearly defective J are only that accurate).

    **Returns:** `FixedPoints`, with the batch shape of `initial_points`. Deduplicate starts
    that found the same point with `unique_fixed_points`.

    **Raises:** `TypeError` for a non-callable `step` or non-float points; `ValueError` if
    `step` does not map ``(n,)`` to ``(n,)``, for non-finite starts, tol ≤ 0, xtol ≤ 0,
    marginal_tol ≤ 0 or max_iter < 1.
    """
    x0 = check_array("initial_points", initial_points)
    check_step(step, x0)
    max_iter = check_int("max_iter", max_iter, minimum=1)
    dtype = x0.dtype
    tol, xtol = fixed_point_tolerances(dtype, tol, xtol)
    marginal_tol = float(np.sqrt(jnp.finfo(dtype).eps)) if marginal_tol is None else marginal_tol
    check_positive("marginal_tol", marginal_tol)
    tols = tuple(jnp.asarray(v, dtype) for v in (tol, xtol, marginal_tol))
    return _fixed_points_run(step, x0, *tols, max_iter=max_iter)


@callable_jit
def _fixed_points_run(step, x0, tol, xtol, marginal_tol, *, max_iter):
    dtype = x0.dtype
    n = x0.shape[-1]
    eye = jnp.eye(n, dtype=dtype)

    def residual(x):
        f = step(x) - x
        return f, jnp.linalg.norm(f)

    def improves(norm_new, norm_old):
        return jnp.isfinite(norm_new) & (norm_new < norm_old)

    def body(carry):
        x, f, fn, mu, it, last = carry
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

        x_new = pick(x_newton, x_lm, x)
        last = jnp.where(ok_newton | ok_lm, jnp.linalg.norm(x_new - x), last)
        mu = jnp.where(ok_newton | ok_lm, jnp.maximum(mu / 10, 1e-12), mu * 10)
        return x_new, pick(f_newton, f_lm, f), pick(fn_newton, fn_lm, fn), mu.astype(dtype), it + 1, last

    def cond(carry):
        x, _, fn, mu, it, last = carry
        s = 1 + jnp.linalg.norm(x)
        # a small residual alone does not stop: where J_F is small the root may be far away
        done = (fn == 0) | ((fn <= tol * s) & (last <= xtol * s))
        return (it < max_iter) & ~done & (mu <= 1e12)

    def one(x):
        f, fn = residual(x)
        init = (x, f, fn, jnp.asarray(1e-3, dtype), jnp.int32(0), jnp.asarray(jnp.inf, dtype))
        x, f, fn, _, it, last = jax.lax.while_loop(cond, body, init)

        # a few more Newton steps, each kept if it helps: near a simple root each squares the
        # error, so points come back to round-off rather than to just below the tolerances
        def polish(_, carry):
            x, f, fn, last = carry
            d = jnp.linalg.solve(jax.jacfwd(step)(x) - eye, f)
            f_new, fn_new = residual(x - d)
            better = improves(fn_new, fn)
            keep = functools.partial(jnp.where, better)
            return keep(x - d, x), keep(f_new, f), keep(fn_new, fn), keep(jnp.linalg.norm(d), last)

        x, f, fn, last = jax.lax.fori_loop(0, 3, polish, (x, f, fn, last))

        bound = fixed_point_bound(step, x, tol, xtol)
        next_step = jnp.linalg.norm(jnp.linalg.solve(bound.jacobian - eye, bound.residual))
        shrinking = (next_step <= last / 2) | (next_step <= bound.rounding_step)
        converged = bound.passed & shrinking
        ev = _eigvals_sorted(bound.jacobian)
        code = stability_code(ev, converged, marginal_tol)
        return FixedPoints(x, converged, bound.residual_norm, ev, code, it, bound.error)

    return _batched(one, x0)


def unique_fixed_points(
    result: FixedPoints, *, atol: float | None = None, return_counts: bool = False
) -> FixedPoints | tuple[FixedPoints, np.ndarray]:
    """The distinct converged fixed points of a `find_fixed_points` result (host-side).

    Non-converged starts are dropped; the remaining points are scanned in input order
    (batch axes flattened) and a point joins the cluster of the nearest kept point when
    their distance is within the merge radius, otherwise it starts a new one. The first
    point of each cluster is kept, so the output order is the order of first discovery. A
    post-processing helper: it runs in numpy, outside `jax.jit`.

    The default merge radius follows each point's precision: points p_i, p_j merge when
    ‖p_i − p_j‖ ≤ 10 (ρ_i + ρ_j), with ρ = max(e, ε (1 + ‖p‖)) from the error bound e of
    `FixedPoints.error` (ε the dtype's machine epsilon). Two well-determined roots much
    closer than any fixed tolerance (0 and 0.002 in float32, say) therefore stay apart,
    while copies of one root, which differ by their rounding errors, merge.

    **Arguments:**

    - `result`: a `FixedPoints` from `find_fixed_points`.
    - `atol`: a fixed merge radius instead of the precision-based one.
    - `return_counts`: also return how many starts landed on each point (a crude basin
      size when the starts sample the space uniformly).

    **Returns:** `FixedPoints` with a leading axis of size u (the distinct points), as numpy
    arrays; with ``return_counts=True`` the tuple ``(FixedPoints, counts (u,))``.

    **Raises:** `TypeError` if `result` is not a `FixedPoints`; `ValueError` for atol ≤ 0.
    """
    if not isinstance(result, FixedPoints):
        raise TypeError(f"result must be a resflow.FixedPoints, got {type(result).__name__}")
    if atol is not None:
        check_positive("atol", atol)
    batch_ndim = np.ndim(result.converged)
    flat = [np.asarray(a).reshape(-1, *np.shape(a)[batch_ndim:]) for a in result]
    keep = flat[1].astype(bool)
    flat = [a[keep] for a in flat]
    points = flat[0]
    eps = float(np.finfo(points.dtype).eps)
    rho = np.maximum(flat[6], eps * (1 + np.linalg.norm(points, axis=-1)))
    reps: list[int] = []
    counts: list[int] = []
    for i, p in enumerate(points):
        dist = np.array([np.linalg.norm(p - points[j]) for j in reps])
        radius = np.full(len(reps), atol) if atol is not None else 10 * (rho[i] + rho[reps])
        close = int(np.argmin(dist)) if len(reps) else -1
        if close >= 0 and dist[close] <= radius[close]:
            counts[close] += 1
        else:
            reps.append(i)
            counts.append(1)
    out = FixedPoints(*(a[np.asarray(reps, dtype=int)] for a in flat))
    return (out, np.asarray(counts)) if return_counts else out
